"""``/healthz`` and ``/readyz``: for HAProxy's health checks and the city's monitoring.

``/healthz`` answers 200 while the process can answer at all (restart it if not).
``/readyz`` answers 200 when this node can serve (see wallet.services.health), else
503 naming each check that failed: a load balancer stops sending it requests, the
monitoring says why. Neither writes anything nor says anything about holders.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from wallet.services import health
from wallet.web.webcontext import context, now

blueprint = Blueprint("health", __name__)


def _uncached(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"  # a probe must see now, not a copy
    return response


@blueprint.get("/healthz")
def healthz() -> Response:
    return _uncached(jsonify({"status": "alive"}))


@blueprint.get("/readyz")
def readyz() -> Response:
    ctx = context()
    result = health.readiness(ctx.db, ctx.services, now=now())
    response = _uncached(jsonify(result.to_json()))
    response.status_code = 200 if result.ready else 503
    return response
