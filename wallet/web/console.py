"""The staff console: sign in, search and issue passes, change their state, verify online.

Roles are enforced here, on the server, before any view runs: a verifier may
only verify; issuers and admins may use everything. Each change is one service
call in one transaction, with ``user:<name>`` as the actor in the audit log.
Sessions are held in the database (the signed cookie carries only a random
session id) and last one shift; the session and its user are loaded on every
request. Logout deletes the session's row, so a copied cookie stops working;
a new password, a new role or a disabled account ends all of a user's sessions.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from markupsafe import Markup
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from wallet.domain import (
    MAX_REASON_LENGTH,
    PASS_STATES,
    AuditEntry,
    PassRecord,
    PassState,
    allowed_actions,
)
from wallet.domain import claim_url as domain_claim_url
from wallet.errors import (
    ConfigError,
    HolderDataError,
    InputError,
    NotFoundError,
    PermitExistsError,
    StateConflictError,
    WalletError,
)
from wallet.formats.qr import qr_info, render_svg
from wallet.passtypes import Field, PassType, invisible_character
from wallet.services import accounts, audit, claim_mail, outbox, passes, renewals
from wallet.verifier import VerificationResult
from wallet.web import i18n, public, requestid, security
from wallet.web.httperrors import status_for
from wallet.web.i18n import _
from wallet.web.webcontext import WebContext, context, now

log = logging.getLogger(__name__)
blueprint = Blueprint("console", __name__, url_prefix="/console")

PAGE_SIZE = 25
EXPIRING_CHOICES = ("7", "30", "90")  # days: "runs out within", for renewals
MAX_PAGE = 100_000
MAX_QUERY_LENGTH = 200
MAX_VERIFY_INPUT = 16_384
ISSUERS = frozenset({"admin", "issuer"})
# The second sign-in step (TOTP) and the city's identity provider's way in and back.
OPEN_ENDPOINTS = frozenset(
    {"console.login", "console.login_code", "console.oidc_login", "console.oidc_callback"}
)
# A verifier may use these and nothing else; every other endpoint needs an issuer.
VERIFIER_ENDPOINTS = frozenset(
    {
        "console.verify",
        "console.check_plate",
        "console.logout",
        "console.devices",
        "console.pair_device",
        "console.revoke_device",
        "console.second_factor",  # every local account's own factor (console_totp)
        "console.second_factor_off",
    }
)
ACTIONS = ("revoke", "suspend", "reinstate", "renew", "reissue", "new-link")
REMEMBERED_FORMS = 10  # issue forms whose result the session remembers (reload guard)
_THROTTLE_REPORTS = "wallet.console.throttle_reports"  # app.extensions: username -> reported at


def _no_second_step(staff: Staff, target: str | None) -> ResponseReturnValue | None:
    return None


def _no_provider_logout() -> str | None:
    return None


@dataclass
class SignInHooks:
    """What console_totp (a second sign-in step) and console_oidc (the city's identity
    provider) add to sign-in and logout; they build on this module, so it cannot
    import them, and fill these in when they load."""

    second_step: Callable[[Staff, str | None], ResponseReturnValue | None] = _no_second_step
    finish_second_step: Callable[[], ResponseReturnValue] | None = None
    provider_logout: Callable[[], str | None] = _no_provider_logout


HOOKS = SignInHooks()


@dataclass(frozen=True)
class Staff:
    """The signed-in user, as loaded from the database for this request."""

    username: str
    role: str

    @property
    def actor(self) -> str:
        return f"user:{self.username}"

    @property
    def may_issue(self) -> bool:
        return self.role in ISSUERS


def init_app(app: Flask) -> None:
    i18n.init_app(app)
    security.init_app(app)
    app.config["PERMANENT_SESSION_LIFETIME"] = security.SESSION_LIFETIME
    ctx: WebContext = app.extensions["wallet"]
    security.limit_logins(
        app,
        "console.login",
        storage_uri=ctx.settings.redis_url,
        on_account_throttled=_report_throttled_account,
    )


def _report_throttled_account(username: str) -> None:
    """Sign-ins to one account from unknown browsers are refused: tell the admins.

    Every refused attempt lands here; this worker remembers whom it reported, so
    an attacker's stream of attempts costs no database write after the first.
    """
    ctx = context()
    moment = now()
    reported: dict[str, datetime] = current_app.extensions.setdefault(_THROTTLE_REPORTS, {})
    last = reported.get(username)
    if last is not None and moment - last < security.THROTTLE_REPORT_QUIET:
        return
    if len(reported) >= 1024:
        reported.clear()
    reported[username] = moment
    with ctx.db.transaction(write=True) as db_session:
        written = accounts.report_login_throttling(
            db_session,
            username=username,
            quiet_for=security.THROTTLE_REPORT_QUIET,
            audit_key=ctx.services.audit_key,
            now=moment,
        )
    if written:
        log.warning("console sign-ins to one account are throttled; see `wallet audit`")


# -- every request ------------------------------------------------------------


@blueprint.before_request
def _guard() -> ResponseReturnValue | None:
    """CSRF on every POST, then: signed in, and allowed to use this page."""
    security.protect_form()
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    staff = _signed_in()
    if staff is None:
        return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
    g.staff = staff
    if not staff.may_issue and request.endpoint not in VERIFIER_ENDPOINTS:
        abort(403)
    return None


@blueprint.after_request
def _private(response: Response) -> Response:
    """Staff pages hold personal data: never cached. Same-origin referrers only, which
    Flask-WTF's strict HTTPS check needs (the app default is no-referrer)."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "same-origin"
    return i18n.remember_language(response)


