"""`wallet keys rotate --at TIME`: a rotation every server carries out at the same moment."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.cli.admin import LIBRARY_FIELDS, Wallet, audit_entries, wallet_fixture  # noqa: F401
from tests.factories import NOW
from wallet.bundle import root_public_key, verify_bundle
from wallet.cli import cli
from wallet.codec import b64url_decode
from wallet.keys import KeyInfo, KeyState
from wallet.keystore import KeyStore
from wallet.store.db import Database
from wallet.verifier import Verifier

TAKEOVER = NOW + timedelta(days=8)
AT = TAKEOVER.isoformat()  # "2026-12-02T09:30:00+00:00"


def at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def pass_keys(wallet: Wallet) -> dict[str, dict[str, object]]:
    listed = json.loads(wallet.ok("keys", "list", "--json").stdout)
    return {str(k["kid"]): k for k in listed if k["role"] == "pass"}


def issue_at(wallet: Wallet, moment: datetime) -> dict[str, str]:
    """Issue a library pass with the clock at ``moment``: its token and QR text."""
    out = dataclasses.replace(wallet, clock=at(moment)).ok(
        "passes", "issue", "--type", "library", *LIBRARY_FIELDS, "--json"
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def kid_of(issued: dict[str, str]) -> str:
    """The kid in the token's header: the key that signed it."""
    header = b64url_decode(issued["token"].split(".")[0], what="header")
    return str(json.loads(header)["kid"])


def test_servers_sign_with_the_old_key_until_the_takeover_and_devices_already_know_the_new_one(
    wallet: Wallet, tmp_path: Path
) -> None:
    now = dataclasses.replace(wallet, clock=at(NOW))
    (old,) = pass_keys(now)
    result = now.ok("keys", "rotate", "--at", AT)
    (new,) = set(pass_keys(now)) - {old}
    assert f"staged {old} -> {new}" in result.stdout
    assert "signs from 2026-12-02 09:30:00 UTC" in result.stdout
    assert "copy " in result.stdout and "to every server now" in result.stdout

    # Published at once: the JWKS has it, `keys list` says when it takes over.
    assert new in {k["kid"] for k in json.loads(now.ok("keys", "jwks").stdout)["keys"]}
    listed = pass_keys(now)
    assert listed[new]["phase"] == "staged" and listed[old]["phase"] == "active"
    table = now.ok("keys", "list").stdout
    assert f"{new} takes over signing library, parking at 2026-12-02 09:30:00 UTC" in table
    row = next(line for line in table.splitlines() if line.startswith(new))
    assert " staged " in row and "2026-12-02 09:30" in row

    # A device syncs the day before (the library's status list exists by then) and
    # then stays offline.
    first = issue_at(wallet, NOW)
    day_before = dataclasses.replace(wallet, clock=at(TAKEOVER - timedelta(days=1)))
    bundle_file, root_file = tmp_path / "bundle.jwt", tmp_path / "root.pem"
    day_before.ok("bundle", "export", "--out", str(bundle_file), "--root-key", str(root_file))

    # Every issuance picks by the clock alone: old key before, new key from the takeover.
    before = issue_at(wallet, TAKEOVER - timedelta(seconds=1))
    exactly = issue_at(wallet, TAKEOVER)
    after = issue_at(wallet, TAKEOVER + timedelta(hours=2))
    assert [kid_of(p) for p in (before, exactly, after)] == [old, new, new]

    later = TAKEOVER + timedelta(hours=3)
    bundle = verify_bundle(
        bundle_file.read_text().strip(), root_public_key(root_file.read_bytes()), now=later
    )
    assert bundle.issued_at < TAKEOVER and new in {k.kid for k in bundle.keys}
    verifier = Verifier(bundle)
    for issued in (first, before, exactly, after):
        verdict = verifier.check(issued["qr_text"], now=later)
        assert verdict.state == "valid", (kid_of(issued), verdict.reason)

    # After the takeover the old key is retired without anyone writing anything.
    listed = pass_keys(dataclasses.replace(wallet, clock=at(later)))
    assert listed[old]["phase"] == "retired" and listed[new]["phase"] == "active"
    assert listed[old]["state"] == "active"  # the window ended it, not a write on one server


def test_the_staging_is_audited(wallet: Wallet, db: Database) -> None:
    now = dataclasses.replace(wallet, clock=at(NOW))
    (old,) = pass_keys(now)
    now.ok("keys", "rotate", old, "--at", "+8d")
    (entry,) = audit_entries(db, "key.rotate")
    (new,) = set(pass_keys(now)) - {old}
    assert entry.target == f"key:{old}"
    assert entry.details == {"new": new, "alg": "ES256", "at": TAKEOVER.isoformat()}


# -- bad input: a message, a non-zero exit, nothing written --------------------------


@pytest.fixture
def keys_env(runner: CliRunner, env: dict[str, str]) -> dict[str, str]:
    """A keys folder with one pass key, no database (a key ceremony machine)."""
    assert runner.invoke(cli, ["keys", "generate"], env=env, obj=at(NOW)).exit_code == 0
    return env


