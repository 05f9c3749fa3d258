"""``wallet audit``: check the hash chain of the audit log, and read it."""

from __future__ import annotations

import click
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, StatementError

from wallet.cli.context import Context, actor_option, pass_context
from wallet.cli.listing import Column, json_option, print_rows
from wallet.errors import WalletError
from wallet.services import audit as service
from wallet.store.models import AuditEntryRow


@click.group()
def audit() -> None:
    """The append-only audit log: entries with a MAC, a keyed chain, signed checkpoints."""


@audit.command()
@pass_context
def verify(obj: Context) -> None:
    """Seal new entries, then walk the whole chain; exit 1 names every kind of tampering.

    The kinds: changed, removed in the middle, removed at the tail (against the
    checkpoint kept in the instance folder), reordered, forged, recomputed chain.
    """
    key = obj.services.audit_key
    outside_file = obj.services.audit_checkpoint_file
    try:
        sealed = service.seal_all(
            lambda: obj.transaction(write=True),
            key=key,
            checkpoint_file=outside_file,
            clock=obj.now,
        )
    except service.AuditTamperedError as exc:
        click.echo(f"nothing sealed: {exc.message}", err=True)
    else:
        if sealed.sealed:
            click.echo(f"{sealed.sealed} new entries sealed into the chain")
        if sealed.refused:
            click.echo(
                f"{len(sealed.refused)} entries refused: not written by the service", err=True
            )
    with obj.transaction(write=False) as session:
        try:
            report = service.verify_chain(
                session, key=key, outside=service.read_checkpoint_file(outside_file)
            )
        except DBAPIError:
            raise  # the database itself failed, not an entry
        except (ValueError, TypeError, StatementError) as exc:
            unreadable = _first_unreadable(obj)
            raise service.AuditTamperedError(
                f"the audit chain is broken at entry {unreadable}: it cannot even be read "
                f"({type(exc).__name__}). The log was changed outside the service: compare "
                "that entry with a backup and investigate",
                kind=service.Tampering.CHANGED,
            ) from exc
    if not report.intact:
        for problem in report.problems:
            where = f"the audit chain is broken at entry {problem.entry}: " if problem.entry else ""
            click.echo(f"{problem.kind}: {where}{problem.message}", err=True)
        kinds = ", ".join(sorted({p.kind.value for p in report.problems}))
        raise service.AuditTamperedError(
            f"the audit log was tampered with ({kinds}). It was changed outside the "
            "service: compare the entries named above with a backup and investigate",
            kind=report.problems[0].kind,
        )
    click.echo(f"{report.entries} entries checked; the audit chain is intact")


@audit.command("accept-restore")
@click.confirmation_option(
    prompt="Accept that the audit log now ends earlier than its last checkpoint?"
)
@actor_option
@pass_context
def accept_restore(obj: Context) -> None:
    """After restoring a database backup: accept that the chain ends before the checkpoint.

    A restored backup lacks the newest entries, which ``wallet audit verify``
    rightly calls removed at the tail, and sealing stops. Only that is
    accepted, nothing else verify names: the old checkpoint is kept beside the
    new one as evidence, and the acceptance is itself an audit entry.
    """
    key = obj.services.audit_key
    path = obj.services.audit_checkpoint_file
    document = service.read_checkpoint_file(path)
    if document is None:
        click.echo("no checkpoint outside the database: nothing to accept")
        return
    with obj.transaction(write=False) as session:
        report = service.verify_chain(session, key=key, outside=document)
    if report.intact:
        click.echo("the audit chain reaches its checkpoint: nothing to accept")
        return
    if report.kinds != {service.Tampering.REMOVED_AT_THE_TAIL}:
        kinds = ", ".join(sorted(k.value for k in report.kinds))
        raise service.AuditTamperedError(
            f"only a chain that ends early can be accepted, but the audit log was also "
            f"tampered with otherwise ({kinds}); `wallet audit verify` names the entries",
            kind=report.problems[0].kind,
        )
    checkpoint = key.public.verify_checkpoint(document)
    now = obj.now()
    archived = service.supersede_checkpoint_file(path, now=now)
    with obj.transaction(write=True) as session:
        service.record(
            session,
            key=key,
            actor=obj.actor,
            action="audit.restore_accepted",
            details={
                "checkpoint_seq": checkpoint.seq,
                "checkpoint_head": checkpoint.head,
                "checkpoint_at": checkpoint.at.isoformat(),
                "chain_ends_at": report.entries - report.unsealed,
                "kept_as": archived.name,
            },
            now=now,
        )
    service.seal_all(
        lambda: obj.transaction(write=True), key=key, checkpoint_file=path, clock=obj.now
    )
    click.echo(
        f"accepted: the audit chain now ends at entry {report.entries - report.unsealed} "
        f"(the checkpoint vouched for {checkpoint.seq}); the old checkpoint is kept as "
        f"{archived}"
    )


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
