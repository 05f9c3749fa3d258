"""``wallet setup``: what scripts/serve runs before gunicorn, safe to run on every start."""

from __future__ import annotations

import re
import stat
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import func, select

from tests.cli.admin import OS_ACTOR, Wallet, audit_entries, cli_env
from tests.database import head_revision
from wallet.keys import KeyRole
from wallet.keystore import KeyStore
from wallet.services import accounts
from wallet.store.db import Database
from wallet.store.models import ApiTokenRow, StaffUserRow

PASSWORD_LINE = re.compile(r"^\s+password: (\S+)$", re.MULTILINE)
TOKEN_LINE = re.compile(r"^\s+(wpt_\S+)$", re.MULTILINE)


def fresh_wallet(db: Database, tmp_path: Path) -> Wallet:
    """The CLI on a migrated database but with no keys yet (as on a first start)."""
    env = cli_env(db, tmp_path / "keys", tmp_path / "instance", "http://127.0.0.1:8000")
    return Wallet(CliRunner(), env)


def counts(db: Database) -> tuple[int, int]:
    with db.transaction(write=False) as session:
        users = session.scalar(select(func.count()).select_from(StaffUserRow))
        tokens = session.scalar(select(func.count()).select_from(ApiTokenRow))
    return users or 0, tokens or 0


def test_first_setup_creates_keys_secret_admin_and_token_once(db: Database, tmp_path: Path) -> None:
    wallet = fresh_wallet(db, tmp_path)
    result = wallet.ok("setup")
    out = result.stdout
    assert f"at revision {head_revision()}" in out
    (password,) = PASSWORD_LINE.findall(out)
    (token,) = TOKEN_LINE.findall(out)
    assert "username: admin" in out and "shown only now" in out
    assert password not in result.stderr and token not in result.stderr  # stdout only

    keys = KeyStore(tmp_path / "keys", passphrase=None, dev_mode=True).public_keys()
    roles = sorted(k.info.role.value for k in keys)
    assert roles == ["pass", "root"]
    (pass_key,) = [k for k in keys if k.info.role is KeyRole.PASS]
    assert pass_key.info.pass_types == frozenset({"library", "parking"})
    assert f"created trust-root key {next(k.kid for k in keys if k.kid != pass_key.kid)}" in out

    secret_key = tmp_path / "instance" / "secret_key"
    assert len(secret_key.read_text().strip()) == 64
    assert stat.S_IMODE(secret_key.stat().st_mode) == 0o600

    with db.transaction(write=True) as session:
        admin = accounts.authenticate_user(
            session, username="admin", password=password, now=datetime.now(UTC)
        )
        assert admin is not None and admin.role == "admin"
        api = accounts.authenticate_token(session, token)
        assert api is not None and api.role == "admin"
    actions = sorted(e.action for e in audit_entries(db))
    assert actions == ["api_token.create", "key.generate", "key.generate", "user.add"]
    assert {e.actor for e in audit_entries(db)} == {OS_ACTOR}

    # Every later start: nothing new, no secret printed.
    files = sorted(p.name for p in (tmp_path / "keys").iterdir())
    session_secret = secret_key.read_text()
    again = wallet.ok("setup")
    assert "password:" not in again.output and "wpt_" not in again.output
    assert "no first admin created" in again.stdout and "signing keys: present" in again.stdout
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == files
    assert secret_key.read_text() == session_secret
    assert counts(db) == (1, 1)
    assert len(audit_entries(db)) == len(actions)


def test_setup_keeps_existing_users_and_makes_only_the_missing_token(
    db: Database, tmp_path: Path
) -> None:
    wallet = fresh_wallet(db, tmp_path)
    wallet.ok("users", "add", "anna", "--role", "admin", "--password-stdin", input="x" * 12)
    out = wallet.ok("setup").stdout
    assert "password:" not in out and len(TOKEN_LINE.findall(out)) == 1
    assert counts(db) == (1, 1)


def test_setup_outside_dev_mode_needs_the_production_secrets(db: Database, tmp_path: Path) -> None:
    wallet = fresh_wallet(db, tmp_path)
    result = wallet("setup", WALLET_DEV_MODE="0")
    assert result.exit_code == 1 and "set WALLET_SECRET_KEY" in result.stderr
    result = wallet("setup", WALLET_DEV_MODE="0", WALLET_SECRET_KEY="s" * 64)
    assert result.exit_code == 1 and "set WALLET_KEY_PASSPHRASE" in result.stderr
    assert counts(db) == (0, 0)

    # With both, keys are created encrypted.
    production = {"WALLET_SECRET_KEY": "s" * 64, "WALLET_KEY_PASSPHRASE": "a long passphrase"}
    wallet.ok("setup", WALLET_DEV_MODE="0", **production)
    pem = next((tmp_path / "keys").glob("*.key.pem")).read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    audit_key = (tmp_path / "keys" / "audit.key.pem").read_bytes()
    assert audit_key.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert not (tmp_path / "instance" / "secret_key").exists()