def rotate(runner: CliRunner, env: dict[str, str], *args: str) -> tuple[int, str]:
    result = runner.invoke(cli, ["keys", "rotate", *args], env=env, obj=at(NOW))
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def key_count(env: dict[str, str]) -> int:
    return len(list(Path(env["WALLET_SIGNING_KEYS_DIR"]).glob("*.json")))


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("next tuesday", "is not a time"),
        ("+8", "is not a time"),
        ("-8d", "is not a time"),
        ("2026-13-01T00:00Z", "is not a time"),
        ("", "is not a time"),
        ("2026-12-03T10:00", "no UTC offset"),
        ("2026-12-03", "no UTC offset"),
    ],
)
def test_an_unreadable_time_is_refused_naming_the_option(
    runner: CliRunner, keys_env: dict[str, str], given: str, says: str
) -> None:
    code, out = rotate(runner, keys_env, "--at", given)
    assert code == 2 and "'--at'" in out and says in out
    assert key_count(keys_env) == 1


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("2026-11-24T09:00Z", "in the past"),
        ("+0m", "in the past"),
        ("+2d", "too soon"),
        ("+7d", "too soon"),  # the bundle's life, but no time left to copy the folder
        ("2026-12-01T10:29:59+00:00", "too soon"),
        ("+400d", "more than a year"),
        ("9999-12-31T23:00-05:00", "out of range"),
    ],
)
def test_a_time_too_early_or_too_late_is_refused(
    runner: CliRunner, keys_env: dict[str, str], given: str, says: str
) -> None:
    code, out = rotate(runner, keys_env, "--at", given)
    assert code in (1, 2) and says in out
    assert key_count(keys_env) == 1


def test_too_soon_says_why_and_when_is_early_enough(
    runner: CliRunner, keys_env: dict[str, str]
) -> None:
    code, out = rotate(runner, keys_env, "--at", "+1d")
    assert code == 1 and "WALLET_BUNDLE_LIFETIME" in out and "7 days" in out
    assert "the earliest is 2026-12-01 10:30:00 UTC" in out
    assert rotate(runner, keys_env, "--at", "2026-12-01T11:30+01:00")[0] == 0  # that very second


def test_a_shorter_bundle_life_allows_an_earlier_takeover(
    runner: CliRunner, keys_env: dict[str, str]
) -> None:
    env = {**keys_env, "WALLET_BUNDLE_LIFETIME": "86400"}
    code, out = rotate(runner, env, "--at", "+1d1h")
    assert code == 0 and "signs from 2026-11-25 10:30:00 UTC" in out


def test_an_unknown_key_is_named(runner: CliRunner, keys_env: dict[str, str]) -> None:
    code, out = rotate(runner, keys_env, "nope1234", "--at", "+8d")
    assert code == 1 and "no key nope1234" in out
    code, out = rotate(runner, keys_env, "-nope123", "--at", "+8d")
    assert code == 1 and "no key -nope123" in out and "No such option" not in out
    assert key_count(keys_env) == 1


def test_an_existing_key_whose_kid_starts_with_a_dash_can_be_staged(
    runner: CliRunner, env: dict[str, str]
) -> None:
    from tests.cli.test_keys_cli import _key_with_dash_kid

    store = KeyStore(
        Path(env["WALLET_SIGNING_KEYS_DIR"]),
        passphrase=env["WALLET_KEY_PASSPHRASE"].encode(),
        dev_mode=False,
    )
    key = _key_with_dash_kid()
    store.save(key)
    code, out = rotate(runner, env, key.kid, "--at", "+8d")
    assert code == 0 and f"staged {key.kid} -> " in out
    info: KeyInfo = store.get(key.kid).info
    assert info.state is KeyState.ACTIVE and info.not_after == TAKEOVER


def test_a_second_staging_and_rotating_the_staged_key_are_refused(
    runner: CliRunner, keys_env: dict[str, str]
) -> None:
    assert rotate(runner, keys_env, "--at", "+8d")[0] == 0
    code, out = rotate(runner, keys_env, "--at", "+9d")  # the old key is the one signing now
    assert code == 1 and "already hands over to the staged key" in out
    store = KeyStore(
        Path(keys_env["WALLET_SIGNING_KEYS_DIR"]),
        passphrase=keys_env["WALLET_KEY_PASSPHRASE"].encode(),
        dev_mode=False,
    )
    (staged,) = store.staged_keys(now=NOW)
    code, out = rotate(runner, keys_env, staged.kid)
    assert code == 1 and f"key {staged.kid} is staged" in out
    assert key_count(keys_env) == 2


@pytest.mark.parametrize("call_off", [["retire"], ["revoke", "--yes"]])
def test_calling_a_staged_key_off_lets_the_old_key_sign_on_past_the_handover(
    runner: CliRunner, keys_env: dict[str, str], call_off: list[str]
) -> None:
    """An admin who retires (or revokes, found compromised) the staged key before it
    takes over must not be left at the handover with no key signing the pass type:
    the old key's window, which ended there, opens again."""
    assert rotate(runner, keys_env, "--at", "+8d")[0] == 0
    store = KeyStore(
        Path(keys_env["WALLET_SIGNING_KEYS_DIR"]),
        passphrase=keys_env["WALLET_KEY_PASSPHRASE"].encode(),
        dev_mode=False,
    )
    (staged,) = store.staged_keys(now=NOW)
    old = store.current_signing_key("library", now=NOW)
    result = runner.invoke(cli, ["keys", *call_off, staged.kid], env=keys_env, obj=at(NOW))
    assert result.exit_code == 0, result.output
    assert f"called off: {old.kid} signs on" in result.output
    assert not store.staged_keys(now=NOW)
    later = NOW + timedelta(days=30)
    assert store.current_signing_key("library", now=later).kid == old.kid
