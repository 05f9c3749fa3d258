"""``wallet-verify``: sync, check, scan on a staff device, offline except sync."""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

import wallet
from tests.factories import ISSUER, City
from wallet.cli.verify import EXIT_CODES, EXIT_NO_QR_CODE, EXIT_OPERATIONAL, MAX_SCAN_LINE, cli
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
    assert code == EXIT_NO_QR_CODE and "notes.txt" in out and "not an image" in out
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
    lines = dict(line.split(":", 1) for line in out.splitlines())
    assert code == 0 and lines["Version"].strip() == "7" and live_city.key.kid in lines["Schlüssel"]
    assert lines["Aussteller"].strip() == ISSUER
    opts = ["--lang", "en", "--bundle", str(bundle), "--root-key", str(root), "info"]
    code, out = verify(runner, env, *opts)
    lines = dict(line.split(":", 1) for line in out.splitlines())
    assert code == 0 and lines["version"].strip() == "7" and "Schlüssel" not in out


# -- amber verdicts, exit codes, languages, scanner input ---------------------------------


def test_missing_status_list_is_never_plain_valid(
    runner: CliRunner, env: dict[str, str], tmp_path: Path, live_city: City
) -> None:
    """A genuine bundle without the pass's status list: amber with its own exit code."""
    bundle, root = publish(live_city, tmp_path / "b", version=1)
    bundle.write_text(live_city.signed_bundle(status_tokens={}) + "\n")
    opts = ["--bundle", str(bundle), "--root-key", str(root)]
    for type_id, admit in (("library", True), ("parking", False)):
        code, out = verify(runner, env, *opts, "check", live_city.issue_qr(type_id), "--json")
        result = json.loads(out)
        assert (result["state"], result["admit"]) == ("status_unchecked", admit)
        assert code == EXIT_CODES["status_unchecked"] == 17
    code, out = verify(runner, env, *opts, "check", live_city.issue_qr("library"))
    assert code == 17 and "STATUS UNGEPRÜFT" in out and "Annehmen: ja" in out
    assert "GÜLTIG" not in out.replace("UNGÜLTIG", "")
    code, out = verify(runner, env, *opts, "--lang", "en", "check", live_city.issue_qr("parking"))
    assert code == 17 and "STATUS NOT CHECKED" in out and "Accept: no" in out


def test_stale_status_list_exits_amber_for_every_pass_type(
    runner: CliRunner, env: dict[str, str], tmp_path: Path, live_city: City
) -> None:
    old_lists = live_city.status_tokens(now=live_city.now - timedelta(days=3))
    bundle, root = publish(live_city, tmp_path / "b", version=1)
    bundle.write_text(live_city.signed_bundle(status_tokens=old_lists) + "\n")
    opts = ["--bundle", str(bundle), "--root-key", str(root)]
    for type_id, admit in (("library", True), ("parking", False)):
        code, out = verify(runner, env, *opts, "check", live_city.issue_qr(type_id), "--json")
        assert (json.loads(out)["state"], json.loads(out)["admit"]) == ("stale_status", admit)
        assert code == EXIT_CODES["stale_status"] == 16
    code, out = verify(runner, env, *opts, "scan", input=live_city.issue_qr("library").encode())
    assert code == 1 and "STATUS VERALTET" in out  # scan exits 0 only when all were valid


def test_no_qr_code_and_no_bundle_have_distinct_exit_codes(
    runner: CliRunner, env: dict[str, str], tmp_path: Path, live_city: City
) -> None:
    blank = tmp_path / "wall.png"
    Image.new("L", (200, 200), 255).save(blank)
    code, out = verify(runner, env, "check", "--image", str(blank))  # nothing synced yet
    assert code == EXIT_OPERATIONAL == 3 and "no bundle at" in out
    bundle, root = publish(live_city, tmp_path / "b", version=1)
    opts = ["--bundle", str(bundle), "--root-key", str(root)]
    code, out = verify(runner, env, *opts, "check", "--image", str(blank))
    assert code == EXIT_NO_QR_CODE == 4
    assert "no QR code found in the image" in out
    code, out = verify(runner, env, *opts, "check", "--image", str(tmp_path / "absent.png"))
    assert code == EXIT_NO_QR_CODE
    assert len({3, 4, *EXIT_CODES.values()}) == len(EXIT_CODES) + 2


