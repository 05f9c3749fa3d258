"""Console page "Kennzeichen prüfen": a parked car's permit by its plate, for any staff.

The same check the scanner's devices make online (services.plate_checks): the
verdict, the zones the plate has a permit for and until when, nothing about the
holder. The plate typed here goes into no log.
"""

from __future__ import annotations

from flask import render_template, request
from flask.typing import ResponseReturnValue

from wallet.errors import InputError
from wallet.plateindex import PlateVerdict
from wallet.services import plate_checks
from wallet.web.console import blueprint
from wallet.web.i18n import _
from wallet.web.webcontext import context, now

# Verdict -> colour of the result panel, as on the verify page.
TONES = {
    PlateVerdict.VALID: "ok",
    PlateVerdict.SUSPENDED: "amber",
    PlateVerdict.AMBIGUOUS: "amber",
}


def _headline(verdict: PlateVerdict) -> str:
    return {
        PlateVerdict.VALID: _("Valid permit for this zone"),
        PlateVerdict.WRONG_ZONE: _("No permit for this zone"),
        PlateVerdict.SUSPENDED: _("Permit suspended"),
        PlateVerdict.EXPIRED: _("Permit expired"),
        PlateVerdict.NOT_YET_VALID: _("Permit not yet valid"),
        PlateVerdict.UNKNOWN: _("No permit for this plate"),
        PlateVerdict.AMBIGUOUS: _("Several cars fit: type the plate as written on the car"),
    }[verdict]


@blueprint.route("/plates", methods=["GET", "POST"])
def check_plate() -> ResponseReturnValue:
    values = {"plate": "", "zone": ""}
    if request.method == "GET":
        return render_template("console/plates.html", values=values, errors={}, result=None)
    values = {name: request.form.get(name, "")[:40] for name in values}
    ctx = context()
    try:
        with ctx.db.transaction(write=False) as session:
            result = plate_checks.check_plate(
                session, ctx.services, values["plate"], values["zone"], now=now()
            )
    except InputError as exc:
        message = (
            _("Type the plate as it is written on the car, for example D-AB 1234.")
            if exc.field == "plate"
            else _("Give the zone you are checking, for example 12.")
        )
        errors = {exc.field if exc.field in values else "plate": message}
        page = render_template("console/plates.html", values=values, errors=errors, result=None)
        return page, 422
    return render_template(
        "console/plates.html",
        values=values,
        errors={},
        result=result,
        headline=_headline(result.verdict),
        tone=TONES.get(result.verdict, "bad"),
    )
