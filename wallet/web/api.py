"""The JSON API under /api/v1: issue, look up, change and verify passes with bearer tokens.

Every route but the OpenAPI document names the roles it admits in its
``@_route`` line, so a route cannot exist without a server-side role check and
the document lists exactly those roles. Bodies are parsed here, strictly, before
any service runs: bad input is answered 400/422 naming the field, never 500,
and a failure inside a use case rolls its whole transaction back.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar

from flask import Blueprint, Flask, Response, current_app, jsonify, request, url_for
from sqlalchemy.orm import Session
from werkzeug.exceptions import RequestEntityTooLarge

from wallet.domain import MAX_REASON_LENGTH, Action
from wallet.errors import HolderDataError, InputError
from wallet.formats.csvtable import read_table
from wallet.services import (
    accounts,
    claim_mail,
    credentials,
    idempotency,
    imports,
    passes,
    renewals,
)
from wallet.services.idempotency import StoredResponse
from wallet.web import openapi, public
from wallet.web.bodies import IMPORT_BODY_BYTES
from wallet.web.httperrors import error_body
from wallet.web.jsonbody import ApiError, read_json_object
from wallet.web.webcontext import context, now

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_BODY_BYTES = 64 * 1024  # a pass request is well under 2 KiB
MAX_TEXT_LENGTH = 200  # any holder value; the pass type's own limit is checked later
MAX_QUERY_LENGTH = 200
MAX_LIMIT = 200
DEFAULT_LIMIT = 50
MAX_OFFSET = 10**9  # keeps OFFSET inside every database's integer range
# A pass may start this far ahead at most; later starts would outlive what a
# verifier accepts (tokens.MAX_VALIDITY) and, far enough out, overflow datetime.
MAX_START_AHEAD = timedelta(days=366)

ISSUERS = frozenset({"admin", "issuer"})
ANY_ROLE = frozenset(accounts.ROLES)
# endpoint -> roles it admits; filled by @_route, read by the OpenAPI document.
ROLES: dict[str, frozenset[str]] = {}

# C0 controls other than tab, LF and CR, DEL, and lone surrogates (which no
# database can store as UTF-8; PostgreSQL refuses NUL in text outright).
_BAD_CHARS_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_RFC3339_RE = re.compile(
    r"(?P<year>[0-9]{4})-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"(?P<zone>[Zz]|[+-][0-9]{2}:[0-9]{2})?",
    re.ASCII,
)
_BEARER_CHALLENGE = 'Bearer realm="wallet"'

P = ParamSpec("P")
T = TypeVar("T")


# -- errors only HTTP knows ---------------------------------------------------


@blueprint.errorhandler(ApiError)
def _api_error(exc: ApiError) -> Response:
    extra = {"field": exc.field} if exc.field is not None else {}
    response = jsonify(error_body(exc.code, exc.message, **extra))
    response.status_code = exc.status
    response.headers.update(exc.headers)
    return response


# -- who is calling ------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """The API token behind a request; its secret only derives the idempotency seal key."""

    name: str
    role: str
    secret: str = field(repr=False)

    @property
    def actor(self) -> str:
        return f"token:{self.name}"


class TokenCache:
    """Live API tokens a worker has just looked up, for a couple of seconds.

    Every API call would otherwise pay a database transaction for its bearer
    token before doing its work. The price: revoking a token takes effect
    after at most ``seconds`` in each worker. Only live tokens are kept (an
    attacker guessing tokens fills nothing), keyed by the token's hash.
    """

    MAX_ENTRIES = 1024

    def __init__(self, *, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._live: dict[str, tuple[float, str, str]] = {}

    def get(self, digest: str) -> tuple[str, str] | None:
        entry = self._live.get(digest)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1], entry[2]

    def put(self, digest: str, *, name: str, role: str) -> None:
        if self.seconds <= 0:
            return
        if len(self._live) >= self.MAX_ENTRIES:
            self._live.clear()
        self._live[digest] = (self._clock() + self.seconds, name, role)


def _lookup(secret: str) -> Caller | None:
    cache = _state().tokens
    digest = accounts.token_hash(secret)
    hit = cache.get(digest)
    if hit is not None:
        return Caller(name=hit[0], role=hit[1], secret=secret)
    with context().db.transaction(write=False) as session:
        row = accounts.authenticate_token(session, secret)
        if row is None:
            return None
        cache.put(digest, name=row.name, role=row.role)
        return Caller(name=row.name, role=row.role, secret=secret)


def _authenticate(roles: frozenset[str]) -> Caller:
    """The caller if the bearer token is live and its role admitted; 401/403 otherwise."""
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise ApiError(
            "send an API token: Authorization: Bearer wpt_...",
            code="unauthorized",
            status=401,
            headers={"WWW-Authenticate": _BEARER_CHALLENGE},
        )
    caller = _lookup(secret)
    if caller is None:
        raise ApiError(
            "the API token is unknown or revoked",
            code="unauthorized",
            status=401,
            headers={"WWW-Authenticate": f'{_BEARER_CHALLENGE}, error="invalid_token"'},
        )
    if caller.role not in roles:
        raise ApiError(
            f"the {caller.role} role may not do this; allowed: {', '.join(sorted(roles))}",
            code="forbidden",
            status=403,
        )
    return caller


def _route(
    rule: str, *, method: str, roles: frozenset[str]
) -> Callable[
    [Callable[Concatenate[Caller, P], Response]], Callable[Concatenate[Caller, P], Response]
]:
    """Register a view that receives the authenticated caller; the role check cannot be left out."""

    def register(
        view: Callable[Concatenate[Caller, P], Response],
    ) -> Callable[Concatenate[Caller, P], Response]:
        @functools.wraps(view)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> Response:
            return view(_authenticate(roles), *args, **kwargs)

        ROLES[view.__name__] = roles
        blueprint.add_url_rule(rule, view.__name__, guarded, methods=[method])
        return view

    return register


# -- reading requests ------------------------------------------------------------


def _check_members(
    body: Mapping[str, Any], *, allowed: tuple[str, ...], required: tuple[str, ...] = ()
) -> None:
    for name in body:
        if name not in allowed:
            raise InputError(
                f"unknown field {name[:64]!r}; expected {', '.join(allowed)}", field=name
            )
    for name in required:
        if name not in body:
            raise InputError(f"{name} is required", field=name)


def _text(value: object, field: str, *, max_length: int) -> str:
    if not isinstance(value, str):
        raise InputError(f"{field} must be text", field=field)
    if _BAD_CHARS_RE.search(value):
        raise InputError(f"{field} contains control characters", field=field)
    if len(value) > max_length:
        raise InputError(f"{field} is longer than {max_length} characters", field=field)
    return value


def _optional_text(body: Mapping[str, Any], name: str, *, max_length: int) -> str | None:
    value = body.get(name)
    return None if value is None else _text(value, name, max_length=max_length)


def _timestamp(body: Mapping[str, Any], name: str) -> datetime | None:
    """An RFC 3339 time with a zone, as aware UTC; None when absent."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(
            f"{name} must be an RFC 3339 time such as 2026-12-01T00:00:00Z", field=name
        )
    match = _RFC3339_RE.fullmatch(value)
    if match is None:
        raise InputError(
            f"{name} must be an RFC 3339 time such as 2026-12-01T00:00:00Z", field=name
        )
    if match["zone"] is None:
        raise InputError(f"{name} needs a time zone (Z or an offset such as +01:00)", field=name)
    try:
        return datetime.fromisoformat(value.upper()).astimezone(UTC)
    except (ValueError, OverflowError):
        raise InputError(f"{name} is not a real point in time", field=name) from None


