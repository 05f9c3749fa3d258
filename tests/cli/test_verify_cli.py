"""``wallet-verify``: sync, check, scan on a staff device, offline except sync."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.factories import City
from wallet.cli.verify import EXIT_CODES, cli
from wallet.formats.qr import render_png
from wallet.status import INVALID, SUSPENDED


@pytest.fixture
def live_city() -> City:
    """A city whose clock is the real one: the CLI checks at the current time."""
    return City(now=datetime.now(UTC))


def verify(
    runner: CliRunner, env: dict[str, str], *args: str, input: bytes | None = None
) -> tuple[int, str]:
    result = runner.invoke(cli, list(args), env=env, input=input)
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def publish(city: City, folder: Path, *, version: int) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return city.write_bundle(folder, version=version)


def test_first_sync_pins_the_root_and_later_syncs_use_it(
    runner: CliRunner, env: dict[str, str], tmp_path: Path, live_city: City
) -> None:
    bundle, root = publish(live_city, tmp_path / "v1", version=1)
    code, out = verify(runner, env, "sync", str(bundle))
    assert code == 3 and "no trust-root key is pinned" in out
    code, out = verify(runner, env, "sync", str(bundle), "--root-key", str(root))
    assert code == 0 and "pinned trust-root key" in out and "version 1" in out
    device = Path(env["WALLET_VERIFIER_DIR"])
    assert (device / "root-key.pem").read_bytes() == root.read_bytes()

    code, out = verify(runner, env, "sync", str(bundle))
    assert code == 0 and "already the newest" in out
    newer, _ = publish(live_city, tmp_path / "v2", version=2)
    code, out = verify(runner, env, "sync", str(newer))
    assert code == 0 and "version 2" in out
    assert json.loads((device / "state.json").read_text()) == {"version": 2}


def test_rollback_to_an_older_bundle_is_refused_and_the_held_one_kept(
    runner: CliRunner, env: dict[str, str], tmp_path: Path, live_city: City
) -> None:
    old, root = publish(live_city, tmp_path / "v1", version=1)
    new, _ = publish(live_city, tmp_path / "v5", version=5)
    assert verify(runner, env, "sync", str(new), "--root-key", str(root))[0] == 0
    held = (Path(env["WALLET_VERIFIER_DIR"]) / "bundle.jwt").read_bytes()
    code, out = verify(runner, env, "sync", str(old))
    assert code == 3 and "older than the held version 5" in out
    assert (Path(env["WALLET_VERIFIER_DIR"]) / "bundle.jwt").read_bytes() == held


def test_tampered_or_foreign_bundle_is_refused_and_the_held_one_kept(
    runner: CliRunner, env: dict[str, str], tmp_path: Path, live_city: City
) -> None:
    good, root = publish(live_city, tmp_path / "good", version=1)
    assert verify(runner, env, "sync", str(good), "--root-key", str(root))[0] == 0
    held = (Path(env["WALLET_VERIFIER_DIR"]) / "bundle.jwt").read_bytes()

    tampered = tmp_path / "tampered.jwt"
    text = good.read_text().strip()
    tampered.write_text(text[:-5] + ("AAAAA" if text[-5:] != "AAAAA" else "BBBBB"))
    code, out = verify(runner, env, "sync", str(tampered))
    assert code == 3 and "not signed by the pinned trust root" in out

    foreign, foreign_root = publish(City(now=live_city.now), tmp_path / "foreign", version=9)
    code, out = verify(runner, env, "sync", str(foreign))
    assert code == 3 and "not signed by the pinned trust root" in out
    code, out = verify(runner, env, "sync", str(foreign), "--root-key", str(foreign_root))
    assert code == 3 and "differs from the pinned one" in out

    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\xff\xfe\x00binary")
    code, out = verify(runner, env, "sync", str(garbage))
    assert code == 3 and "not a bundle" in out
    code, out = verify(runner, env, "sync", str(tmp_path / "absent.jwt"))
    assert code == 3 and "cannot read" in out
    assert (Path(env["WALLET_VERIFIER_DIR"]) / "bundle.jwt").read_bytes() == held


@pytest.fixture
def bundle_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A plain HTTP server on loopback, standing in for the city's web server."""
    folder = tmp_path / "www"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder
    finally:
        server.shutdown()
        server.server_close()


