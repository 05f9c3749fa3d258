"""``wallet db``: bring the schema up to date, show where it stands."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import click
from alembic.util.exc import CommandError
from sqlalchemy.exc import DBAPIError

from wallet.auditkey import AuditKey
from wallet.cli.context import (
    Context,
    DatabaseError,
    actor_option,
    describe_db_error,
    pass_context,
)
from wallet.services import audit
from wallet.store.db import head_revision


@dataclass(frozen=True)
class Upgrade:
    before: str | None
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def ensure_audit_key(obj: Context) -> AuditKey:
    """The audit key, created where missing (like ``wallet setup``'s signing keys)."""
    if obj.keystore.create_audit_key():
        click.echo(
            f"created the audit key in {obj.keystore.audit_key_path}: back it up with the "
            "signing keys; every host of this instance needs the same file"
        )
    return obj.services.audit_key  # a wrong passphrase fails here, not in the workers


def upgrade_database(obj: Context) -> Upgrade:
    """Migrate to the newest revision; a change is written to the audit log."""
    # Alembic narrates every step at INFO; the result below says what matters.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    key = ensure_audit_key(obj)  # before anything writes to the log
    try:
        before = obj.db.current_revision()
        obj.db.upgrade()
        after = obj.db.current_revision()
    except DBAPIError as exc:
        raise DatabaseError(
            f"cannot migrate {obj.database_label()}: {describe_db_error(exc)}; "
            "check WALLET_DATABASE_URL and that the database server is running"
        ) from exc
    except CommandError as exc:
        raise DatabaseError(
            f"cannot migrate {obj.database_label()}: {exc}; is this wallet older than the "
            "database? Install the newest version"
        ) from exc
    if after is None:
        raise DatabaseError(f"the migrations left no revision in {obj.database_label()}")
    result = Upgrade(before=before, after=after)
    if result.changed:
        with obj.transaction(write=True) as session:
            audit.record(
                session,
                key=key,
                actor=obj.actor,
                action="db.upgrade",
                details={"from": before, "to": after},
                now=obj.now(),
            )
    return result


@click.group()
def db() -> None:
    """The database schema (WALLET_DATABASE_URL, default SQLite in WALLET_INSTANCE_DIR)."""


@db.command()
@actor_option
@pass_context
def upgrade(obj: Context) -> None:
    """Apply every pending migration; prints the revision."""
    result = upgrade_database(obj)
    where = obj.database_label()
    if result.changed:
        start = result.before or "empty"
        click.echo(f"upgraded {where} from {start} to revision {result.after}")
    else:
        click.echo(f"{where} is already at revision {result.after} (newest)")


@db.command()
@pass_context
def current(obj: Context) -> None:
    """Print the schema's revision; exits 1 if it is missing or behind."""
    try:
        revision = obj.db.current_revision()
    except DBAPIError as exc:
        raise DatabaseError(
            f"cannot read {obj.database_label()}: {describe_db_error(exc)}; "
            "check WALLET_DATABASE_URL and that the database server is running"
        ) from exc
    head = head_revision()
    if revision is None:
        raise DatabaseError(f"{obj.database_label()} has no schema yet: run `wallet db upgrade`")
    if revision != head:
        click.echo(revision)
        raise DatabaseError(f"revision {revision} is behind {head}: run `wallet db upgrade`")
    click.echo(f"{revision} (newest)")
