"""``wallet users totp NAME``: a TOTP second factor for a local account (the break-glass admin).

The secret is made by the command and shown only on its terminal (a QR code and
the key to type in); the code that confirms it is read from the terminal, never
from an argument. Nothing of it reaches a log line or the command line.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from sqlalchemy import select

from tests.cli.admin import (
    PASSWORD,
    Wallet,
    audit_entries,
    wallet_fixture,  # noqa: F401 - the `wallet` fixture
)
from wallet.services import accounts, totp
from wallet.store.db import Database
from wallet.store.models import StaffUserRow

KNOWN = bytes(range(100, 120))
KNOWN_KEY = base64.b32encode(KNOWN).decode().rstrip("=")


def code_for(secret: bytes, moment: datetime) -> str:
    return TOTP(secret, 6, SHA1(), 30).generate(int(moment.timestamp())).decode()


def stored(db: Database, username: str) -> StaffUserRow:
    with db.transaction(write=False) as session:
        row = session.scalars(select(StaffUserRow).where(StaffUserRow.username == username)).one()
        session.expunge(row)
        return row


@pytest.fixture
def known_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(totp.Enrolment, "new", classmethod(lambda cls: cls(KNOWN)))


@pytest.mark.real_clock
def test_totp_enrolment_in_a_real_terminal_session(wallet: Wallet, db: Database) -> None:
    """The command as an admin runs it: the key read off its output, the code typed in."""
    wallet.ok("users", "add", "root", "--role", "admin", "--password-stdin", input=PASSWORD)
    env = {k: v for k, v in {**os.environ, **wallet.env}.items() if v is not None}
    argv = [sys.executable, "-c", "from wallet.cli import main; main()", "users", "totp", "root"]
    process = subprocess.Popen(
        argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None and process.stdin is not None
    shown: list[str] = []
    for line in process.stdout:
        shown.append(line)
        if line.startswith("Or type this key into the app: "):
            break
    key = shown[-1].split(": ", 1)[1].replace(" ", "").strip()
    secret = base64.b32decode(key + "=" * (-len(key) % 8))
    assert len(secret) == 20
    assert sum(1 for line in shown if "\u2588" in line or "\u2580" in line) > 10  # the QR code
    assert all(key not in part for part in argv)
    out, err = process.communicate(code_for(secret, datetime.now(UTC)) + "\n", timeout=60)
    assert process.returncode == 0, err
    assert "TOTP set up for root" in out
    row = stored(db, "root")
    assert row.totp_secret is not None and key not in row.totp_secret
    assert [e.target for e in audit_entries(db, "user.totp")] == ["user:root"]


def test_totp_enrolment_needs_the_apps_code(
    wallet: Wallet, db: Database, known_secret: None, caplog: pytest.LogCaptureFixture
) -> None:
    wallet.ok("users", "add", "root", "--role", "admin", "--password-stdin", input=PASSWORD)
    now = datetime.now(UTC)
    near = {code_for(KNOWN, now + timedelta(seconds=s)) for s in (-60, -30, 0, 30, 60)}
    wrong = next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in near)
    with caplog.at_level(logging.DEBUG):
        refused = wallet("users", "totp", "root", input=wrong + "\n")
    assert refused.exit_code != 0
    assert "the code does not match" in refused.stderr
    assert stored(db, "root").totp_secret is None  # nothing half set up
    shown = refused.stdout
    assert " ".join(re.findall(".{1,4}", KNOWN_KEY)) in shown  # the key for typing in
    assert all(KNOWN_KEY not in r.getMessage() for r in caplog.records)
    with caplog.at_level(logging.DEBUG):
        done = wallet.ok("users", "totp", "root", input=code_for(KNOWN, datetime.now(UTC)) + "\n")
    assert "TOTP set up for root" in done.stdout
    assert stored(db, "root").totp_secret is not None
    assert all(KNOWN_KEY not in r.getMessage() for r in caplog.records)
    assert all(KNOWN.hex() not in r.getMessage() for r in caplog.records)


def test_totp_remove_forgets_the_secret(wallet: Wallet, db: Database, known_secret: None) -> None:
    wallet.ok("users", "add", "root", "--role", "admin", "--password-stdin", input=PASSWORD)
    wallet.ok("users", "totp", "root", input=code_for(KNOWN, datetime.now(UTC)) + "\n")
    assert (
        "removed the TOTP second factor of root"
        in wallet.ok("users", "totp", "root", "--remove").stdout
    )
    assert stored(db, "root").totp_secret is None
    assert "had no TOTP" in wallet.ok("users", "totp", "root", "--remove").stdout
    assert len(audit_entries(db, "user.totp")) == 2


def test_totp_for_an_unknown_user_is_a_message(wallet: Wallet) -> None:
    result = wallet("users", "totp", "nobody")
    assert result.exit_code == 1 and "no user nobody" in result.stderr


def test_users_list_shows_the_second_factor(
    wallet: Wallet, db: Database, known_secret: None
) -> None:
    wallet.ok("users", "add", "root", "--role", "admin", "--password-stdin", input=PASSWORD)
    wallet.ok("users", "add", "anna", "--role", "issuer", "--password-stdin", input=PASSWORD)
    wallet.ok("users", "totp", "root", input=code_for(KNOWN, datetime.now(UTC)) + "\n")
    listed = json.loads(wallet.ok("users", "list", "--json").stdout)
    assert {u["username"]: u["second_factor"] for u in listed} == {"anna": "none", "root": "totp"}
    assert "2ND FACTOR" in wallet.ok("users", "list").stdout


def test_a_lost_phones_factor_removed_by_an_admin_ends_the_accounts_sessions(
    wallet: Wallet, db: Database, known_secret: None
) -> None:
    """Whoever found the phone may have signed in with it: the reset signs everyone out."""
    wallet.ok("users", "add", "root", "--role", "admin", "--password-stdin", input=PASSWORD)
    moment = datetime.now(UTC)
    wallet.ok("users", "totp", "root", input=code_for(KNOWN, moment) + "\n")
    with db.transaction(write=True) as session:
        secret = accounts.start_session(
            session, username="root", lifetime=timedelta(hours=8), now=moment
        )
    wallet.ok("users", "totp", "root", "--remove")
    with db.transaction(write=False) as session:
        assert accounts.session_user(session, secret, now=moment) is None
