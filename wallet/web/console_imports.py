"""Console page for a CSV import: staff upload the export, see the check, and get the result.

The check is shown as a page (row, column, problem in the staff's language).
Issuing answers with the result CSV as a download: the claim links exist in clear
only in that file, which the server does not keep. Issuers and admins only.
"""

from __future__ import annotations

from datetime import datetime

from flask import Response, g, render_template, request
from flask.typing import ResponseReturnValue

from wallet.errors import InputError
from wallet.formats.csvtable import csv_rows, read_table, write_table
from wallet.services import imports
from wallet.web import i18n
from wallet.web.bodies import IMPORT_BODY_BYTES
from wallet.web.console import Staff, blueprint
from wallet.web.i18n import _
from wallet.web.webcontext import context, now

MAX_ROWS = 10_000  # larger files: `wallet import`, which shows progress and resumes


def _page(*, report: imports.ImportCheck | None = None, error: str = "",
          status: int = 200) -> tuple[str, int]:  # fmt: skip
    ctx = context()
    page = render_template(
        "console/import.html",
        pass_types=list(ctx.services.pass_types.values()),
        report=report,
        error=error,
        max_rows=MAX_ROWS,
    )
    return page, status


@blueprint.get("/import")
def import_form() -> ResponseReturnValue:
    return _page()


@blueprint.post("/import")
def import_file() -> ResponseReturnValue:
    staff: Staff = g.staff
    ctx = context()
    request.max_content_length = IMPORT_BODY_BYTES + 64 * 1024  # the file and the form
    upload = request.files.get("file")
    type_id = request.form.get("type", "")
    if upload is None or not upload.filename:
        return _page(error=_("Please choose the CSV file to import."), status=422)
    if type_id not in ctx.services.pass_types:
        return _page(error=_("Choose one of the listed pass types."), status=422)
    try:
        table = read_table(upload.read(IMPORT_BODY_BYTES + 1)[:IMPORT_BODY_BYTES],
                           max_rows=MAX_ROWS)  # fmt: skip
    except InputError as exc:
        return _page(error=_("The file cannot be read: %(why)s", why=exc.message), status=422)
    with ctx.db.transaction(write=False) as session:
        report = imports.check(session, ctx.services, type_id, table)
    skip_invalid = request.form.get("skip_invalid") == "yes"
    if request.form.get("action") != "issue" or (report.problems and not skip_invalid):
        return _page(report=report, status=200 if not report.problems else 422)
    lang = i18n.language()
    rows = [
        o.cells(lang)
        for batch in imports.run(
            lambda: ctx.db.transaction(write=True), ctx.services, report,
            skip_invalid=skip_invalid, send_email=False, actor=staff.actor, clock=now,
        )
        for o in batch
    ]  # fmt: skip
    data = write_table(imports.RESULT_HEADER[lang], []) + csv_rows(rows)
    name = f"import-{type_id}-{datetime.now():%Y%m%d-%H%M%S}.csv"
    response = Response(data, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