def test_sync_over_http(
    runner: CliRunner,
    env: dict[str, str],
    live_city: City,
    bundle_server: tuple[str, Path],
) -> None:
    base, folder = bundle_server
    _, root = publish(live_city, folder, version=3)
    code, out = verify(runner, env, "sync", f"{base}/bundle.jwt", "--root-key", str(root))
    assert code == 0 and "version 3" in out
    code, out = verify(runner, env, "sync", f"{base}/missing.jwt")
    assert code == 3 and "cannot download" in out and "old bundle is kept" in out


def test_check_exit_status_follows_the_state(
    runner: CliRunner, env: dict[str, str], tmp_path: Path, live_city: City
) -> None:
    uri = next(u for u in live_city.lists if u.endswith("parking-1"))
    live_city.lists[uri].set(1, INVALID)
    live_city.lists[uri].set(2, SUSPENDED)
    bundle, root = publish(live_city, tmp_path / "b", version=1)
    opts = ["--bundle", str(bundle), "--root-key", str(root)]
    cases = {
        "valid": live_city.issue_qr("parking", idx=3),
        "revoked": live_city.issue_qr("parking", idx=1),
        "suspended": live_city.issue_qr("parking", idx=2),
        "invalid": "WP1123",
        "expired": live_city.issue(
            "library",
            issued_at=live_city.now - timedelta(days=20),
            expires_at=live_city.now - timedelta(days=1),
        ),
    }
    for state, text in cases.items():
        code, out = verify(runner, env, *opts, "check", text, "--json")
        assert json.loads(out)["state"] == state
        assert code == EXIT_CODES[state]
    code, out = verify(runner, env, *opts, "--lang", "en", "check", cases["revoked"])
    assert code == 11 and "REVOKED" in out and "Licence plate: D-AB 1234" in out


def test_check_reads_a_photo(
    runner: CliRunner, env: dict[str, str], tmp_path: Path, live_city: City
) -> None:
    bundle, root = publish(live_city, tmp_path / "b", version=1)
    photo = tmp_path / "pass.png"
    photo.write_bytes(render_png(live_city.issue_qr("library")))
    opts = ["--bundle", str(bundle), "--root-key", str(root)]
    code, out = verify(runner, env, *opts, "check", "--image", str(photo))
    assert code == 0 and "GÜLTIG" in out and "Erika Mustermann" in out
    not_image = tmp_path / "notes.txt"
    not_image.write_text("hello")
    code, out = verify(runner, env, *opts, "check", "--image", str(not_image))
    assert code == 3 and "notes.txt" in out
    code, out = verify(runner, env, *opts, "check")
    assert code == 2 and "either a TOKEN or --image" in out


def test_scan_judges_each_line_like_a_keyboard_wedge_scanner(
    runner: CliRunner, env: dict[str, str], tmp_path: Path, live_city: City
) -> None:
    bundle, root = publish(live_city, tmp_path / "b", version=1)
    opts = ["--bundle", str(bundle), "--root-key", str(root)]
    good = live_city.issue_qr("library").encode()
    lines = good + b"\r\n\n" + live_city.issue("parking").encode() + b"\n\xff\xfegarbage\n"
    code, out = verify(runner, env, *opts, "scan", "--json", input=lines)
    results = [json.loads(line) for line in out.splitlines()]
    assert [r["state"] for r in results] == ["valid", "valid", "invalid"]
    assert code == 1
    code, out = verify(runner, env, *opts, "scan", input=good + b"\n")
    assert code == 0 and out.count("✔") == 1


def test_without_a_usable_bundle_the_device_says_what_to_do(
    runner: CliRunner, env: dict[str, str], tmp_path: Path, live_city: City
) -> None:
    code, out = verify(runner, env, "check", "abc")
    assert code == 3 and "wallet-verify sync" in out
    expired = City(now=live_city.now - timedelta(days=30))
    bundle, root = publish(expired, tmp_path / "old", version=1)
    code, out = verify(runner, env, "--bundle", str(bundle), "--root-key", str(root), "check", "x")
    assert code == 3 and "expired" in out and "sync a new one" in out


def test_info_describes_the_held_bundle(
    runner: CliRunner, env: dict[str, str], tmp_path: Path, live_city: City
) -> None:
    bundle, root = publish(live_city, tmp_path / "b", version=7)
    code, out = verify(runner, env, "--bundle", str(bundle), "--root-key", str(root), "info")
    assert code == 0 and "version:  7" in out and live_city.key.kid in out
