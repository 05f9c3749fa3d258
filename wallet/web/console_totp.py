"""The second sign-in step of local accounts: a TOTP code from an authenticator app.

After a right password the browser holds only "password checked for NAME at T"
in its signed session, for five minutes; the code goes to the login view itself
(``step=code``), so every limit on sign-ins counts wrong codes too. Who must
give a code is the setting WALLET_TOTP_REQUIRED (see Settings.totp_policy); an
account that enrolled always must. Enrolment is on the server: ``wallet users totp NAME``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from wallet.services import metrics, totp
from wallet.web import security
from wallet.web.console import HOOKS, Staff, _login_page, blueprint, sign_in
from wallet.web.i18n import _
from wallet.web.webcontext import context, now

log = logging.getLogger(__name__)

PENDING = "totp_pending"  # session key: {"user", "role", "at", "next"}
PENDING_LIFETIME = timedelta(minutes=5)


def ask_for_code(staff: Staff, target: str | None) -> ResponseReturnValue | None:
    """After a right password: the code page when this account needs one, else None."""
    ctx = context()
    with ctx.db.transaction(write=False) as db_session:
        enrolled = totp.is_enrolled(db_session, staff.username)
    if not totp.required(ctx.settings.totp_policy, role=staff.role, enrolled=enrolled):
        return None
    if not enrolled:
        log.info("console sign-in refused: a second factor is required but not set up")
        message = _(
            "This account needs a second factor (a code from an authenticator app), but none "
            "is set up yet. An administrator sets it up on the server with: "
            "wallet users totp %(name)s",
            name=staff.username,
        )
        return _login_page(error=message, username=staff.username, status=200)
    session.clear()
    session[PENDING] = {
        "user": staff.username,
        "role": staff.role,
        "at": now().isoformat(),
        "next": target or "",
    }
    return redirect(url_for("console.login_code"))


def _pending() -> dict[str, str] | None:
    pending = session.get(PENDING)
    if not isinstance(pending, dict) or not all(
        isinstance(pending.get(k), str) for k in ("user", "role", "at", "next")
    ):
        return None
    try:
        started = datetime.fromisoformat(pending["at"])
    except ValueError:
        return None
    if not timedelta(0) <= now() - started <= PENDING_LIFETIME:
        session.pop(PENDING, None)
        return None
    return pending


def _code_page(
    pending: dict[str, str], *, error: str = "", status: int = 200
) -> ResponseReturnValue:
    page = render_template("console/login_code.html", error=error, username=pending["user"])
    return page, status


@blueprint.get("/login/code")
def login_code() -> ResponseReturnValue:
    pending = _pending()
    if pending is None:
        return redirect(url_for("console.login"))
    return _code_page(pending)


def finish_sign_in() -> ResponseReturnValue:
    """The code step (a POST to the login view, under its limits)."""
    pending = _pending()
    if pending is None or request.form.get("username", "") != pending["user"]:
        message = _("The sign-in took too long or was interrupted. Please sign in again.")
        return _login_page(error=message, status=200)
    ctx = context()
    with ctx.db.transaction(write=True) as db_session:
        accepted = totp.check_code(
            db_session,
            username=pending["user"],
            code=request.form.get("code", ""),
            audit_key=ctx.services.audit_key,
            now=now(),
        )
    if not accepted:
        log.info("failed console sign-in (second factor) from %s", security.client_address())
        metrics.login_failed("local")
        message = _(
            "The code is not correct or was used already. Type the code your app shows now."
        )
        return _code_page(pending, error=message)
    staff = Staff(pending["user"], pending["role"])
    response = sign_in(staff, pending["next"] or None)
    security.remember_device(response, staff.username)
    return response


HOOKS.second_step = ask_for_code
HOOKS.finish_second_step = finish_sign_in