# -- writing responses -------------------------------------------------------------


def _created(issued: passes.IssuedPass) -> StoredResponse:
    """201 for a new pass, with the claim link that is shown this once (and on retries)."""
    settings = context().settings
    body = issued.to_json(settings.public_url)
    claim_url = issued.claim_url(settings.public_url)
    # Direct links for a city system's e-mail or letter; the same secret guards them.
    downloads = {
        "card_pdf": f"{claim_url}/card.pdf",
        "print_sheet_pdf": f"{claim_url}/card.pdf?layout=sheet",
        "card_png": f"{claim_url}/card.png",
    }
    if credentials.apple_available(settings):
        downloads["apple_wallet"] = f"{claim_url}/pass.pkpass"
    if settings.google_enabled:
        downloads["google_wallet"] = f"{claim_url}/google-wallet"
    body["downloads"] = downloads
    location = url_for("api.get_pass", serial=issued.record.serial)
    return StoredResponse(status_code=201, body=body, headers={"Location": location})


def _send(stored: StoredResponse, *, replayed: bool = False) -> Response:
    response = jsonify(stored.body)
    response.status_code = stored.status_code
    response.headers.update(stored.headers)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _create_once(
    caller: Caller, body: Mapping[str, Any], work: Callable[[Session], passes.IssuedPass]
) -> Response:
    """Run a use case that makes a pass or claim link: 201 with the link, at most once."""
    return _answer_once(caller, body, work, _created)


