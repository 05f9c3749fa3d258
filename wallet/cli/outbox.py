"""``wallet outbox``: the wallet updates waiting, given up, or delivered; and retrying them."""

from __future__ import annotations

import click

from wallet.cli.context import Context, actor_option, pass_context
from wallet.cli.listing import Column, json_option, print_rows
from wallet.services import audit
from wallet.services import outbox as service


@click.group()
def outbox() -> None:
    """Pushes to Apple devices and Google Wallet updates (delivered by `wallet worker`)."""


@outbox.command(name="list")
@click.option(
    "--state",
    type=click.Choice(["pending", "failed", "done"]),
    default="failed",
    show_default=True,
)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@json_option
@pass_context
def list_rows(obj: Context, state: str, limit: int, as_json: bool) -> None:
    """Deliveries in one state, oldest first, with the pass and the last problem (--json:
    one object per line)."""
    with obj.transaction(write=False) as session:
        found = service.rows_in_state(session, state, limit=limit)
    print_rows(
        found,
        as_json=as_json,
        json_lines=True,
        header=False,
        to_json=lambda row: row,
        columns=[
            Column("ID", 7, lambda row: f"#{row['id']}"),
            Column("KIND", 12, lambda row: str(row["kind"])),
            Column("SERIAL", 18, lambda row: str(row["serial"] or "-")),
            Column("TRIES", 9, lambda row: f"tries {row['attempts']}"),
            Column("PROBLEM", 0, lambda row: str(row["last_error"] or "")),
        ],
        empty=f"no {state} deliveries",
    )


@outbox.command()
@actor_option
@pass_context
def retry(obj: Context) -> None:
    """Queue every given-up delivery again, e.g. after fixing the APNs or Google set-up."""
    now = obj.now()
    with obj.transaction(write=True) as session:
        count = service.retry_failed(session, now=now)
        if count:
            audit.record(
                session,
                key=obj.services.audit_key,
                actor=obj.actor,
                action="outbox.retry",
                details={"count": count},
                now=now,
            )
    if count:
        click.echo(f"{count} deliveries queued again; `wallet worker` sends them")
    else:
        click.echo("nothing to retry: no delivery has been given up")
