"""Request timing for Prometheus, and the metrics listener the gunicorn master runs.

The public app has no ``/metrics`` route: Prometheus scrapes its own listener
(``WALLET_METRICS_BIND``, e.g. ``127.0.0.1:9100``), started in the gunicorn master
(``wallet.web.gunicorn_conf``). It sums what every worker process and ``wallet
worker`` wrote into the instance's metric folder and reads the database's figures
when scraped (``wallet.services.metrics``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, request

from wallet.config import Settings
from wallet.services import metrics
from wallet.services.context import Services
from wallet.store.db import Database
from wallet.web import requestid


def init_app(app: Flask) -> None:
    """Every answer is timed into ``wallet_http_request_duration_seconds``."""
    metrics.declare(app.extensions["wallet"].services.pass_types)

    @app.before_request
    def _start() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.get("metrics_started")
        if started is not None:
            metrics.observe_request(
                requestid.route(), request.method, response.status_code,
                time.perf_counter() - started,
            )  # fmt: skip
        return response


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _address(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    return host.strip("[]"), int(port)


def serve(settings: Settings) -> Any:
    """Start the metrics listener on ``settings.metrics_bind`` (a daemon thread); returns
    the server. In the gunicorn master, after :func:`metrics.use_directory`."""
    from prometheus_client import start_http_server

    registry = metrics.exposition_registry(
        settings.metrics_dir,
        Database(settings.database, pool_size=1),
        Services.from_settings(settings),
        clock=_utc_now,
    )
    host, port = _address(settings.metrics_bind)
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