def _as_is(stored: StoredResponse) -> StoredResponse:
    return stored


def _answer_once(
    caller: Caller,
    body: Mapping[str, Any],
    work: Callable[[Session], T],
    answer: Callable[[T], StoredResponse],
) -> Response:
    """Run a creating use case, at most once per Idempotency-Key when the client sends one.

    ``work`` runs in the write transaction; ``answer`` turns its result into the
    response. Without a key the answer is built after the commit: on SQLite the
    write lock is then free ~0.1 ms sooner a request, for the other workers.
    """
    ctx = context()
    header = request.headers.get(idempotency.HEADER)
    if header is None:
        with ctx.db.transaction(write=True) as session:
            done = work(session)
        return _send(answer(done))
    key = idempotency.check_key(header)
    digest = idempotency.request_hash(method=request.method, path=request.path, body=body)
    earlier = {"actor": caller.actor, "key": key, "digest": digest, "secret": caller.secret}
    with ctx.db.transaction(write=False) as session:
        replay = idempotency.answer_for(session, **earlier)
    if replay is not None:
        return _send(replay, replayed=True)
    try:
        with ctx.db.transaction(write=True) as session:
            claimed = idempotency.claim(
                session, actor=caller.actor, key=key, digest=digest, now=now()
            )
            stored = answer(work(session))  # kept with the key: built before the commit
            idempotency.complete(session, claimed, stored, secret=caller.secret)
        return _send(stored)
    except idempotency.KeyTakenError as taken:
        # A concurrent twin committed first; everything of ours was rolled back.
        with ctx.db.transaction(write=False) as session:
            replay = idempotency.answer_for(session, **earlier)
        if replay is None:
            raise taken
        return _send(replay, replayed=True)


# -- routes ----------------------------------------------------------------------


@blueprint.before_request
def _limit_body() -> None:
    large = request.endpoint == "api.create_import"
    request.max_content_length = IMPORT_BODY_BYTES if large else MAX_BODY_BYTES


@blueprint.after_request
def _no_store(response: Response) -> Response:
    """Answers carry tokens and claim links: no cache may keep them."""
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _holder_fields(holder: object) -> dict[str, str]:
    """An object of holder fields, each a text (the pass type then checks them)."""
    if not isinstance(holder, dict):
        raise InputError("holder must be an object of the pass type's fields", field="holder")
    for name, value in holder.items():
        _text(value, f"holder.{name}", max_length=MAX_TEXT_LENGTH)
    return holder


