"""The second sign-in step of local accounts: a TOTP code from an authenticator app.

After a right password the browser holds only "password checked for NAME at T"
in its signed session, for five minutes; the code goes to the login view itself
(``step=code``), so every limit on sign-ins counts wrong codes too. Who must
give a code is the setting WALLET_TOTP_REQUIRED (see Settings.totp_policy); an
account that enrolled always must.

A signed-in local account may switch its own factor on at ``/console/second-factor``
(the QR code drawn here, the new secret sealed in the form until a code confirms
it) and off again with its password and a current code, unless the policy makes
the factor compulsory for it; then only an administrator resets it on the server
(``wallet users totp NAME --remove``). An account that must have a factor but has
none still cannot sign in: a password alone never sets one up.
"""

from __future__ import annotations

import base64
import logging
import textwrap
from datetime import datetime, timedelta
from typing import cast
from urllib.parse import urlsplit

from flask import Flask, flash, g, redirect, render_template, request, session, url_for
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue

from wallet.errors import InputError, StateConflictError
from wallet.services import accounts, metrics, totp
from wallet.web import i18n, security
from wallet.web.console import HOOKS, Staff, _login_page, blueprint, link_qr, sign_in
from wallet.web.i18n import _
from wallet.web.webcontext import context, now

log = logging.getLogger(__name__)

PENDING = "totp_pending"  # session key: {"user", "role", "at", "next"}
PENDING_LIFETIME = timedelta(minutes=5)
# Attempts to switch the factor off, per account: each costs a password hash, and
# a stolen session must not guess codes until one fits.
TURN_OFF_LIMIT = "5 per minute;20 per hour"


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


# -- the account's own second factor ------------------------------------------------


def _readable_key(enrolment: totp.Enrolment) -> str:
    """The secret as authenticator apps take it typed in: base32, in groups of four."""
    key = base64.b32encode(enrolment.secret).decode("ascii").rstrip("=")
    return " ".join(textwrap.wrap(key, 4))


def _factor_page(
    *,
    enrolment: totp.Enrolment | None = None,
    sealed: str = "",
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    """The page for the signed-in account's factor; a new enrolment when none is given."""
    staff: Staff = g.staff
    ctx = context()
    moment = now()
    with ctx.db.transaction(write=False) as db_session:
        factor = totp.factor_of(db_session, staff.username)
        if factor == "none" and enrolment is None:
            enrolment = totp.Enrolment.new()
            sealed = totp.seal_enrolment(db_session, username=staff.username,
                                         enrolment=enrolment,
                                         audit_key=ctx.services.audit_key, now=moment)  # fmt: skip
    setting_up = factor == "none" and enrolment is not None
    qr = key = None
    if setting_up and enrolment is not None:
        label = urlsplit(ctx.settings.public_url).hostname or "wallet"
        uri = enrolment.uri(account=staff.username, issuer=label)
        qr = link_qr(uri, title=_("QR code for your authenticator app"))
        key = _readable_key(enrolment)
    compulsory = totp.required(ctx.settings.totp_policy, role=staff.role, enrolled=False)
    page = render_template(
        "console/second_factor.html",
        factor=factor,
        compulsory=compulsory,
        qr=qr,
        key=key,
        sealed=sealed,
        lifetime=int(totp.ENROLMENT_LIFETIME.total_seconds() // 60),
        errors=errors or {},
        # The off form posts elsewhere: the language switch stays on this page.
        switch_url=i18n.switch_url(url_for("console.second_factor")),
    )
    return page, status


def _changed_meanwhile() -> str:
    return _("That is not possible for your account as it is now; this page shows how it is.")


@blueprint.route("/second-factor", methods=["GET", "POST"])
def second_factor() -> ResponseReturnValue:
    """The page, and switching the factor on with a code from the freshly scanned app."""
    if request.method == "GET":
        return _factor_page()
    staff: Staff = g.staff
    ctx = context()
    moment = now()
    with ctx.db.transaction(write=False) as db_session:
        enrolment = totp.open_enrolment(db_session, username=staff.username,
                                        sealed=request.form.get("enrolment"),
                                        audit_key=ctx.services.audit_key, now=moment)  # fmt: skip
    if enrolment is None:
        message = _(
            "The set-up took longer than %(minutes)d minutes, so its QR code is no longer valid. "
            "Please remove that entry from your app, scan the new QR code below and type the "
            "code your app then shows.",
            minutes=int(totp.ENROLMENT_LIFETIME.total_seconds() // 60),
        )
        return _factor_page(errors={"code": message}, status=422)
    try:
        with ctx.db.transaction(write=True) as db_session:
            totp.enrol(
                db_session,
                username=staff.username,
                enrolment=enrolment,
                code=request.form.get("code", ""),
                actor=staff.actor,
                audit_key=ctx.services.audit_key,
                now=moment,
                replace=False,
                keep_session=session.get("sid"),
            )
    except InputError:
        message = _(
            "The code does not match. Check that your phone's clock is right and type the "
            "code your app shows now."
        )
        sealed = str(request.form.get("enrolment", ""))
        return _factor_page(enrolment=enrolment, sealed=sealed, errors={"code": message},
                            status=422)  # fmt: skip
    except StateConflictError:  # on already (another tab), or a provider's account
        return _factor_page(errors={"state": _changed_meanwhile()}, status=409)
    log.info("a console account switched its second factor on")
    flash(_("The second factor is on. From your next sign-in on, the console asks for a code "
            "from your app."), "success")  # fmt: skip
    return redirect(url_for("console.second_factor"))


@blueprint.post("/second-factor/off")
def second_factor_off() -> ResponseReturnValue:
    """Switching the factor off: the password and a current code, where the policy allows."""
    staff: Staff = g.staff
    ctx = context()
    with ctx.db.transaction(write=False) as db_session:  # the slow hash outside a write lock
        checked = accounts.confirm_password(db_session, username=staff.username,
                                            password=request.form.get("password", ""))  # fmt: skip
    wrong = _("The password or the code is not correct. Type the code your app shows now.")
    if checked is None:
        log.info("refused switching a second factor off: wrong password or code")
        return _factor_page(errors={"off": wrong}, status=422)
    try:
        with ctx.db.transaction(write=True) as db_session:
            totp.turn_off(
                db_session,
                username=staff.username,
                code=request.form.get("code", ""),
                policy=ctx.settings.totp_policy,
                actor=staff.actor,
                audit_key=ctx.services.audit_key,
                now=now(),
                keep_session=session.get("sid"),
            )
    except InputError:
        log.info("refused switching a second factor off: wrong password or code")
        return _factor_page(errors={"off": wrong}, status=422)
    except StateConflictError:  # compulsory, off already, or a provider's account
        return _factor_page(errors={"state": _changed_meanwhile()}, status=409)
    log.info("a console account switched its second factor off")
    flash(_("The second factor is off. Signing in now needs only your password."), "success")
    return redirect(url_for("console.second_factor"))


def _turn_off_key() -> str:
    """Per account (the guard has loaded it before the limit is checked)."""
    staff: Staff | None = g.get("staff")
    return f"second-factor-off:user:{staff.username if staff else '-'}"


@blueprint.record_once
def _limit_turning_off(state: BlueprintSetupState) -> None:
    app = cast(Flask, state.app)  # the blueprint is registered on Flask apps only
    security.limit_endpoint(
        app, "console.second_factor_off", TURN_OFF_LIMIT, key_func=_turn_off_key
    )
