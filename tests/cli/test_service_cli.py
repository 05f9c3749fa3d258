"""``wallet db | users | api-tokens | audit``: happy paths, failures, and the audit trail."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.cli.admin import (
    OS_ACTOR,
    PASSWORD,
    Wallet,
    audit_entries,
    issue,
    wallet_fixture,  # noqa: F401 - the `wallet` fixture
)
from tests.database import head_revision
from wallet.services import accounts
from wallet.store.db import Database


def login(db: Database, username: str, password: str) -> bool:
    with db.transaction(write=True) as session:
        user = accounts.authenticate_user(
            session, username=username, password=password, now=datetime.now(UTC)
        )
        return user is not None


# -- wallet db ------------------------------------------------------------------


def test_db_upgrade_migrates_a_new_database_once_and_current_reports_it(
    wallet: Wallet, tmp_path: Path
) -> None:
    fresh = {"WALLET_DATABASE_URL": f"sqlite:///{tmp_path / 'new.sqlite3'}"}
    result = wallet("db", "current", **fresh)
    assert result.exit_code == 1 and "no schema yet: run `wallet db upgrade`" in result.stderr

    result = wallet.ok("db", "upgrade", **fresh)
    assert f"from empty to revision {head_revision()}" in result.stdout
    result = wallet.ok("db", "upgrade", **fresh)
    assert f"already at revision {head_revision()}" in result.stdout
    assert wallet.ok("db", "current", **fresh).stdout.strip() == f"{head_revision()} (newest)"

    migrated = Database(fresh["WALLET_DATABASE_URL"])
    try:
        (entry,) = audit_entries(migrated, "db.upgrade")
    finally:
        migrated.dispose()
    assert entry.actor == OS_ACTOR and entry.details == {"from": None, "to": head_revision()}


def test_commands_on_a_database_without_schema_say_to_upgrade(
    wallet: Wallet, tmp_path: Path
) -> None:
    empty = {"WALLET_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}"}
    for args in (("users", "list"), ("passes", "list"), ("audit", "verify")):
        result = wallet(*args, **empty)
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith("error: ") and "run `wallet db upgrade`" in result.stderr


def test_a_bad_database_url_is_a_message_not_a_traceback(wallet: Wallet) -> None:
    result = wallet("users", "list", WALLET_DATABASE_URL="mysql://nobody@localhost/x")
    assert result.exit_code == 1 and "unsupported database 'mysql'" in result.stderr
    down = {"WALLET_DATABASE_URL": "postgresql://postgres:s3cret@127.0.0.1:1/nothing"}
    for args in (("users", "list"), ("db", "current"), ("db", "upgrade"), ("setup",)):
        result = wallet(*args, **down)
        assert result.exit_code == 1, result.output
        assert "check WALLET_DATABASE_URL" in result.stderr and len(result.stderr.splitlines()) == 1
        assert "s3cret" not in result.output and "postgres:***@127.0.0.1:1" in result.stderr


# -- wallet users ---------------------------------------------------------------


def test_users_add_list_passwd_disable(wallet: Wallet, db: Database) -> None:
    result = wallet.ok("users", "add", "anna", "--role", "admin", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert "added user anna (role admin)" in result.stdout
    assert PASSWORD not in result.output  # the prompt hides it
    wallet.ok("users", "add", "ben", "--role", "issuer", "--password-stdin", input=PASSWORD + "\n")
    assert login(db, "anna", PASSWORD) and login(db, "ben", PASSWORD)

    listed = json.loads(wallet.ok("users", "list", "--json").stdout)
    assert [(u["username"], u["role"], u["disabled"]) for u in listed] == [
        ("anna", "admin", False),
        ("ben", "issuer", False),
    ]
    table = wallet.ok("users", "list").stdout
    assert "anna" in table and "issuer" in table and "password" not in table.lower()

    new = "a much longer new passphrase"
    wallet.ok("users", "passwd", "ben", "--password-stdin", input=new + "\n")
    assert login(db, "ben", new) and not login(db, "ben", PASSWORD)

    assert "disabled user ben" in wallet.ok("users", "disable", "ben").stdout
    assert not login(db, "ben", new)
    assert "already disabled" in wallet.ok("users", "disable", "ben").stdout

    actions = [(e.action, e.target, e.actor) for e in audit_entries(db)]
    assert actions == [
        ("user.add", "user:anna", OS_ACTOR),
        ("user.add", "user:ben", OS_ACTOR),
        ("user.passwd", "user:ben", OS_ACTOR),
        ("user.disable", "user:ben", OS_ACTOR),
    ]


def test_users_failures(wallet: Wallet, db: Database) -> None:
    add = ("users", "add", "anna", "--role", "admin", "--password-stdin")
    wallet.ok(*add, input=PASSWORD + "\n")

    result = wallet(*add, input=PASSWORD + "\n")
    assert result.exit_code == 1 and "a user anna exists already" in result.stderr
    result = wallet("users", "add", "carl", "--role", "boss", "--password-stdin", input=PASSWORD)
    assert result.exit_code == 2 and "'boss' is not one of" in result.stderr
    result = wallet("users", "add", "carl", "--role", "admin", "--password-stdin", input="short\n")
    assert result.exit_code == 1 and "at least 12 characters" in result.stderr
    result = wallet("users", "add", "carl", "--role", "admin", "--password-stdin", input="")
    assert result.exit_code == 1 and "no password on standard input" in result.stderr
    result = wallet(
        "users", "add", "no way!", "--role", "admin", "--password-stdin", input=PASSWORD
    )
    assert result.exit_code == 1 and "username must be" in result.stderr
    # The confirmation must match; a mismatch asks again, and gives up when input ends.
    result = wallet("users", "add", "carl", "--role", "admin", input=f"{PASSWORD}\nother one!!!!\n")
    assert result.exit_code != 0 and "do not match" in result.output
    result = wallet("users", "passwd", "nobody", "--password-stdin", input=PASSWORD)
    assert result.exit_code == 1 and "no user nobody" in result.stderr
    result = wallet("users", "disable", "anna")
    assert result.exit_code == 1 and "last active admin" in result.stderr

    assert [e.target for e in audit_entries(db)] == ["user:anna"]  # failures leave no trace


def test_a_password_is_never_accepted_as_an_argument(wallet: Wallet, db: Database) -> None:
    for option in ("--password", "-p", "--pass"):
        result = wallet("users", "add", "carl", "--role", "admin", option, PASSWORD)
        assert result.exit_code == 2 and "No such option" in result.stderr
    result = wallet("users", "add", "carl", PASSWORD, "--role", "admin", "--password-stdin")
    assert result.exit_code == 2 and "unexpected extra argument" in result.stderr
    with db.transaction(write=False) as session:
        assert accounts.list_users(session) == []


def test_actor_comes_from_option_environment_or_os_user(wallet: Wallet, db: Database) -> None:
    add = ("users", "add", "--role", "verifier", "--password-stdin")
    wallet.ok(*add, "u1", input=PASSWORD)
    wallet.ok("--actor", "alice", *add, "u2", input=PASSWORD)
    wallet.ok(*add, "u3", "--actor", "bob", input=PASSWORD)
    wallet.ok(*add, "u4", input=PASSWORD, WALLET_ACTOR="carol")
    wallet.ok(*add, "u5", "--actor", "dave", input=PASSWORD, WALLET_ACTOR="carol")
    assert [e.actor for e in audit_entries(db)] == [OS_ACTOR, "alice", "bob", "carol", "dave"]
    result = wallet("--actor", "two words", "users", "list")
    assert result.exit_code == 1 and "actor 'two words' is not usable" in result.stderr


# -- wallet api-tokens --------------------------------------------------------------


def test_api_tokens_create_list_revoke(wallet: Wallet, db: Database) -> None:
    result = wallet.ok("api-tokens", "create", "--role", "issuer", "--name", "library-desk")
    secret = result.stdout.strip()
    assert secret.startswith(accounts.TOKEN_PREFIX) and len(secret) > 40
    assert "cannot be shown again" in result.stderr
    with db.transaction(write=False) as session:
        row = accounts.authenticate_token(session, secret)
        assert row is not None and row.role == "issuer"

    listed = json.loads(wallet.ok("api-tokens", "list", "--json").stdout)
    assert listed == [
        {
            "name": "library-desk",
            "role": "issuer",
            "prefix": secret[:10],
            "created_at": listed[0]["created_at"],
            "revoked_at": None,
        }
    ]
    table = wallet.ok("api-tokens", "list").stdout
    assert "library-desk" in table and secret[:10] in table and secret not in table

    assert (
        "revoked API token library-desk" in wallet.ok("api-tokens", "revoke", "library-desk").stdout
    )
    with db.transaction(write=False) as session:
        assert accounts.authenticate_token(session, secret) is None
    assert "already revoked" in wallet.ok("api-tokens", "revoke", "library-desk").stdout
    assert json.loads(wallet.ok("api-tokens", "list", "--json").stdout)[0]["revoked_at"]

    actions = [(e.action, e.actor) for e in audit_entries(db)]
    assert actions == [("api_token.create", OS_ACTOR), ("api_token.revoke", OS_ACTOR)]


def test_api_tokens_failures(wallet: Wallet) -> None:
    wallet.ok("api-tokens", "create", "--role", "admin", "--name", "ops")
    result = wallet("api-tokens", "create", "--role", "admin", "--name", "ops")
    assert result.exit_code == 1 and "an API token named ops exists already" in result.stderr
    result = wallet("api-tokens", "create", "--role", "root", "--name", "x1")
    assert result.exit_code == 2 and "'root' is not one of" in result.stderr
    result = wallet("api-tokens", "create", "--role", "admin")
    assert result.exit_code == 2 and "Missing option '--name'" in result.stderr
    result = wallet("api-tokens", "revoke", "nope")
    assert result.exit_code == 1 and "no API token named nope" in result.stderr


# -- wallet audit ---------------------------------------------------------------------


def test_audit_verify_and_show(wallet: Wallet) -> None:
    serial = issue(wallet)
    wallet.ok("passes", "revoke", serial, "--reason", "lost")
    wallet.ok("api-tokens", "create", "--role", "verifier", "--name", "scanner")
    assert "3 entries checked; the audit chain is intact" in wallet.ok("audit", "verify").stdout

    lines = wallet.ok("audit", "show", "--json").stdout.splitlines()
    actions = [json.loads(line)["action"] for line in lines]
    assert actions == ["api_token.create", "pass.revoke", "pass.issue"]  # newest first
    about = wallet.ok("audit", "show", "--target", serial, "--limit", "1").stdout
    assert "pass.revoke" in about and "pass.issue" not in about
    assert "no audit entries about nope" in wallet.ok("audit", "show", "--target", "nope").stdout


def test_audit_verify_names_the_first_tampered_entry(wallet: Wallet, db: Database) -> None:
    for _ in range(3):
        issue(wallet)
    assert "3 new entries sealed into the chain" in wallet.ok("audit", "verify").stdout
    ids = [e.id for e in audit_entries(db)]
    with db.engine.begin() as connection:
        connection.execute(
            text("UPDATE audit_log SET actor = 'mallory' WHERE id = :id"), {"id": ids[1]}
        )
    result = wallet("audit", "verify")
    assert result.exit_code == 1, result.output
    assert f"broken at entry {ids[1]}: its content does not match its hash" in result.stderr
    assert result.stdout == ""


def test_audit_verify_names_an_entry_that_cannot_even_be_read(wallet: Wallet, db: Database) -> None:
    if not db.is_sqlite:
        pytest.skip("PostgreSQL refuses to store malformed JSON in the first place")
    issue(wallet)
    issue(wallet)
    ids = [e.id for e in audit_entries(db)]
    with db.engine.begin() as connection:
        connection.execute(
            text("UPDATE audit_log SET details = '{oops' WHERE id = :id"), {"id": ids[1]}
        )
    result = wallet("audit", "verify")
    assert result.exit_code == 1 and f"broken at entry {ids[1]}" in result.stderr


def test_truncating_the_tail_is_named_by_wallet_audit_verify_against_the_instance_checkpoint(
    wallet: Wallet, db: Database, tmp_path: Path
) -> None:
    for _ in range(3):
        issue(wallet)
    wallet.ok("audit", "verify")
    assert json.loads((tmp_path / "instance" / "audit-checkpoint.json").read_text())["seq"] == 3
    with db.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_log WHERE seq = 3"))
        connection.execute(text("DELETE FROM audit_checkpoints"))
    issue(wallet)  # a new entry is not sealed over the gap
    result = wallet("audit", "verify")
    assert result.exit_code == 1, result.output
    assert "nothing sealed: " in result.stderr
    assert "removed at the tail: the chain ends at entry 2" in result.stderr
    assert "vouches for 3: entry 3 was removed at the tail" in result.stderr
    assert "tampered with (removed at the tail)" in result.stderr


def test_row_inserted_straight_into_the_database_is_named_forged_by_wallet_audit_verify(
    wallet: Wallet, db: Database
) -> None:
    issue(wallet)
    wallet.ok("audit", "verify")
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO audit_log (at, actor, action, target, details, content_hash) "
                "SELECT at, 'cli:mallory', action, target, details, content_hash FROM audit_log"
            )
        )
    forged = max(e.id for e in audit_entries(db))
    result = wallet("audit", "verify")
    assert result.exit_code == 1, result.output
    assert "1 entries refused: not written by the service" in result.stderr
    assert f"forged: the audit chain is broken at entry {forged}: its MAC" in result.stderr
    assert [e.seq for e in audit_entries(db)] == [1, None]  # never sealed as genuine


def test_the_worker_seals_genuine_entries_refuses_forged_ones_and_stops_at_a_cut_tail(
    wallet: Wallet, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    issue(wallet)
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO audit_log (at, actor, action, target, details, content_hash) "
                "SELECT at, 'cli:mallory', action, target, details, content_hash FROM audit_log"
            )
        )
    issue(wallet)
    wallet.ok("worker", "--once")
    assert [e.seq for e in audit_entries(db)] == [1, None, 2]
    assert "were refused: not written by the service" in caplog.text
    with db.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_log WHERE seq = 2"))
        connection.execute(text("DELETE FROM audit_checkpoints"))
    issue(wallet)
    wallet.ok("worker", "--once")  # pushes go on; sealing stops
    assert [e.seq for e in audit_entries(db)] == [1, None, None]
    assert "audit log not sealed (removed at the tail)" in caplog.text


def test_a_restored_backup_is_accepted_only_explicitly_and_the_acceptance_is_logged(
    wallet: Wallet, db: Database, tmp_path: Path
) -> None:
    issue(wallet)
    wallet.ok("audit", "verify")
    issue(wallet)
    wallet.ok("audit", "verify")
    with db.engine.begin() as connection:  # what a backup taken after the first entry holds
        connection.execute(text("DELETE FROM audit_log WHERE seq = 2"))
        connection.execute(text("DELETE FROM audit_checkpoints WHERE seq = 2"))
    assert "removed at the tail" in wallet("audit", "verify").stderr
    refused = wallet("audit", "accept-restore", input="n\n")
    assert refused.exit_code == 1 and "removed at the tail" in wallet("audit", "verify").stderr
    accepted = wallet.ok("audit", "accept-restore", "--yes")
    assert "now ends at entry 1 (the checkpoint vouched for 2)" in accepted.stdout
    assert "entries checked; the audit chain is intact" in wallet.ok("audit", "verify").stdout
    (entry,) = audit_entries(db, "audit.restore_accepted")
    details = entry.details
    assert (entry.seq, details["checkpoint_seq"], details["chain_ends_at"]) == (2, 2, 1)
    kept = tmp_path / "instance" / entry.details["kept_as"]
    assert json.loads(kept.read_text())["seq"] == 2


def test_accepting_a_restore_refuses_a_log_tampered_with_otherwise(
    wallet: Wallet, db: Database, tmp_path: Path
) -> None:
    issue(wallet)
    issue(wallet)
    wallet.ok("audit", "verify")
    with db.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_log WHERE seq = 2"))
        connection.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1"))
    result = wallet("audit", "accept-restore", "--yes")
    assert result.exit_code == 1
    assert "tampered with otherwise (changed, removed at the tail)" in result.stderr
    kept = json.loads((tmp_path / "instance" / "audit-checkpoint.json").read_text())
    assert kept["seq"] == 2  # the evidence stays where verify looks for it


# -- the command itself -------------------------------------------------------------------


def test_every_command_is_listed_and_unknown_ones_are_refused(wallet: Wallet) -> None:
    listed = wallet.ok("--help").stdout
    for name in (
        "api-tokens",
        "audit",
        "bundle",
        "db",
        "keys",
        "passes",
        "setup",
        "status",
        "users",
    ):
        assert f"  {name} " in listed
    result = wallet("frobnicate")
    assert result.exit_code == 2 and "No such command" in result.stderr


def test_the_staff_device_tool_loads_no_server_packages() -> None:
    """wallet-verify shares wallet.cli; the admin commands load only when they run."""
    code = (
        "import sys, wallet.cli.verify\n"
        "heavy = ('sqlalchemy', 'alembic', 'passlib', 'flask')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == ""


def test_set_role_ends_the_users_console_sessions(wallet: Wallet, db: Database) -> None:
    wallet.ok("users", "add", "anna", "--role", "admin", "--password-stdin", input=PASSWORD)
    wallet.ok("users", "add", "ben", "--role", "issuer", "--password-stdin", input=PASSWORD)
    moment = datetime.now(UTC)
    with db.transaction(write=True) as session:
        secret = accounts.start_session(
            session, username="ben", lifetime=timedelta(hours=8), now=moment
        )
    result = wallet.ok("users", "set-role", "ben", "--role", "verifier")
    assert "now has the role verifier" in result.stdout
    with db.transaction(write=False) as session:
        assert accounts.get_user(session, "ben").role == "verifier"
        assert accounts.session_user(session, secret, now=moment) is None
    assert "already" in wallet.ok("users", "set-role", "ben", "--role", "verifier").stdout
    result = wallet("users", "set-role", "anna", "--role", "issuer")
    assert result.exit_code == 1 and "last active admin" in result.stderr
    entries = [(e.action, e.details) for e in audit_entries(db) if e.action == "user.role"]
    assert entries == [("user.role", {"role": "verifier", "was": "issuer"})]


def test_a_worker_round_leaves_the_heartbeat_readyz_looks_for(wallet: Wallet, db: Database) -> None:
    wallet.ok("worker", "--once")
    with db.engine.begin() as connection:
        workers = connection.execute(text("SELECT worker FROM worker_heartbeats")).scalars().all()
    assert len(workers) == 1 and workers[0].rsplit(":", 1)[1].isdigit()  # host:pid