@_route("/passes", method="POST", roles=ISSUERS)
def create_pass(caller: Caller) -> Response:
    body = read_json_object(MAX_BODY_BYTES)
    _check_members(
        body, allowed=("type", "holder", "valid_from", "valid_until"), required=("type", "holder")
    )
    type_id = _text(body["type"], "type", max_length=32)
    holder = _holder_fields(body["holder"])
    valid_from, valid_until = _timestamp(body, "valid_from"), _timestamp(body, "valid_until")
    moment = now()
    if valid_from is not None and valid_from > moment + MAX_START_AHEAD:
        raise InputError(
            f"valid_from may lie at most {MAX_START_AHEAD.days} days ahead", field="valid_from"
        )

    def prepare() -> passes.PreparedPass:
        try:
            return passes.prepare_pass(
                context().services, type_id=type_id, holder=holder, valid_from=valid_from,
                valid_until=valid_until, actor=caller.actor, now=moment,
            )  # fmt: skip
        except HolderDataError as exc:
            raise HolderDataError(exc.message, field=f"holder.{exc.field}") from exc

    # Checked and drafted before the write transaction opens (SQLite's one write
    # lock is held that much shorter), unless an Idempotency-Key may make this a
    # replay: that answers as the first request did, so it is looked up first.
    early = None if idempotency.HEADER in request.headers else prepare()
    if early is not None and passes.place_from_memory(context().services, early):
        # Then storing it is one statement: PostgreSQL commits it on its own, one
        # round trip instead of three (BEGIN, the statement, COMMIT).
        with context().db.statements() as session:
            issued = passes.issue_placed(session, context().services, early, now=moment)
        return _send(_created(issued))

    def issue(session: Session) -> passes.IssuedPass:
        draft = early or prepare()
        return passes.issue_prepared(session, context().services, draft, now=moment)

    return _create_once(caller, body, issue)


@_route("/passes", method="GET", roles=ISSUERS)
def list_passes(caller: Caller) -> Response:
    params = _query(("type", "state", "q", "limit", "offset"), may_be_empty=("type", "state", "q"))
    type_id = params.get("type")
    if type_id is not None:
        context().services.pass_type(type_id)  # unknown types are an error, not an empty page
    text = params.get("q")
    if text is not None:
        _text(text, "q", max_length=MAX_QUERY_LENGTH)
    limit = _whole_number(params, "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
    offset = _whole_number(params, "offset", default=0, low=0, high=MAX_OFFSET)
    with context().db.transaction(write=False) as session:
        page = passes.list_passes(
            session,
            type_id=type_id,
            state=params.get("state"),
            text=text,
            limit=limit,
            offset=offset,
        )
        items = [record.to_json() for record in page.items]
    return jsonify({"items": items, "total": page.total, "limit": limit, "offset": offset})


def _query(allowed: tuple[str, ...], *, may_be_empty: tuple[str, ...]) -> dict[str, str]:
    """Query parameters, each at most once; for ``may_be_empty`` an empty value means
    "not given" (as a plain HTML form sends it), for the others it is refused."""
    params: dict[str, str] = {}
    for name in request.args:
        if name not in allowed:
            raise InputError(
                f"unknown query parameter {name[:64]!r}; expected {', '.join(allowed)}",
                field=name,
            )
        values = request.args.getlist(name)
        if len(values) > 1:
            raise InputError(f"{name} is given more than once", field=name)
        if values[0] != "" or name not in may_be_empty:
            params[name] = values[0]
    return params


def _whole_number(
    params: Mapping[str, str], name: str, *, default: int, low: int, high: int
) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,10}", raw, re.ASCII) or not low <= int(raw) <= high:
        raise InputError(f"{name} must be a whole number from {low} to {high}", field=name)
    return int(raw)


@_route("/passes/<serial>", method="GET", roles=ISSUERS)
def get_pass(caller: Caller, serial: str) -> Response:
    with context().db.transaction(write=False) as session:
        body = passes.get_pass(session, serial).to_json()
    return jsonify(body)


def _change(caller: Caller, serial: str, action: str, *, reason_required: bool) -> Response:
    body = read_json_object(MAX_BODY_BYTES)
    _check_members(body, allowed=("reason",), required=("reason",) if reason_required else ())
    reason = _optional_text(body, "reason", max_length=MAX_REASON_LENGTH)
    if reason_required and (reason is None or not reason.strip()):
        raise InputError(f"say why the pass is {Action(action).done}", field="reason")
    ctx = context()
    with ctx.db.transaction(write=True) as session:
        answer = passes.change_state(
            session,
            ctx.services,
            serial,
            action=action,
            reason=reason,
            actor=caller.actor,
            now=now(),
        ).to_json()
    return jsonify(answer)