@blueprint.context_processor
def _template_context() -> dict[str, Any]:
    return {
        **i18n.template_context(),
        "switch_url": i18n.switch_url(_page_for_language_switch()),
        "staff": g.get("staff"),
        "state_names": _state_names(),
    }


def _page_for_language_switch() -> str:
    """The page itself, or for a POST-only URL the page its form came from."""
    rule = request.url_rule
    if rule is not None and rule.methods is not None and "GET" in rule.methods:
        return request.path
    if request.endpoint == "console.change" and request.view_args:
        return url_for("console.detail", serial=request.view_args["serial"])
    return url_for("console.login")


def _state_names() -> dict[str, str]:
    return {
        "valid": _("Valid"),
        "suspended": _("Suspended"),
        "revoked": _("Revoked"),
        "invalid": _("Invalid"),
        "expired": _("Expired"),
        "not_yet_valid": _("Not valid yet"),
        "unknown_key": _("Unknown key"),
        "stale_status": _("Status out of date"),
        "status_unchecked": _("Status not checked"),
    }


def _signed_in() -> Staff | None:
    """The user of this request's server-side session (see accounts.session_user)."""
    secret = session.get("sid")
    if not isinstance(secret, str):
        return None
    ctx = context()
    with ctx.db.transaction(write=False) as db_session:
        row = accounts.session_user(db_session, secret, now=now())
        staff = None if row is None else Staff(row.username, row.role)
    if staff is None:
        session.clear()
    return staff


def _home(staff: Staff) -> str:
    return url_for("console.search") if staff.may_issue else url_for("console.verify")


def _safe_next(target: str | None) -> str | None:
    """Only a path inside the console; never another host (open redirect)."""
    if not target or not target.startswith("/console") or "//" in target or "\\" in target:
        return None
    if any(ord(c) < 0x20 for c in target):
        return None
    return target


# -- errors as pages ----------------------------------------------------------


def _error_page(status: int, title: str, message: str, detail: str = "") -> tuple[str, int]:
    page = render_template(
        "console/error.html", status=status, title=title, message=message, detail=detail
    )
    return page, status


@blueprint.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> ResponseReturnValue:
    status = exc.code or 500
    if status == 429 and request.endpoint == "console.login":
        message = _("Too many sign-in attempts. Please wait a minute and try again.")
        return _login_page(error=message, status=429)
    titles = {
        400: (
            _("The form could not be accepted"),
            _("The form has expired or did not come from this console. Please reload it."),
        ),
        403: (_("Not allowed"), _("Your role does not allow this. Ask an administrator.")),
        404: (_("Not found"), _("There is no such page or pass.")),
        405: (_("Not allowed"), _("This page cannot be used like that.")),
        429: (_("Too many requests"), _("Please wait a minute and try again.")),
    }
    title, message = titles.get(status, (_("Something went wrong"), exc.description or ""))
    return _error_page(status, title, message)


