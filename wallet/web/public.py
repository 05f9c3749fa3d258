"""What anyone may fetch: JWKS, status list tokens, the trust bundle, the root key,
the newest signed checkpoint of the audit log."""

from __future__ import annotations

import gzip
import hashlib
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path

from flask import (
    Blueprint,
    Response,
    abort,
    jsonify,
    redirect,
    request,
    send_file,
    send_from_directory,
)
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response as WerkzeugResponse

from wallet.keys import KeyRole, KeyState
from wallet.services import audit, brand, publishing
from wallet.web.webcontext import context, now

blueprint = Blueprint("public", __name__)
GZIP_MIN_BYTES = 256  # below this gzip saves nothing worth the work
STAND_IN_BUTTONS = Path(__file__).parent / "static" / "wallet-buttons"
BUTTON_MAX_AGE = 3600  # an admin's swap to the official artwork shows within the hour


def _cacheable(body: str, *, media_type: str, etag: str, max_age: int) -> Response:
    """A body with ETag and Cache-Control; 304 when the client has it; gzip when asked."""
    response = Response(status=200, mimetype=media_type)
    response.set_etag(etag)
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    response.vary.add("Accept-Encoding")
    if request.if_none_match.contains(etag):
        response.status_code = 304
        return response
    data = body.encode("ascii")
    if request.accept_encodings["gzip"] and len(data) >= GZIP_MIN_BYTES:
        data = gzip.compress(data, mtime=0)
        response.headers["Content-Encoding"] = "gzip"
    response.set_data(data)
    return response


@blueprint.get("/")
def home() -> WerkzeugResponse:
    """Whoever types the bare address is staff (citizens come by their claim link)."""
    return redirect("/console/", code=302)


@blueprint.get("/.well-known/jwks.json")
def jwks() -> Response:
    keys = [
        k.jwk()
        for k in context().services.keys.public_keys()
        if k.info.role is KeyRole.PASS and k.info.state is not KeyState.REVOKED
    ]
    response = jsonify({"keys": keys})
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def _transaction(write: bool) -> AbstractContextManager[Session]:
    return context().db.transaction(write=write)


@blueprint.get("/status/<name>")
def status_list(name: str) -> Response:
    ctx = context()
    moment = now()
    with ctx.db.transaction(write=False) as session:
        found = publishing.cached_status_list(session, ctx.services, name, now=moment)
    if found is None:  # rebuilt from a read transaction, stored by a short write
        publishing.refresh_status_lists(_transaction, ctx.services, [name], now=moment)
        with ctx.db.transaction(write=False) as session:
            found = publishing.published_list(session, name)
    assert found.token is not None and found.published_at is not None
    etag = f"{name}-{found.published_version}-{int(found.published_at.timestamp())}"
    return _cacheable(
        found.token,
        media_type="application/statuslist+jwt",
        etag=etag,
        max_age=ctx.settings.status_list_ttl,
    )


def current_bundle(moment: datetime) -> str:
    """The bundle a device downloads now: the signed copy, or a new one if anything changed."""
    ctx = context()
    with ctx.db.transaction(write=False) as session:
        token = publishing.cached_bundle(session, ctx.services, now=moment)
    if token is None:  # a status or key changed since: sign anew, in a write transaction
        with ctx.db.transaction(write=False) as session:
            names = publishing.list_names(session)
        # Lists first, each outside the bundle's write transaction, which then finds them current.
        publishing.refresh_status_lists(_transaction, ctx.services, names, now=moment)
        with ctx.db.transaction(write=True) as session:
            token = publishing.publish_bundle(session, ctx.services, now=moment).token
    return token


@blueprint.get("/verifier/bundle")
def bundle() -> Response:
    token = current_bundle(now())
    etag = hashlib.sha256(token.encode("ascii")).hexdigest()[:32]
    return _cacheable(token, media_type="application/jwt", etag=etag, max_age=300)


@blueprint.get("/verifier/root-key.pem")
def root_key() -> Response:
    pem = context().services.keys.root_public_key(now=now()).pem()
    response = Response(pem, mimetype="application/x-pem-file")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@blueprint.get("/verifier/audit-checkpoint")
def audit_checkpoint() -> Response:
    """The newest signed checkpoint of the audit log and the key that signs them.

    Anyone may keep copies: a later checkpoint with a smaller ``seq``, or a
    different ``head`` for the same ``seq``, proves the log was cut or rewritten.
    """
    ctx = context()
    key = ctx.services.audit_key.public
    with ctx.db.transaction(write=False) as session:
        checkpoint = audit.latest_checkpoint(session)
    body = {"checkpoint": checkpoint, "key": key.key_id, "public_key": key.pem().decode("ascii")}
    response = jsonify(body)
    response.headers["Cache-Control"] = "public, max-age=60"
    return response


@blueprint.get("/passes/<type_id>/logo.png")
def pass_logo(type_id: str) -> Response:
    """A pass type's logo for Google Wallet, whose servers fetch it by URL."""
    ctx = context()
    if type_id not in ctx.services.pass_types:
        abort(404)
    path = ctx.settings.pass_types_dir / type_id / "google" / "logo.png"
    if not path.is_file():
        abort(404)
    data = path.read_bytes()
    etag = hashlib.sha256(data).hexdigest()[:32]
    response = Response(data, mimetype="image/png")
    response.set_etag(etag)
    response.cache_control.public = True
    response.cache_control.max_age = 86400
    response.make_conditional(request)
    return response


@blueprint.get("/wallet-buttons/<name>")
def wallet_button(name: str) -> Response:
    """A platform's button artwork: the official file from the instance, else the stand-in.

    SVG can carry script: these files get a CSP that runs none, opened directly
    or not, and are never sniffed as anything else.
    """
    if name not in brand.BUTTON_FILES:
        abort(404)
    official = brand.official_button(context().settings, name)
    if official is not None:
        response = send_file(official, mimetype="image/svg+xml", max_age=BUTTON_MAX_AGE)
    else:
        response = send_from_directory(STAND_IN_BUTTONS, name, max_age=BUTTON_MAX_AGE)
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
