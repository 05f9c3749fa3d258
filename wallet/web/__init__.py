"""The Flask application: the only place (with the CLI) that knows HTTP."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from wallet.config import PROJECT_ROOT, Settings
from wallet.errors import ConfigError, WalletError
from wallet.files import write_atomically
from wallet.services.context import Services
from wallet.store.db import Database
from wallet.web.bodies import IMPORT_BODY_BYTES, IMPORT_PATHS, BufferedBodies
from wallet.web.httperrors import error_body, status_for, wants_json
from wallet.web.webcontext import WebContext, _utc_now

log = logging.getLogger(__name__)


def _secret_key(settings: Settings) -> str:
    """WALLET_SECRET_KEY, or in dev mode a key kept in the instance folder for all workers."""
    if settings.secret_key:
        return settings.secret_key
    if not settings.dev_mode:
        raise ConfigError(
            "set WALLET_SECRET_KEY to a long random value "
            "(python3 -c 'import secrets; print(secrets.token_hex(32))')"
        )
    path = settings.instance_dir / "secret_key"
    if not path.exists():
        write_atomically(path, secrets.token_hex(32).encode("ascii"), mode=0o600)
    return path.read_text(encoding="ascii").strip()


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    db: Database | None = None,
    clock: Callable[[], datetime] | None = None,
    config: Mapping[str, Any] | None = None,
) -> Flask:
    """Build the app from explicit settings (tests) or the WALLET_* environment."""
    settings = settings or Settings.from_env(os.environ)
    app = Flask(
        __name__,
        template_folder=str(PROJECT_ROOT / "templates" / "web"),
        static_folder=str(Path(__file__).parent / "static"),
    )
    app.config.update(
        SECRET_KEY=_secret_key(settings),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https://"),
        JSON_SORT_KEYS=False,
        MAX_CONTENT_LENGTH=256 * 1024,
    )
    if config:
        app.config.update(config)

    def body_limit(environ: dict[str, Any]) -> int:
        if environ.get("PATH_INFO") in IMPORT_PATHS:
            return IMPORT_BODY_BYTES
        return int(app.config["MAX_CONTENT_LENGTH"])

    app.wsgi_app = BufferedBodies(app.wsgi_app, max_bytes=body_limit)  # type: ignore[method-assign]
    if settings.trusted_proxies:
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops
        )
    services = services or Services.from_settings(settings)
    services.audit_key  # noqa: B018 - loaded at start like the keys: every change writes with it
    app.extensions["wallet"] = WebContext(
        settings=settings,
        services=services,
        db=db or Database(settings.database),
        clock=clock or _utc_now,
    )

    from wallet.web import (
        api,
        apple,
        citizen,
        console,
        console_devices,  # noqa: F401 - adds its pages to the console
        console_imports,  # noqa: F401 - adds its pages to the console
        console_oidc,  # adds sign-in through the city's identity provider to the console
        console_plates,  # noqa: F401 - adds its page to the console
        console_totp,  # noqa: F401 - adds the second sign-in step to the console
        device_api,
        health,
        public,
        requestid,
        scanner,
    )

    requestid.init_app(app)
    from wallet.web import metrics as request_metrics

    request_metrics.init_app(app)
    for module in (public, api, citizen, console, apple, device_api, scanner, health):
        app.register_blueprint(module.blueprint)
        init = getattr(module, "init_app", None)
        if init is not None:
            init(app)
    console_oidc.init_app(app)

    @app.errorhandler(WalletError)
    def _wallet_error(exc: WalletError) -> tuple[Response, int]:
        extra = {"field": exc.field} if exc.field is not None else {}
        return jsonify(error_body(exc.code, exc.message, **extra)), status_for(exc)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        if not wants_json():
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        body = jsonify(error_body(code, exc.description or exc.name or "error"))
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
        return body, exc.code or 500, headers

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        # The route, not the path: a path may hold a claim secret.
        log.exception(
            "unexpected error on %s %s (request %s)",
            request.method, requestid.route(), requestid.current(),
        )  # fmt: skip
        body = error_body("internal_error", "something went wrong on our side; it was logged")
        return jsonify(body), 500

    @app.after_request
    def _security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        )
        if settings.public_url.startswith("https://"):
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response

    return app
