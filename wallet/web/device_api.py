"""The scanner app's own API under /device/v1: pair once, then sync with the device credential.

Separate from /api/v1 (whose bearer tokens belong to city systems), as Apple's
web service is: a phone holds a device credential (``wpd_…``), never an API
token. The bundle a paired device syncs is the public one; what the credential
adds is that staff see each device's last sync, and that a revoked device is
told so and gets nothing.
"""

from __future__ import annotations

import gzip
import hashlib
from typing import NoReturn

from flask import Blueprint, Flask, Response, jsonify, request

from wallet.codec import b64url_encode
from wallet.domain import DeviceState
from wallet.errors import InputError
from wallet.services import devices, plate_checks
from wallet.services import plate_index as plate_index_service
from wallet.web import public, security
from wallet.web.httperrors import error_body
from wallet.web.jsonbody import ApiError, read_json_object
from wallet.web.webcontext import context, now

blueprint = Blueprint("device_api", __name__, url_prefix="/device/v1")

MAX_BODY_BYTES = 1024  # {"code": "wpp_…"}
_CHALLENGE = 'Bearer realm="wallet-device"'


# Per device (its credential), counted where the login limits are: a person types
# a plate every few seconds at most; a script enumerating plates is stopped here.
PLATE_LIMIT = "30 per minute"


def init_app(app: Flask) -> None:
    security.limit_endpoint(app, "device_api.check_plate", PLATE_LIMIT, key_func=_device_key)


def _device_key() -> str:
    header = request.headers.get("Authorization", "")
    return "device:" + hashlib.sha256(header.encode("utf-8", "replace")).hexdigest()[:32]


@blueprint.errorhandler(ApiError)
def _api_error(exc: ApiError) -> Response:
    extra = {"field": exc.field} if exc.field is not None else {}
    response = jsonify(error_body(exc.code, exc.message, **extra))
    response.status_code = exc.status
    response.headers.update(exc.headers)
    return response


@blueprint.before_request
def _limit_body() -> None:
    request.max_content_length = MAX_BODY_BYTES


@blueprint.after_request
def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.post("/pair")
def pair() -> tuple[Response, int]:
    """Exchange the one-time code of a pairing QR for this device's credential."""
    body = read_json_object(MAX_BODY_BYTES)
    unknown = sorted(set(body) - {"code"})
    if unknown:
        raise InputError(f"unknown field {unknown[0][:64]!r}; expected code", field=unknown[0])
    ctx = context()
    with ctx.db.transaction(write=True) as session:
        paired = devices.complete_pairing(
            session, code=body.get("code"), audit_key=ctx.services.audit_key, now=now()
        )
    answer = {"device": paired.device.to_json(), "credential": paired.credential}
    return jsonify(answer), 201


@blueprint.get("/bundle")
def bundle() -> Response:
    """The current signed bundle, for a paired device that is not revoked."""
    credential = _credential()
    ctx = context()
    moment = now()
    with ctx.db.transaction(write=True) as session:
        device = devices.authenticate_device(session, credential, now=moment)
        state = None if device else devices.device_state_for(session, credential)
    if device is None:
        _refuse(state)
    token = public.current_bundle(moment)
    response = Response(token, mimetype="application/jwt")
    response.headers["ETag"] = '"' + hashlib.sha256(token.encode("ascii")).hexdigest()[:32] + '"'
    return response


@blueprint.post("/plates/check")
def check_plate() -> Response:
    """A parked car's permit by its plate, for a paired device: the verdict, zones, end."""
    credential = _credential()
    body = read_json_object(MAX_BODY_BYTES)
    unknown = sorted(set(body) - {"plate", "zone"})
    if unknown:
        raise InputError(f"unknown field {unknown[0][:64]!r}; expected plate, zone",
                         field=unknown[0])  # fmt: skip
    ctx = context()
    moment = now()
    # One transaction: the device, its count and the answer (a refused count rolls back).
    with ctx.db.transaction(write=True) as session:
        device = devices.authenticate_device(session, credential, now=moment)
        if device is None:
            _refuse(devices.device_state_for(session, credential))
        counted = plate_checks.count_lookup(session, device.device_id, now=moment)
        if counted > plate_checks.LIMIT_PER_DAY:
            raise ApiError(
                f"this device has checked more than {plate_checks.LIMIT_PER_DAY} plates today; "
                "ask the office to look into it",
                code="too_many_requests",
                status=429,
            )
        result = plate_checks.check_plate(
            session, ctx.services, body.get("plate"), body.get("zone"), now=moment
        )
    return jsonify(result.to_json())


@blueprint.get("/plates/index")
def plate_index() -> Response:
    """The signed offline plate index and its key, for a paired device that is not revoked.

    The key comes only here, with the device credential; the index alone is worth nothing.
    A device that holds the current index (If-None-Match: its ETag) gets a bare 304: it
    syncs every few minutes, and an index of a city's permits is megabytes (gzipped
    when the device accepts it: base64 of base64 shrinks by a third).
    """
    credential = _credential()
    ctx = context()
    moment = now()
    with ctx.db.transaction(write=True) as session:
        device = devices.authenticate_device(session, credential, now=moment)
        if device is None:
            _refuse(devices.device_state_for(session, credential))
        served = plate_index_service.current_index(
            session, ctx.services, zones=device.zones, now=moment
        )
    tag = f"plate-index-{served.version}"
    if request.if_none_match.contains(tag):
        unchanged = Response(status=304)
        unchanged.set_etag(tag)
        return unchanged
    response = jsonify({
        "index": served.token,
        "zones": list(device.zones),
        "key": b64url_encode(served.key),
        "version": served.version,
        "expires_at": served.expires_at.isoformat(),
    })  # fmt: skip
    response.set_etag(tag)
    response.vary.add("Accept-Encoding")
    if request.accept_encodings["gzip"]:
        response.set_data(gzip.compress(response.get_data(), compresslevel=6, mtime=0))
        response.headers["Content-Encoding"] = "gzip"
    return response


def _refuse(state: DeviceState | None) -> NoReturn:
    if state is DeviceState.REVOKED:
        raise ApiError(
            "this device was revoked in the console; pair it again to use it",
            code="device_revoked",
            status=401,
            headers={"WWW-Authenticate": f'{_CHALLENGE}, error="invalid_token"'},
        )
    raise ApiError(
        "the device credential is unknown; pair the device in the console",
        code="unauthorized",
        status=401,
        headers={"WWW-Authenticate": f'{_CHALLENGE}, error="invalid_token"'},
    )


def _credential() -> str:
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(
            "send the device credential: Authorization: Bearer wpd_...",
            code="unauthorized",
            status=401,
            headers={"WWW-Authenticate": _CHALLENGE},
        )
    return secret.strip()
