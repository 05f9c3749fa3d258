"""``wallet letters``: print-ready PDFs of the letters that bring holders their claim link."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import click

from wallet.cli.context import Context, pass_context
from wallet.errors import InputError
from wallet.formats.letter import letter_files
from wallet.services import letters

_SERIAL = ("seriennummer", "serial")
_LINK = ("link zum ausweis", "claim link")
_CHANNEL = ("kanal", "channel")


def _links(path: Path) -> list[tuple[str, str]]:
    """(serial, claim URL) of every row of an import result whose link is in the file."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path} as an import result: {exc}", field="file") from exc
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))
    header = [cell.strip().casefold() for cell in rows[0]] if rows else []

    def column(names: tuple[str, ...]) -> int:
        for name in names:
            if name in header:
                return header.index(name)
        raise InputError(f"{path} is not a result of `wallet import` (no {names[1]} column)",
                         field="file")  # fmt: skip

    serial, link, channel = column(_SERIAL), column(_LINK), column(_CHANNEL)
    last = max(serial, link, channel)
    return [(r[serial], r[link]) for r in rows[1:]
            if len(r) > last and r[channel] == "link" and r[link]]  # fmt: skip


@click.command()
@click.argument("result", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for the PDF files (created; 0700).",
)
@click.option(
    "--per-file",
    type=click.IntRange(1, 5000),
    default=1000,
    show_default=True,
    help="Letters per PDF file.",
)
@click.option(
    "--sender",
    default="",
    help="The sender line above the address (default: the pass type's issuer).",
)
@pass_context
def letters_command(obj: Context, result: Path, out_dir: Path, per_file: int, sender: str) -> None:
    """Letters (DIN 5008, A4) for the holders in an import result whose link is in it."""
    links = _links(result)
    with obj.transaction(write=False) as session:
        plan = letters.plan_letters(session, obj.services, links, now=obj.now())
    for serial, why in plan.left_out:
        click.echo(f"no letter for {serial}: {why}", err=True)
    if not plan.letters:
        raise click.ClickException("no letters to print: every row was left out (see above)")
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    designs = obj.services.formats.print_designs
    line = sender or plan.letters[0].wallet_pass.pass_type.issuer_name.de
    done, total = 0, len(plan.letters)
    files = letter_files(plan.letters, designs=designs, sender=line, now=obj.now(),
                         per_file=per_file)  # fmt: skip
    for number, (count, data) in enumerate(files, start=1):
        path = out_dir / f"letters-{number:04d}.pdf"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        done += count
        click.echo(f"Briefe / letters: {done}/{total} ({path.name})", err=True)
    click.echo(f"{done} letters, sorted by postcode, in {out_dir} (they hold claim links and "
               "addresses: hand them to the print shop only)")  # fmt: skip
