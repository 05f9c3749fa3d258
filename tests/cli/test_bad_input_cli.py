"""Bad input on the admin's terminal is a message and a non-zero exit, never a traceback.

The ``wallet`` fixture fails any test whose output holds a traceback or whose
command raised anything but SystemExit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.admin import Wallet, issue, wallet_fixture  # noqa: F401 - the fixture
from wallet.services import passes
from wallet.store.db import Database


def test_revoke_from_a_file_that_is_not_utf8_is_named(
    wallet: Wallet, db: Database, tmp_path: Path
) -> None:
    serial = issue(wallet)
    listing = tmp_path / "serials.txt"
    listing.write_bytes(serial.encode() + b"\n\xff\xfe Liste aus Excel\n")
    result = wallet("passes", "revoke", "--from-file", str(listing), "--reason", "lost")
    assert result.exit_code == 1
    assert "is not UTF-8 text (line 2)" in result.output
    with db.transaction(write=False) as session:
        assert passes.get_pass(session, serial).state == "valid"  # nothing half-done


@pytest.mark.parametrize(
    "command", [("users", "add", "bob", "--role", "issuer"), ("users", "passwd", "admin")]
)
def test_password_on_stdin_that_is_not_utf8_is_named(
    wallet: Wallet, db: Database, command: tuple[str, ...]
) -> None:
    if command[1] == "passwd":
        wallet.ok(
            "users",
            "add",
            "admin",
            "--role",
            "admin",
            "--password-stdin",
            input="a long enough password\n",
        )
    result = wallet(*command, "--password-stdin", input=b"\xff" * 20 + b"\n")  # type: ignore[arg-type]
    assert result.exit_code == 1
    assert "not UTF-8" in result.output


def test_overlong_password_on_stdin_is_refused_without_reading_it_all(wallet: Wallet) -> None:
    result = wallet(
        "users", "add", "bob", "--role", "issuer", "--password-stdin", input="a" * 200_000
    )
    assert result.exit_code == 1
    assert "too long" in result.output


def test_dev_certs_into_a_folder_that_cannot_be_made_is_named(wallet: Wallet) -> None:
    result = wallet("dev-certs", "--out", "/proc/no-such-folder/chain")
    assert result.exit_code == 1
    assert "cannot write the development chain to /proc/no-such-folder/chain" in result.output


@pytest.mark.parametrize(
    ("variable", "value"),
    [("WALLET_APPLE_TEAM_ID", "bad team"), ("WALLET_APPLE_PASS_TYPE_ID", "pass.\x01x")],
)
def test_dev_certs_for_a_malformed_apple_identifier_is_refused(
    wallet: Wallet, tmp_path: Path, variable: str, value: str
) -> None:
    result = wallet("dev-certs", "--out", str(tmp_path / "chain"), **{variable: value})
    assert result.exit_code == 1
    assert f"{variable} must be" in result.output
    assert not (tmp_path / "chain").exists()
