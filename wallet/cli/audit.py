"""``wallet audit``: check the hash chain of the audit log, and read it."""

from __future__ import annotations

import click
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, StatementError

from wallet.cli.context import Context, pass_context
from wallet.cli.listing import Column, json_option, print_rows
from wallet.errors import WalletError
from wallet.services import audit as service
from wallet.store.models import AuditEntryRow


class AuditChainError(WalletError):
    """The audit log was changed after it was written."""

    code = "audit_chain_broken"


@click.group()
def audit() -> None:
    """The append-only audit log; each sealed entry carries the hash of the one before."""


@audit.command()
@pass_context
def verify(obj: Context) -> None:
    """Seal new entries, then walk the whole chain; exit 1 names the first that does not fit."""
    sealed = service.seal_all(lambda: obj.transaction(write=True))
    if sealed:
        click.echo(f"{sealed} new entries sealed into the chain")
    with obj.transaction(write=False) as session:
        try:
            report = service.verify_chain(session)
        except DBAPIError:
            raise  # the database itself failed, not an entry
        except (ValueError, TypeError, StatementError) as exc:
            unreadable = _first_unreadable(obj)
            raise AuditChainError(
                f"the audit chain is broken at entry {unreadable}: it cannot even be read "
                f"({type(exc).__name__}). The log was changed outside the service: compare "
                "that entry with a backup and investigate"
            ) from exc
    if not report.intact:
        raise AuditChainError(
            f"the audit chain is broken at entry {report.first_broken}: {report.problem} "
            f"({report.entries - 1} entries before it are intact). The log was changed "
            "outside the service: compare that entry with a backup and investigate"
        )
    click.echo(f"{report.entries} entries checked; the audit chain is intact")


def _first_unreadable(obj: Context) -> int | None:
    """The id of the first entry whose columns no longer load (slow; only after a failure)."""
    with obj.transaction(write=False) as session:
        ids = session.scalars(select(AuditEntryRow.id).order_by(AuditEntryRow.id)).all()
    for entry_id in ids:
        with obj.transaction(write=False) as session:
            try:
                session.scalars(select(AuditEntryRow).where(AuditEntryRow.id == entry_id)).one()
            except DBAPIError:
                raise
            except (ValueError, TypeError, StatementError):
                return entry_id
    return None


@audit.command()
@click.option("--target", metavar="SERIAL", help="Only entries about this pass (or user:NAME).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@json_option
@pass_context
def show(obj: Context, target: str | None, limit: int, as_json: bool) -> None:
    """The newest entries first (--json: one object per line)."""
    with obj.transaction(write=False) as session:
        if target is not None:
            rows = service.trail(session, target, limit=limit)
        else:
            query = select(AuditEntryRow).order_by(AuditEntryRow.id.desc()).limit(limit)
            rows = list(session.scalars(query))
    print_rows(
        rows,
        as_json=as_json,
        json_lines=True,
        header=False,
        to_json=lambda row: {
            "id": row.id,
            "at": row.at.isoformat(),
            "actor": row.actor,
            "action": row.action,
            "target": row.target,
            "details": row.details,
            "seq": row.seq,
            "hash": row.hash,
        },
        columns=[
            Column("ID", 7, lambda row: f"#{row.id}"),
            Column("AT", 20, lambda row: f"{row.at:%Y-%m-%d %H:%M:%S}"),
            Column("ACTOR", 20, lambda row: row.actor),
            Column("ACTION", 16, lambda row: row.action),
            Column("TARGET", 24, lambda row: row.target or "-"),
            Column("DETAILS", 0, _details),
        ],
        empty="no audit entries" + (f" about {target}" if target else ""),
    )


def _details(row: AuditEntryRow) -> str:
    return ", ".join(f"{k}={v}" for k, v in row.details.items() if v is not None)
