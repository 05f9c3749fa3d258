"""``wallet holders``: the contact data of imported holders, kept no longer than needed."""

from __future__ import annotations

from datetime import timedelta

import click

from wallet.cli.context import Context, actor_option, pass_context
from wallet.cli.passes import Duration
from wallet.services import contacts


@click.group()
def holders() -> None:
    """Holder contact data (e-mail and postal addresses from imports)."""


@holders.command()
@click.option(
    "--older-than",
    type=Duration(),
    default="30d",
    show_default=True,
    help="Clear addresses without consent to reminders once this old.",
)
@click.option("--dry-run", is_flag=True, help="Only count what would go.")
@actor_option
@pass_context
def purge(obj: Context, older_than: timedelta, dry_run: bool) -> None:
    """Delete contacts of revoked or long expired passes; clear addresses without consent."""
    with obj.transaction(write=not dry_run) as session:
        report = contacts.purge(
            session, older_than=older_than, audit_key=obj.services.audit_key, actor=obj.actor,
            now=obj.now(), dry_run=dry_run,
        )  # fmt: skip
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb} the contacts of {report.deleted} revoked or long expired passes; "
               f"{'would clear' if dry_run else 'cleared'} {report.cleared} addresses "
               "without consent to reminders")  # fmt: skip