def test_cli_messages_are_german_then_english(
    runner: CliRunner, env: dict[str, str], tmp_path: Path, live_city: City
) -> None:
    blank = tmp_path / "wall.png"
    Image.new("L", (64, 64), 255).save(blank)
    bundle, root = publish(live_city, tmp_path / "b", version=1)
    opts = ["--bundle", str(bundle), "--root-key", str(root)]
    for args in (
        [*opts, "check", "--image", str(blank)],  # no QR code
        ["check", "x"],  # no bundle synced
        ["--bundle", str(tmp_path / "bad.jwt"), "--root-key", str(root), "check", "x"],
    ):
        if args[1].endswith("bad.jwt"):
            (tmp_path / "bad.jwt").write_text("not.a.bundle")
        result = runner.invoke(cli, args, env=env)
        lines = result.stderr.splitlines()
        assert len(lines) == 2, result.stderr
        assert lines[0].startswith("Fehler: ") and lines[1].startswith("error: ")
    result = runner.invoke(cli, ["sync", str(bundle), "--root-key", str(root)], env=env)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Wurzelschlüssel ") and lines[1].startswith("pinned trust-root")
    assert lines[2].startswith("Prüfpaket Version 1") and lines[3].startswith("synced bundle")


def test_help_documents_every_exit_code(runner: CliRunner, env: dict[str, str]) -> None:
    for command in ([], ["check"], ["scan"]):
        out = runner.invoke(cli, [*command, "--help"], env=env).output
        for code in (1, 2, 3, 4, *EXIT_CODES.values()):
            assert f" {code}  " in out, (command, code)
        assert "amber" in out


def test_scan_strips_surrounding_spaces(
    runner: CliRunner, env: dict[str, str], tmp_path: Path, live_city: City
) -> None:
    bundle, root = publish(live_city, tmp_path / "b", version=1)
    opts = ["--bundle", str(bundle), "--root-key", str(root)]
    qr, jws = live_city.issue_qr("library"), live_city.issue("parking")
    lines = f"  {qr}  \n\t{jws}\t\r\n \u00a0{qr}\n".encode()
    code, out = verify(runner, env, *opts, "scan", "--json", input=lines)
    assert [json.loads(line)["state"] for line in out.splitlines()] == ["valid"] * 3
    assert code == 0
    code, out = verify(runner, env, *opts, "check", f" {qr}\n")
    assert code == 0


# The child reports its own peak memory, so nothing else in the test run can blur it.
_MEASURED_CLI = """
import resource, sys
from wallet.cli.verify import main
try:
    main(sys.argv[1:])
finally:
    print("peak-kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def _scan_in_child(opts: list[str], stdin: Path, env: dict[str, str]) -> tuple[int, str, int]:
    root = Path(wallet.__file__).parents[1]
    child_env = {**os.environ, **env, "PYTHONPATH": str(root)}
    with stdin.open("rb") as handle:
        done = subprocess.run(
            [sys.executable, "-c", _MEASURED_CLI, *opts, "scan", "--json"],
            stdin=handle,
            capture_output=True,
            env=child_env,
            timeout=120,
            check=False,
        )
    peak = int(done.stderr.decode().rsplit("peak-kib", 1)[1].split()[0])
    return done.returncode, done.stdout.decode(), peak


@pytest.mark.real_clock  # the scan runs in a child process, on the machine's clock
def test_scan_reads_an_oversized_line_bounded(
    env: dict[str, str], tmp_path: Path, live_city: City
) -> None:
    """A 32 MiB line costs no more memory than a short one, and the next line is still judged."""
    bundle, root = publish(live_city, tmp_path / "b", version=1)
    opts = ["--bundle", str(bundle), "--root-key", str(root)]
    good = live_city.issue_qr("library").encode() + b"\n"
    small = tmp_path / "small.txt"
    small.write_bytes(b"WP1123\n" + good)
    huge = tmp_path / "huge.txt"
    with huge.open("wb") as handle:
        handle.write(b"WP1")
        for _ in range(32):
            handle.write(b"7" * (1024 * 1024))
        handle.write(b"\n" + good)
    _, _, baseline = _scan_in_child(opts, small, env)
    code, out, peak = _scan_in_child(opts, huge, env)
    # Reading the line whole would add at least its 32 MiB (174 MB for 64 MiB before the fix).
    assert peak - baseline < 8 * 1024, (baseline, peak)
    results = [json.loads(line) for line in out.splitlines()]
    assert [(r["state"], r["reason"]) for r in results] == [
        ("invalid", "too_long"),
        ("valid", "ok"),
    ]
    assert str(MAX_SCAN_LINE) in results[0]["detail"]
    assert code == 1