@blueprint.errorhandler(Exception)
def _unexpected(exc: Exception) -> ResponseReturnValue:
    log.exception("unexpected error on %s %s", request.method, requestid.route())
    return _error_page(500, _("Something went wrong"), _("The error was logged. Please try again."))


@blueprint.errorhandler(WalletError)
def _wallet_error(exc: WalletError) -> ResponseReturnValue:
    status = status_for(exc)
    if isinstance(exc, NotFoundError):
        return _error_page(status, _("Not found"), _("There is no such page or pass."))
    return _error_page(status, _("The action could not be done"), _("Details:"), exc.message)


# -- sign in and out ----------------------------------------------------------


def _login_page(*, error: str = "", username: str = "", status: int = 200) -> tuple[str, int]:
    target = _safe_next(request.values.get("next"))
    page = render_template(
        "console/login.html",
        error=error,
        username=username,
        next=target,
        oidc=context().settings.oidc_enabled,
    )
    return page, status


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """Rate-limited so that strangers cannot lock a known user out (see security)."""
    if request.method == "GET":
        staff = _signed_in()
        if staff is not None:
            return redirect(_safe_next(request.args.get("next")) or _home(staff))
        return _login_page()
    if request.form.get("step") == "code" and HOOKS.finish_second_step is not None:
        return HOOKS.finish_second_step()
    username = request.form.get("username", "").strip()[:64]
    password = request.form.get("password", "")
    ctx = context()
    with ctx.db.transaction(write=False) as db_session:
        row = accounts.authenticate_user(
            db_session, username=username, password=password, now=now()
        )
        staff = None if row is None else Staff(row.username, row.role)
    if staff is None:
        log.info("failed console sign-in from %s", security.client_network())
        message = _("The username or password is not correct, or the account is disabled.")
        return _login_page(error=message, username=username, status=200)
    second_step = HOOKS.second_step(staff, _safe_next(request.form.get("next")))
    if second_step is not None:
        return second_step
    response = sign_in(staff, _safe_next(request.form.get("next")))
    security.remember_device(response, staff.username)
    return response


def sign_in(
    staff: Staff, target: str | None, *, record: bool = True, keep: Mapping[str, str] | None = None
) -> BaseResponse:
    """Start a console session for a user who proved who they are; redirect onwards.

    ``keep`` is put into the fresh cookie session (the provider's ID token, for logout).
    """
    with context().db.transaction(write=True) as db_session:
        if record:
            accounts.record_login(db_session, username=staff.username, now=now())
        secret = accounts.start_session(
            db_session, username=staff.username, lifetime=security.SESSION_LIFETIME, now=now()
        )
    # A fresh session: nothing from before the login (a planted cookie, an old
    # CSRF token) survives it. The cookie holds only the server-side session's secret.
    session.clear()
    session.permanent = True
    session["sid"] = secret
    session.update(keep or {})
    return redirect(target or _home(staff))


@blueprint.post("/logout")
def logout() -> ResponseReturnValue:
    """Ends the session on the server: a copy of the cookie stops working too."""
    with context().db.transaction(write=True) as db_session:
        accounts.end_session(db_session, session.get("sid"))
    provider_logout = HOOKS.provider_logout()
    session.clear()
    flash(_("You have signed out."), "success")
    return redirect(provider_logout or url_for("console.login"))


# -- search -------------------------------------------------------------------


def _page_number(raw: str | None) -> int:
    try:
        number = int(raw or "1")
    except ValueError:
        return 1
    return min(max(number, 1), MAX_PAGE)