@_route("/passes/<serial>/revoke", method="POST", roles=ISSUERS)
def revoke_pass(caller: Caller, serial: str) -> Response:
    return _change(caller, serial, "revoke", reason_required=True)


@_route("/passes/<serial>/suspend", method="POST", roles=ISSUERS)
def suspend_pass(caller: Caller, serial: str) -> Response:
    return _change(caller, serial, "suspend", reason_required=False)


@_route("/passes/<serial>/reinstate", method="POST", roles=ISSUERS)
def reinstate_pass(caller: Caller, serial: str) -> Response:
    return _change(caller, serial, "reinstate", reason_required=False)


@_route("/passes/<serial>/reissue", method="POST", roles=ISSUERS)
def reissue_pass(caller: Caller, serial: str) -> Response:
    """A new serial and token (lost phone); with ``holder``, the fields that change (a new
    car: its plate)."""
    body = read_json_object(MAX_BODY_BYTES)
    _check_members(body, allowed=("reason", "holder"))
    reason = _optional_text(body, "reason", max_length=MAX_REASON_LENGTH)
    changes = _holder_fields(body["holder"]) if "holder" in body else None
    moment = now()

    def reissue(session: Session) -> passes.IssuedPass:
        try:
            return passes.reissue_pass(
                session, context().services, serial, reason=reason, actor=caller.actor,
                now=moment, changes=changes,
            )  # fmt: skip
        except HolderDataError as exc:
            raise HolderDataError(exc.message, field=f"holder.{exc.field}") from exc

    return _create_once(caller, body, reissue)


@_route("/passes/<serial>/renew", method="POST", roles=ISSUERS)
def renew_pass(caller: Caller, serial: str) -> Response:
    """The successor of a pass (a city portal's renewal ends here); see services.renewals."""
    body = read_json_object(MAX_BODY_BYTES)
    _check_members(body, allowed=("valid_until",))
    valid_until = _timestamp(body, "valid_until")
    moment = now()

    def renew(session: Session) -> passes.IssuedPass:
        return renewals.renew_pass(
            session, context().services, serial, valid_until=valid_until, actor=caller.actor,
            now=moment,
        ).issued  # fmt: skip

    return _create_once(caller, body, renew)


@_route("/passes/<serial>/claim-link", method="POST", roles=ISSUERS)
def replace_claim_link(caller: Caller, serial: str) -> Response:
    """A new claim link for the holder (the old one lost); older links say "replaced".

    With ``email`` the link goes to that address through the outbox and is not
    shown at all (202): the caller never needs to see the secret.
    """
    body = read_json_object(MAX_BODY_BYTES)
    _check_members(body, allowed=("reason", "email", "lang"))
    reason = _optional_text(body, "reason", max_length=MAX_REASON_LENGTH)
    moment = now()
    services = context().services
    if "email" not in body:
        if "lang" in body:
            raise InputError("lang goes with email (the language of the message)", field="lang")

        def replace(session: Session) -> passes.IssuedPass:
            return passes.replace_claim_link(
                session, services, serial, reason=reason, actor=caller.actor, now=moment
            )

        return _create_once(caller, body, replace)
    if not services.settings.smtp_enabled:
        raise InputError("e-mail is not set up on this service (WALLET_SMTP_*); leave out "
                         "email to get the link in the answer", field="email")  # fmt: skip

    def send(session: Session) -> StoredResponse:
        record = claim_mail.email_claim_link(
            session, services, serial, email=body["email"], lang=body.get("lang", "de"),
            reason=reason, actor=caller.actor, now=moment,
        )  # fmt: skip
        return StoredResponse(202, {**record.to_json(), "claim_link_sent_by": "email"}, {})

    return _answer_once(caller, body, send, _as_is)


