"""``wallet passes renew``: successors with a new expiry, one pass or a whole file.

From a file, each serial is its own transaction (a bad line never undoes the
others), and a result CSV (0600, formula-safe, for Excel and the letter print)
lists each successor with its claim link, or says that the link was e-mailed.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import IO

import click

from wallet.cli.context import Context, actor_option, pass_context
from wallet.cli.serials import SERIAL_COMMAND, aware_time, file_name, read_serials
from wallet.errors import InputError, WalletError
from wallet.files import create_private
from wallet.formats.csvtable import csv_rows, write_table
from wallet.services import renewals

RESULT_HEADER = ("serial", "new_serial", "valid_until", "claim_url", "channel", "error")


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _renew(obj: Context, serial: str, valid_until: datetime | None) -> renewals.Renewal:
    with obj.transaction(write=True, signs=True) as session:
        return renewals.renew_pass(
            session, obj.services, serial, valid_until=valid_until, actor=obj.actor, now=obj.now()
        )


def _cells(renewal: renewals.Renewal, public_url: str) -> list[str]:
    record = renewal.issued.record
    link = "" if renewal.emailed else renewal.issued.claim_url(public_url)
    channel = "email" if renewal.emailed else "link"
    return [renewal.renewed, record.serial, record.valid_until.isoformat(), link, channel, ""]


@click.command(context_settings=SERIAL_COMMAND)
@click.argument("serial", required=False)
@click.option(
    "--file",
    "from_file",
    type=click.File("rb"),
    metavar="FILE|-",
    help="Renew every serial in FILE (one a line; blank lines and # comments are skipped).",
)
@click.option(
    "--valid-until",
    callback=aware_time,
    metavar="DATETIME",
    help="End of the new pass (default: one validity period after the old one's end).",
)
@click.option(
    "--result",
    "result_path",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="With --file: where to write the result CSV (default: renew-result-<time>.csv here).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the new pass as JSON.")
@actor_option
@pass_context
def renew(
    obj: Context,
    serial: str | None,
    from_file: IO[bytes] | None,
    valid_until: datetime | None,
    result_path: Path | None,
    as_json: bool,
) -> None:
    """Issue the successor of a pass: same holder and card number, a new expiry.

    Apple and Google passes update in place; the old token stays valid until the
    new pass is claimed or the pass type's grace period ends.
    """
    if (serial is None) == (from_file is None):
        raise click.UsageError("give either a SERIAL or --file FILE")
    if from_file is not None:
        _renew_file(obj, from_file, valid_until, result_path)
        return
    assert serial is not None
    renewal = _renew(obj, serial, valid_until)
    public_url = obj.settings.public_url
    record = renewal.issued.record
    if as_json:
        data = {**renewal.issued.to_json(public_url), "renews": renewal.renewed,
                "old_retires_at": renewal.retire_at.isoformat(),
                "claim_link_emailed": renewal.emailed}  # fmt: skip
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    click.echo(f"renewed {renewal.renewed} as {record.serial}")
    click.echo(f"  valid:     {_when(record.valid_from)} until {_when(record.valid_until)}")
    click.echo(
        f"  old pass:  valid until the new one is claimed, at most until {_when(renewal.retire_at)}"
    )
    click.echo("  wallets:   Apple and Google passes update in place (`wallet worker` pushes)")
    if renewal.emailed:
        click.echo("  claim URL: queued for e-mail to the holder; `wallet worker` sends it")
        return
    click.echo(f"  claim URL: {renewal.issued.claim_url(public_url)}")
    click.echo("             (shown only now: the link's secret is stored hashed)")


def _renew_file(
    obj: Context, handle: IO[bytes], valid_until: datetime | None, result_path: Path | None
) -> None:
    serials, duplicates = read_serials(handle)
    if not serials:
        raise InputError(
            f"no serials in {file_name(handle)}: put one serial on each line", field="file"
        )
    path = result_path or Path(f"renew-result-{obj.now():%Y%m%d-%H%M%S}.csv")
    public_url = obj.settings.public_url
    renewed = failed = 0
    with create_private(path, field="result") as out:
        out.write(write_table(RESULT_HEADER, []))
        with click.progressbar(serials, label="renewing", file=sys.stderr, show_pos=True) as bar:
            for serial in bar:
                try:
                    cells = _cells(_renew(obj, serial, valid_until), public_url)
                    renewed += 1
                except WalletError as exc:
                    cells = [serial, "", "", "", "", exc.message]
                    failed += 1
                out.write(csv_rows([cells]))
                out.flush()  # a run stopped midway still lists what it renewed
    repeated = f" ({duplicates} repeated lines skipped)" if duplicates else ""
    click.echo(f"{renewed} renewed, {failed} failed{repeated}; result in {path} (keep it safe)")
    if failed:
        click.echo(
            f"error: {failed} passes were not renewed; the result file says why for each. "
            "Fix them and run again with just those serials.",
            err=True,
        )
        raise click.exceptions.Exit(1)
