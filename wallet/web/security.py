"""CSRF protection for the HTML blueprints and rate limits on staff logins.

CSRF is checked only where a blueprint asks for it (``protect_form`` in its
before_request): the JSON API under /api/v1 authenticates with bearer tokens and
must not need a form token. Login limits live in a Limiter per app, so two apps
in one process (tests, or a future admin app) never share counters by accident;
with ``WALLET_REDIS_URL`` set every worker on every host shares them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter
from flask_wtf.csrf import CSRFProtect

LOGIN_LIMIT = "5 per minute"  # failed attempts, per address and per username
# Console sessions last one working shift; CSRF tokens as long as the session.
SESSION_LIFETIME = timedelta(hours=8)
_LIMITER = "wallet_login_limiter"


def init_app(app: Flask) -> None:
    """CSRF machinery for the HTML blueprints (idempotent: both blueprints call it)."""
    if "csrf" in app.extensions:
        return
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False  # only blueprints that ask are checked
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", int(SESSION_LIFETIME.total_seconds()))
    CSRFProtect(app)


def protect_form() -> None:
    """Before-request hook: refuse a POST without a valid CSRF token (400)."""
    current_app.extensions["csrf"].protect()


def client_address() -> str:
    """The address the request came from (behind a proxy: configure ProxyFix first)."""
    return request.remote_addr or "unknown"


def login_name() -> str:
    """The username a login attempt is for, normalised so case games do not help."""
    name = request.form.get("username", "")
    return "user:" + name.strip().lower()[:64]


def failed_login(response: Response) -> bool:
    """Only failed attempts count: a successful sign-in answers with a redirect."""
    return response.status_code != 302


def limit_logins(app: Flask, endpoint: str, *, storage_uri: str) -> Limiter:
    """Wrap the login view: LOGIN_LIMIT failed attempts per client address and per username.

    Successful sign-ins do not count, so a whole office behind one address can
    start its shift. Counters live in Redis when configured (shared by every
    worker and host), else in this process.
    """
    limiter = _limiter(app, storage_uri)
    view: Callable[..., Any] = app.view_functions[endpoint]
    per_name = limiter.limit(
        LOGIN_LIMIT, key_func=login_name, methods=["POST"], deduct_when=failed_login
    )
    per_address = limiter.limit(
        LOGIN_LIMIT, key_func=client_address, methods=["POST"], deduct_when=failed_login
    )
    app.view_functions[endpoint] = per_address(per_name(view))
    return limiter


def limit_endpoint(app: Flask, endpoint: str, rate: str) -> None:
    """Wrap a view in a per-address limit, counted where the login limits are."""
    limiter = _limiter(app, app.extensions["wallet"].settings.redis_url)
    view: Callable[..., Any] = app.view_functions[endpoint]
    app.view_functions[endpoint] = limiter.limit(rate, key_func=client_address)(view)


def _limiter(app: Flask, storage_uri: str) -> Limiter:
    """One limiter per app, made on first use."""
    if _LIMITER in app.extensions:
        limiter: Limiter = app.extensions[_LIMITER]
        return limiter
    app.config.setdefault("RATELIMIT_STORAGE_URI", storage_uri or "memory://")
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "wallet")
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    # If Redis is down, count in this worker's memory; a storage error never becomes a 500.
    limiter = Limiter(key_func=client_address, in_memory_fallback_enabled=True, swallow_errors=True)
    limiter.init_app(app)
    app.extensions[_LIMITER] = limiter
    return limiter