@blueprint.get("/")
def search() -> ResponseReturnValue:
    ctx = context()
    text = request.args.get("q", "").strip()[:MAX_QUERY_LENGTH]
    type_id = request.args.get("type", "").strip()
    state = request.args.get("state", "").strip()
    expiring = request.args.get("expiring", "").strip()
    page = _page_number(request.args.get("page"))
    errors: dict[str, str] = {}
    if expiring and expiring not in EXPIRING_CHOICES:
        errors["expiring"] = _("Choose one of the listed periods.")
    if type_id and type_id not in ctx.services.pass_types:
        errors["type"] = _("Choose one of the listed pass types.")
    if state and state not in PASS_STATES:
        errors["state"] = _("Choose one of the listed states.")
    rows: list[PassRecord] = []
    total = 0
    if not errors:
        with ctx.db.transaction(write=False) as db_session:
            found = passes.list_passes(
                db_session,
                type_id=type_id or None,
                state=state or None,
                text=text or None,
                limit=PAGE_SIZE,
                offset=(page - 1) * PAGE_SIZE,
                expiring_within=timedelta(days=int(expiring)) if expiring else None,
                now=now(),
            )
            rows, total = list(found.items), found.total
    pages = max(1, -(-total // PAGE_SIZE))
    chosen = (("q", text), ("type", type_id), ("state", state), ("expiring", expiring))
    filters = {k: v for k, v in chosen if v}
    page_html = render_template(
        "console/search.html",
        rows=rows,
        total=total,
        page=page,
        pages=pages,
        filters=filters,
        query=text,
        type_id=type_id,
        state=state,
        expiring=expiring,
        expiring_choices=EXPIRING_CHOICES,
        errors=errors,
        pass_types=ctx.services.pass_types,
        states=PASS_STATES,
        summary=_holder_summary,
    )
    return page_html, 400 if errors else 200


def _holder_summary(row: PassRecord) -> str:
    return " · ".join(str(v) for v in row.holder.values())


# -- issue --------------------------------------------------------------------


# Characters that must be escaped inside a class under the v flag (besides edge "-").
_V_CLASS_SYNTAX = "()[]{}/|"


def html_pattern(field: Field) -> str | None:
    """The field's expression for the browser's ``pattern`` attribute, or None.

    Browsers compile ``pattern`` with the ``v`` flag, where ``-`` at the edge of a
    class and ``( ) [ ] { } / |`` inside one must be escaped. The service
    upper-cases values that have a pattern, so the browser may accept lower case:
    ``(?i:...)``. A browser that cannot compile the result skips the check; the
    server always checks.
    """
    if field.pattern is None or field.kind == "plate":
        return None  # a plate is read in many spellings (wallet.plates): the server judges
    source = field.pattern.pattern
    if "(?" in source or "\\A" in source or "\\Z" in source:
        return None  # Python-only syntax: leave it to the server
    out: list[str] = []
    in_class = first = False
    i = 0
    while i < len(source):
        char = source[i]
        if char == "\\":
            out.append(source[i : i + 2])
            i += 2
            continue
        if not in_class:
            out.append(char)
            if char == "[":
                in_class = first = True
                if source[i + 1 : i + 2] == "^":
                    out.append("^")
                    i += 1
        elif char == "]" and not first:
            out.append(char)
            in_class = False
        else:
            at_edge = first or source[i + 1 : i + 2] == "]"
            escape = (char == "-" and at_edge) or char in _V_CLASS_SYNTAX
            out.append("\\" + char if escape else char)
            first = False
        i += 1
    return "(?i:" + "".join(out) + ")"


def _new_form_id() -> str:
    return secrets.token_urlsafe(12)


def _issue_page(
    pass_type: PassType,
    *,
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    form_id: str | None = None,
    status: int = 200,
) -> tuple[str, int]:
    ctx = context()
    page = render_template(
        "console/issue.html",
        pass_type=pass_type,
        values=values or {},
        errors=errors or {},
        form_id=form_id or _new_form_id(),
        pattern=html_pattern,
        longest=pass_type.valid_until(now()),
        pass_types=ctx.services.pass_types,
    )
    return page, status


@blueprint.get("/issue")
def issue_choose() -> ResponseReturnValue:
    ctx = context()
    types = list(ctx.services.pass_types.values())
    if len(types) == 1:
        return redirect(url_for("console.issue", type_id=types[0].id))
    return render_template("console/issue_choose.html", pass_types=types)


def _end_of_day(raw: str, pass_type: PassType, moment: datetime) -> datetime:
    """A date from the form means "valid through that day" in the city's time zone."""
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise InputError("not a date", field="valid_until") from None
    zone = ZoneInfo(i18n.DISPLAY_TIMEZONE)
    end = datetime.combine(day, time(23, 59, 59), tzinfo=zone)
    longest = pass_type.valid_until(moment)
    if day == longest.astimezone(zone).date():
        return min(end, longest)  # the last possible day counts, up to the type's limit
    return end


def _field_error(pass_type: PassType, exc: InputError, values: Mapping[str, str]) -> str:
    """The service's verdict on a field, said in the user's language."""
    field = next((f for f in pass_type.fields if f.name == exc.field), None)
    if exc.field == "valid_until":
        longest = i18n.format_day(pass_type.valid_until(now()))
        return _("Choose a date in the future, at the latest %(date)s.", date=longest)
    if field is None:
        return exc.message
    if invisible_character(values.get(field.name, "")) is not None:
        return _("Please remove invisible or control characters: they can hide what is written.")
    text = " ".join(values.get(field.name, "").split())
    if not text:
        return _("Please fill in this field.")
    kind = getattr(exc, "kind", None)
    if kind == "too_many_plates":
        most = field.max_plates
        return _("Please give at most %(count)d plates, separated by commas.", count=most)
    if kind == "duplicate_plate":
        return _("Please give each plate only once.")
    if len(text) > field.value_max_length:
        return _("Please use at most %(count)d characters.", count=field.value_max_length)
    if field.example:
        return _(
            "This does not have the expected format, for example: %(example)s",
            example=field.example,
        )
    return _("This does not have the expected format.")


def _remember_issued(form_id: str, serial: str) -> None:
    issued = dict(session.get("issued_forms", {}))
    issued[form_id] = serial
    session["issued_forms"] = dict(list(issued.items())[-REMEMBERED_FORMS:])


@blueprint.route("/issue/<type_id>", methods=["GET", "POST"])
def issue(type_id: str) -> ResponseReturnValue:
    ctx = context()
    pass_type = ctx.services.pass_types.get(type_id)
    if pass_type is None:
        abort(404)
    if request.method == "GET":
        return _issue_page(pass_type)
    form_id = request.form.get("form_id", "")[:32] or _new_form_id()
    already = session.get("issued_forms", {}).get(form_id)
    if already:  # a reload or double click: never a second pass from one form
        flash(_("This form was sent already; the pass below was issued then."), "info")
        return redirect(url_for("console.detail", serial=already))
    values = {f.name: request.form.get(f.name, "")[:1000] for f in pass_type.fields}
    valid_until_raw = request.form.get("valid_until", "").strip()
    values["valid_until"] = valid_until_raw
    holder = {f.name: values[f.name] for f in pass_type.fields}
    moment = now()
    staff: Staff = g.staff
    try:
        valid_until = _end_of_day(valid_until_raw, pass_type, moment) if valid_until_raw else None
        with ctx.db.transaction(write=True) as db_session:
            issued = passes.issue_pass(
                db_session,
                ctx.services,
                type_id=pass_type.id,
                holder=holder,
                valid_until=valid_until,
                actor=staff.actor,
                now=moment,
            )
            record = issued.record
    except InputError as exc:
        errors = {exc.field: _field_error(pass_type, exc, values)}
        return _issue_page(pass_type, values=values, errors=errors, form_id=form_id, status=422)
    _remember_issued(form_id, record.serial)
    return _issued_page(record, issued.claim_secret, pass_type=pass_type)


def _issued_page(
    row: PassRecord,
    secret: str,
    *,
    pass_type: PassType,
    replaces: str | None = None,
    new_link: bool = False,
    renewal: renewals.Renewal | None = None,
) -> tuple[str, int]:
    claim_url = domain_claim_url(context().settings.public_url, secret)
    page = render_template(
        "console/issued.html",
        row=row,
        pass_type=pass_type,
        claim_url=claim_url,
        claim_qr=link_qr(claim_url, title=_("QR code of the link for the holder")),
        claim_path=url_for("citizen.pass_page", secret=secret),
        replaces=replaces,
        new_link=new_link,
        renewal=renewal,
    )
    return page, 201


LINK_QR_MODULE_PX = 5  # a short link is a version 4-6 code: about 200 px, easy for a phone


def link_qr(url: str, *, title: str) -> Markup:
    """A secret link as a QR code for a phone to open: a claim link, a pairing code.

    Built afresh and never cached (wallet.formats.qr keeps only pass texts): the
    link is a secret. render_svg escapes the title; no style attribute (CSP).
    """
    svg = render_svg(url, title=title)
    modules = qr_info(url).modules + 8  # with the quiet zone render_svg draws
    size = modules * LINK_QR_MODULE_PX
    return Markup(  # noqa: S704 - our own SVG, its only text escaped by render_svg
        svg.replace("<svg ", f'<svg width="{size}" height="{size}" ', 1)
    )


# -- one pass -----------------------------------------------------------------


@dataclass(frozen=True)
class TrailEntry:
    at: datetime
    actor: str
    action: str
    details: tuple[tuple[str, str], ...]


def _trail_entry(row: AuditEntry, pass_types: Mapping[str, PassType]) -> TrailEntry:
    """An audit entry with its details named and shown in the user's language."""
    lang = i18n.language()
    names = {
        "reason": _("Reason"),
        "state": _("State"),
        "type": _("Pass type"),
        "valid_until": _("Valid until"),
        "replaces": _("Replaces"),
    }
    states = _state_names()
    details = []
    for key, value in sorted(row.details.items()):
        if value is None:
            continue
        shown = str(value)
        if key == "state":
            shown = states.get(shown, shown)
        elif key == "type" and shown in pass_types:
            shown = pass_types[shown].label.get(lang)
        elif key == "valid_until" and (moment := _parse_time(value)) is not None:
            shown = i18n.format_moment(moment)
        details.append((names.get(key, key), shown))
    return TrailEntry(at=row.at, actor=row.actor, action=row.action, details=tuple(details))


def _detail_page(
    serial: str,
    *,
    errors: Mapping[str, str] | None = None,
    action: str | None = None,
    values: Mapping[str, str] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    ctx = context()
    with ctx.db.transaction(write=False) as db_session:
        row = passes.get_pass(db_session, serial)
        entries = audit.trail(db_session, row.serial)
        trail = [_trail_entry(e, ctx.services.pass_types) for e in entries]
        deliveries = outbox.deliveries_of(db_session, row.serial)
    pass_type = ctx.services.pass_types.get(row.pass_type)
    moment = now()
    page = render_template(
        "console/detail.html",
        row=row,
        pass_type=pass_type,
        fields=_labelled_holder(row.holder, pass_type),
        trail=trail,
        deliveries=deliveries,
        actions=_available_actions(row, pass_type),
        expired=row.valid_until <= moment,
        errors=errors or {},
        open_action=action,
        values=values or {},
    )
    return page, status


def _labelled_holder(
    holder: Mapping[str, Any], pass_type: PassType | None
) -> list[tuple[str, str]]:
    lang = i18n.language()
    if pass_type is None:
        return [(name, str(value)) for name, value in holder.items()]
    labels = {f.name: f.label.get(lang) for f in pass_type.fields}
    return [(labels.get(name, name), str(value)) for name, value in holder.items()]


def _available_actions(row: PassRecord, pass_type: PassType | None) -> list[str]:
    suspendable = pass_type is not None and pass_type.suspendable
    found = [a.value for a in allowed_actions(row.state, suspendable=suspendable)]
    if row.state == PassState.VALID and row.replaced_by is None:
        found.append("renew")  # a successor with a new expiry, in the holder's wallets
    if row.state != PassState.REVOKED and row.replaced_by is None:
        found.append("reissue")  # a lost phone: revoke and issue anew
    if row.state != PassState.REVOKED:
        found.append("new-link")  # a lost message: the same pass, a new link
    return found


@blueprint.get("/passes/<serial>")
def detail(serial: str) -> ResponseReturnValue:
    return _detail_page(serial)


@blueprint.post("/passes/<serial>/<action>")
def change(serial: str, action: str) -> ResponseReturnValue:
    """Revoke, suspend, reinstate or reissue: a reason and a ticked confirmation needed."""
    if action not in ACTIONS:
        abort(404)
    ctx = context()
    reason = request.form.get("reason", "").strip()
    values = {"reason": reason[:2000]}
    errors: dict[str, str] = {}
    if not reason:
        errors["reason"] = _("Please give a reason; it goes into the audit log.")
    elif len(reason) > MAX_REASON_LENGTH:
        errors["reason"] = _("Please use at most %(count)d characters.", count=MAX_REASON_LENGTH)
    if request.form.get("confirm") != "yes":
        errors["confirm"] = _("Please tick the box to confirm.")
    email = request.form.get("email", "").strip() if action == "new-link" else ""
    plate = request.form.get("plate", "").strip() if action == "reissue" else ""
    values["plate"] = plate[:60]
    if errors:
        return _detail_page(serial, errors=errors, action=action, values=values, status=422)
    staff: Staff = g.staff
    moment = now()
    if email:
        return _email_new_link(serial, email, request.form.get("lang", "de"), reason, staff)
    if action == "renew":
        return _renew(serial, reason, staff, values)
    changes = _new_plate(serial, plate)
    try:
        with ctx.db.transaction(write=True) as db_session:
            if action == "reissue":
                issued = passes.reissue_pass(
                    db_session, ctx.services, serial, reason=reason, actor=staff.actor,
                    now=moment, changes=changes,
                )  # fmt: skip
                new_row, secret = issued.record, issued.claim_secret
            elif action == "new-link":
                issued = passes.replace_claim_link(
                    db_session, ctx.services, serial, reason=reason, actor=staff.actor, now=moment
                )
                new_row, secret = issued.record, issued.claim_secret
            else:
                passes.change_state(
                    db_session,
                    ctx.services,
                    serial,
                    action=action,
                    reason=reason,
                    actor=staff.actor,
                    now=moment,
                )
    except PermitExistsError:
        errors = {"plate": _("This car has a permit for this zone already.")}
        return _detail_page(serial, errors=errors, action=action, values=values, status=409)
    except StateConflictError:
        errors = {"state": _("This is not possible in the pass's current state.")}
        return _detail_page(serial, errors=errors, action=action, values=values, status=409)
    except HolderDataError:
        errors = {"plate": _("Please type the plate as it is written on the car, for example "
                             "D-AB 1234.")}  # fmt: skip
        return _detail_page(serial, errors=errors, action=action, values=values, status=422)
    if action in ("reissue", "new-link"):
        pass_type = ctx.services.pass_type(new_row.pass_type)
        if action == "new-link":
            return _issued_page(new_row, secret, pass_type=pass_type, new_link=True)
        return _issued_page(new_row, secret, pass_type=pass_type, replaces=serial)
    done = {
        "revoke": _("The pass has been revoked."),
        "suspend": _("The pass has been suspended."),
        "reinstate": _("The pass has been reinstated."),
    }
    flash(done[action], "success")
    return redirect(url_for("console.detail", serial=serial))


def _new_plate(serial: str, plate: str) -> dict[str, str] | None:
    """The holder change of a reissue for a new car: its plate, if one was typed."""
    if not plate:
        return None
    ctx = context()
    with ctx.db.transaction(write=False) as db_session:
        type_id = passes.get_pass(db_session, serial).pass_type
    field = ctx.services.pass_type(type_id).enforcement_plate
    return {field: plate} if field else None


def _renew(serial: str, reason: str, staff: Staff, values: dict[str, str]) -> ResponseReturnValue:
    ctx = context()
    try:
        with ctx.db.transaction(write=True) as db_session:
            renewal = renewals.renew_pass(
                db_session, ctx.services, serial, reason=reason, actor=staff.actor, now=now()
            )
    except StateConflictError:
        errors = {"state": _("This is not possible in the pass's current state.")}
        return _detail_page(serial, errors=errors, action="renew", values=values, status=409)
    issued = renewal.issued
    pass_type = ctx.services.pass_type(issued.record.pass_type)
    return _issued_page(issued.record, issued.claim_secret, pass_type=pass_type, renewal=renewal)


def _email_new_link(
    serial: str, email: str, lang: str, reason: str, staff: Staff
) -> ResponseReturnValue:
    """A new link, queued for the holder's address: staff need not see the link at all."""
    ctx = context()
    values = {"reason": reason[:2000], "email": email[:300], "lang": lang}
    try:
        with ctx.db.transaction(write=True) as db_session:
            claim_mail.email_claim_link(
                db_session, ctx.services, serial, email=email, lang=lang, reason=reason,
                actor=staff.actor, now=now(),
            )  # fmt: skip
    except InputError as exc:
        field = exc.field if exc.field in ("email", "lang") else "email"
        errors = {field: _("Please give one e-mail address, like erika.mustermann@example.de.")}
        return _detail_page(serial, errors=errors, action="new-link", values=values, status=422)
    except ConfigError:
        errors = {"email": _("E-mail is not set up for this service. Give the holder the link "
                             "another way, or ask IT to set up WALLET_SMTP_*.")}  # fmt: skip
        return _detail_page(serial, errors=errors, action="new-link", values=values, status=409)
    except StateConflictError:
        errors = {"state": _("This is not possible in the pass's current state.")}
        return _detail_page(serial, errors=errors, action="new-link", values=values, status=409)
    flash(_("A new link is on its way to the holder by e-mail; older links now say they were "
            "replaced."), "success")  # fmt: skip
    return redirect(url_for("console.detail", serial=serial))


# -- verify -------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """A verification result prepared for the page."""

    state: str
    message: str
    serial: str | None
    type_label: str | None
    fields: list[tuple[str, str]]
    issued_at: datetime | None
    expires_at: datetime | None
    warnings: tuple[str, ...]
    reason: str
    tone: str  # green, amber (suspended, or status unchecked) or red
    admit: bool
    unchecked: bool  # the status went unchecked: the pass type's policy decided `admit`


def _verdict(result: VerificationResult, ctx: WebContext) -> Verdict:
    claims = result.claims
    lang = i18n.language()
    pass_type = ctx.services.pass_types.get(str(claims.get("pass_type", "")))
    holder = claims.get("holder")
    fields = _labelled_holder(holder, pass_type) if isinstance(holder, Mapping) else []
    serial = claims.get("serial")
    return Verdict(
        state=result.state,
        message=result.message(lang),
        serial=serial if isinstance(serial, str) else None,
        type_label=pass_type.label.get(lang) if pass_type else claims.get("pass_type"),
        fields=fields,
        issued_at=_parse_time(claims.get("issued_at")),
        expires_at=_parse_time(claims.get("expires_at")),
        warnings=result.warnings,
        reason=result.reason,
        tone=result.tone,
        admit=result.admit,
        unchecked=result.unchecked,
    )


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


_WHITESPACE = re.compile(r"\s+")


@blueprint.route("/verify", methods=["GET", "POST"])
def verify() -> ResponseReturnValue:
    if request.method == "GET":
        return render_template("console/verify.html", text="", verdict=None, error="")
    raw = request.form.get("text", "")
    # Scanners and copy-paste add line breaks and spaces; a pass text never has any.
    text = _WHITESPACE.sub("", raw)[: MAX_VERIFY_INPUT + 1]
    if not text:
        page = render_template(
            "console/verify.html",
            text="",
            verdict=None,
            error=_("Paste the text of a QR code or a pass token."),
        )
        return page, 422
    ctx = context()
    moment = now()
    result = ctx.verifiers.check(
        text, bundle_token=public.current_bundle(moment), services=ctx.services, now=moment
    )
    verdict = _verdict(result, ctx)
    return render_template(
        "console/verify.html", text=text[:MAX_VERIFY_INPUT], verdict=verdict, error=""
    )
