"""``wallet import``: a CSV export of existing card holders in, a pass per holder out.

The whole file is checked first; ``--dry-run`` stops there. Then passes are issued
in batches, with a progress line on stderr. A result file (CSV for Excel, written
0600 because it holds claim links) gets one row per input row as each batch
commits; run the same file again after an interruption and it continues.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path

import click

from wallet.cli.context import Context, actor_option, pass_context
from wallet.files import create_private
from wallet.formats.csvtable import csv_rows, open_table, write_table
from wallet.services import imports

SHOWN_PROBLEMS = 50


def _summary(report: imports.ImportCheck, lang: str) -> str:
    invalid = len(report.invalid_rows)
    if lang == "en":
        return (f"check: {report.rows} rows, {report.to_issue} to issue, "
                f"{report.issued_before} issued before, {invalid} invalid")  # fmt: skip
    return (f"Prüfung: {report.rows} Zeilen, {report.to_issue} auszustellen, "
            f"{report.issued_before} bereits ausgestellt, {invalid} ungültig")  # fmt: skip


def _print_problems(report: imports.ImportCheck, lang: str) -> None:
    row_word, column_word = ("row", "column") if lang == "en" else ("Zeile", "Spalte")
    for problem in report.problems[:SHOWN_PROBLEMS]:
        text = problem.message.get(lang)
        click.echo(f"  {row_word} {problem.row}, {column_word} {problem.column}: {text}", err=True)
    rest = len(report.problems) - SHOWN_PROBLEMS
    if rest > 0:
        more = f"… and {rest} more (--json lists all)" if lang == "en" else (
            f"… und {rest} weitere (--json zeigt alle)")  # fmt: skip
        click.echo(f"  {more}", err=True)
    if report.ignored_columns:
        word = "ignored columns" if lang == "en" else "nicht verwendete Spalten"
        click.echo(f"  {word}: {', '.join(report.ignored_columns)}", err=True)


class _Progress:
    """rows done, rows/s and the time left, on one line of stderr."""

    def __init__(self, total: int, lang: str) -> None:
        self.total, self.lang, self.done = total, lang, 0
        self.started = time.monotonic()
        self.live = sys.stderr.isatty()

    def advance(self, count: int) -> None:
        self.done += count
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate else 0.0
        if self.lang == "en":
            line = (
                f"issuing: {self.done}/{self.total} rows · {rate:,.0f} rows/s · {left:,.0f} s left"
            )
        else:
            line = (f"Ausstellen: {self.done}/{self.total} Zeilen · {rate:,.0f} Zeilen/s · "
                    f"noch {left:,.0f} s")  # fmt: skip
        click.echo(("\r" + line) if self.live else line, err=True, nl=not self.live)

    def finish(self) -> None:
        if self.live:
            click.echo("", err=True)


@click.command(name="import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--type", "type_id", required=True, help="The pass type, e.g. library.")
@click.option("--dry-run", is_flag=True, help="Only check the file and report; issue nothing.")
@click.option(
    "--skip-invalid", is_flag=True, help="Issue the valid rows of a file that has invalid ones."
)
@click.option(
    "--send-email", is_flag=True, help="Send rows with an e-mail address their link by e-mail."
)
@click.option(
    "--result",
    "result_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the result CSV (default: import-result-<time>.csv here).",
)
@click.option(
    "--lang",
    type=click.Choice(["de", "en"]),
    default="de",
    show_default=True,
    help="Language of the report and the result file.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the check report as JSON.")
@actor_option
@pass_context
def import_command(
    obj: Context, file: Path, type_id: str, dry_run: bool, skip_invalid: bool, send_email: bool,
    result_path: Path | None, lang: str, as_json: bool,
) -> None:  # fmt: skip
    """Import existing card holders from a CSV export (German Excel works as it is)."""
    table = open_table(file, max_rows=imports.MAX_ROWS)  # read row by row, twice
    with obj.transaction(write=False) as session:
        report = imports.check(session, obj.services, type_id, table)
    if as_json:
        click.echo(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    click.echo(_summary(report, lang), err=True)
    _print_problems(report, lang)
    if dry_run:
        if report.problems:
            sys.exit(1)
        return
    if report.problems and not skip_invalid:
        hint = ("nothing was issued: fix the rows, or issue the others with --skip-invalid"
                if lang == "en" else
                "nichts ausgestellt: Zeilen korrigieren oder die übrigen mit --skip-invalid "
                "ausstellen")  # fmt: skip
        raise click.ClickException(hint)
    path = result_path or Path(f"import-result-{datetime.now():%Y%m%d-%H%M%S}.csv")
    _issue(obj, report, path, skip_invalid=skip_invalid, send_email=send_email, lang=lang)


def _issue(
    obj: Context, report: imports.ImportCheck, path: Path, *, skip_invalid: bool,
    send_email: bool, lang: str,
) -> None:  # fmt: skip
    batches = imports.run(
        lambda: obj.transaction(write=True, signs=True), obj.services, report,
        skip_invalid=skip_invalid, send_email=send_email, actor=obj.actor, clock=obj.now,
    )  # fmt: skip
    progress = _Progress(report.rows, lang)
    with create_private(path, field="result") as out:
        out.write(write_table(imports.RESULT_HEADER[lang], []))
        for outcomes in batches:
            out.write(csv_rows(o.cells(lang) for o in outcomes))
            out.flush()
            os.fsync(out.fileno())
            progress.advance(len(outcomes))
    progress.finish()
    done = "result (claim links: keep it safe)" if lang == "en" else (
        "Ergebnis (enthält Links zu den Ausweisen: sicher aufbewahren)")  # fmt: skip
    click.echo(f"{done}: {path}")