MAX_IMPORT_ROWS = 10_000
IMPORT_FLAGS = ("dry_run", "skip_invalid", "send_email")


def _flag(params: Mapping[str, str], name: str) -> bool:
    raw = params.get(name, "false")
    if raw not in ("true", "false"):
        raise InputError(f"{name} must be true or false", field=name)
    return raw == "true"


@_route("/imports", method="POST", roles=ISSUERS)
def create_import(caller: Caller) -> Response:
    """A CSV export in, passes out: the check report, then each row's result."""
    params = _query(("type", *IMPORT_FLAGS), may_be_empty=())
    if "type" not in params:
        raise InputError("type is required (the pass type of every row)", field="type")
    dry_run, skip_invalid, send_email = (_flag(params, name) for name in IMPORT_FLAGS)
    if request.mimetype != "text/csv":
        raise ApiError("send the file as Content-Type: text/csv", code="unsupported_media_type",
                       status=400, field="Content-Type")  # fmt: skip
    try:
        data = request.get_data(cache=True)
    except RequestEntityTooLarge as exc:
        raise ApiError(f"the file is larger than {IMPORT_BODY_BYTES} bytes; import larger files "
                       "with `wallet import`", code="payload_too_large", status=413,
                       field="body") from exc  # fmt: skip
    table = read_table(data, max_rows=MAX_IMPORT_ROWS)
    ctx = context()
    with ctx.db.transaction(write=False) as session:
        report = imports.check(session, ctx.services, params["type"], table)
    unusable = any(p.code == "missing_column" for p in report.problems)
    if dry_run and not unusable:  # a file without the type's columns is no export at all
        return jsonify({"report": report.to_json()})
    if unusable or (report.problems and not skip_invalid):
        body = error_body("import_invalid", "the file has invalid rows and nothing was issued; "
                          "fix them, or send skip_invalid=true", field="body",
                          report=report.to_json())  # fmt: skip
        return _answer(body, 422)
    results = [
        o.to_json()
        for batch in imports.run(
            lambda: ctx.db.transaction(write=True), ctx.services, report,
            skip_invalid=skip_invalid, send_email=send_email, actor=caller.actor, clock=now,
        )
        for o in batch
    ]  # fmt: skip
    return _answer({"report": report.to_json(), "results": results}, 201)


def _answer(body: Mapping[str, Any], status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


@_route("/verify", method="POST", roles=ANY_ROLE)
def verify(caller: Caller) -> Response:
    body = read_json_object(MAX_BODY_BYTES)
    _check_members(body, allowed=("token",), required=("token",))
    text = body["token"]
    if not isinstance(text, str):
        raise InputError("token must be the text of a pass QR code or a JWS", field="token")
    ctx = context()
    moment = now()
    bundle_token = public.current_bundle(moment)
    result = ctx.verifiers.check(text, bundle_token=bundle_token, services=ctx.services, now=moment)
    return jsonify(result.to_json())


@blueprint.get("/openapi.json")
def openapi_document() -> Response:
    """Public, like any API reference: it describes routes, never data."""
    response = jsonify(_state().document)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


# -- per-application state -------------------------------------------------------


@dataclass
class ApiState:
    """What the API keeps per process: the document and live tokens."""

    document: dict[str, Any]
    tokens: TokenCache


def _state() -> ApiState:
    state: ApiState = current_app.extensions["wallet.api"]
    return state


def init_app(app: Flask) -> None:
    """Build the OpenAPI document once, from the loaded pass types and the role table."""
    ctx = app.extensions["wallet"]
    app.extensions["wallet.api"] = ApiState(
        tokens=TokenCache(seconds=ctx.settings.api_token_cache),
        document=openapi.build_document(
            pass_types=ctx.services.pass_types,
            roles=ROLES,
            max_body_bytes=MAX_BODY_BYTES,
            max_limit=MAX_LIMIT,
            default_limit=DEFAULT_LIMIT,
            max_offset=MAX_OFFSET,
        ),
    )
