"""Apple's pass update web service, under ``<public URL>/apple`` (the webServiceURL).

Devices call these endpoints, not people: answers are the status codes
Apple's protocol names (201/200/204/304/401), with the usual JSON error
body where a body is allowed. The pass download answers ``Last-Modified``
and honours ``If-Modified-Since``, or Wallet would fetch every pass on
every push.
"""

from __future__ import annotations

import logging
from datetime import UTC

from flask import Blueprint, Flask, Response, jsonify, request
from werkzeug.http import http_date, parse_date

from wallet.errors import ConfigError
from wallet.services import apple, renewals, wallets
from wallet.web import security
from wallet.web.httperrors import error_body
from wallet.web.webcontext import context, now

log = logging.getLogger(__name__)
blueprint = Blueprint("apple", __name__, url_prefix=wallets.APPLE_WEB_SERVICE_PATH)
PKPASS_TYPE = "application/vnd.apple.pkpass"
LOG_LIMIT = "30 per minute"  # per address; devices log rarely, and only failures


def init_app(app: Flask) -> None:
    security.limit_endpoint(app, "apple.device_log", LOG_LIMIT)


@blueprint.errorhandler(apple.AppleAuthError)
def _unauthorised(exc: apple.AppleAuthError) -> tuple[Response, int]:
    return jsonify(error_body(exc.code, exc.message)), 401


@blueprint.errorhandler(ConfigError)
def _not_configured(exc: ConfigError) -> tuple[Response, int]:
    log.error("Apple Wallet cannot serve passes: %s", exc.message)
    body = error_body(exc.code, "Apple Wallet passes are not available right now; it was logged")
    return jsonify(body), 503


@blueprint.post("/v1/devices/<device>/registrations/<pass_type_id>/<serial>")
def register(device: str, pass_type_id: str, serial: str) -> tuple[str, int]:
    body = request.get_json(silent=True)
    push_token = body.get("pushToken") if isinstance(body, dict) else None
    ctx = context()
    with ctx.db.transaction(write=True) as session:
        created = apple.register_device(
            session,
            ctx.services,
            device_id=device,
            pass_type_id=pass_type_id,
            serial=serial,
            authorization=request.headers.get("Authorization"),
            push_token=push_token,
            now=now(),
        )
    return "", 201 if created else 200


@blueprint.delete("/v1/devices/<device>/registrations/<pass_type_id>/<serial>")
def unregister(device: str, pass_type_id: str, serial: str) -> tuple[str, int]:
    ctx = context()
    with ctx.db.transaction(write=True) as session:
        apple.unregister_device(
            session,
            ctx.services,
            device_id=device,
            pass_type_id=pass_type_id,
            serial=serial,
            authorization=request.headers.get("Authorization"),
        )
    return "", 200


@blueprint.get("/v1/devices/<device>/registrations/<pass_type_id>")
def updated(device: str, pass_type_id: str) -> Response | tuple[str, int]:
    ctx = context()
    with ctx.db.transaction(write=False) as session:
        updates = apple.updated_serials(
            session,
            ctx.services,
            device_id=device,
            pass_type_id=pass_type_id,
            since=request.args.get("passesUpdatedSince"),
        )
    if updates is None:
        return "", 204
    return jsonify({"serialNumbers": updates.serials, "lastUpdated": updates.last_updated})


@blueprint.get("/v1/passes/<pass_type_id>/<serial>")
def latest_pass(pass_type_id: str, serial: str) -> Response | tuple[str, int]:
    ctx = context()
    with ctx.db.transaction(write=False) as session:
        value = apple.latest_pass(
            session,
            ctx.services,
            pass_type_id=pass_type_id,
            serial=serial,
            authorization=request.headers.get("Authorization"),
        )
        modified = value.updated_at.astimezone(UTC).replace(microsecond=0)
        since = parse_date(request.headers.get("If-Modified-Since"))
        if since is not None and modified <= since.astimezone(UTC):
            response = Response(status=304)
            response.headers["Last-Modified"] = http_date(modified)
            return response
        data = wallets.pkpass_for(ctx.services, value, now=now())
    if value.wallet_id != value.serial:  # a renewal reached the phone: the old token retires
        with ctx.db.transaction(write=True) as session:
            renewals.successor_claimed(session, ctx.services, value.serial, now=now())
    response = Response(data, mimetype=PKPASS_TYPE)
    response.headers["Last-Modified"] = http_date(modified)
    response.headers["Cache-Control"] = "no-cache"
    return response


@blueprint.post("/v1/log")
def device_log() -> tuple[str, int]:
    body = request.get_json(silent=True)
    messages = body.get("logs") if isinstance(body, dict) else None
    ctx = context()
    with ctx.db.transaction(write=True) as session:
        count = apple.record_log(session, messages, now=now())
    log.info("Apple Wallet devices logged %d messages", count)
    return "", 200
