"""CSRF protection for the HTML blueprints and rate limits on staff logins.

CSRF is checked only where a blueprint asks for it (``protect_form`` in its
before_request): the JSON API under /api/v1 authenticates with bearer tokens and
must not need a form token. Login limits live in a Limiter per app, so two apps
in one process (tests, or a future admin app) never share counters by accident;
with ``WALLET_REDIS_URL`` set every worker on every host shares them.

Login limits must stop guessing without letting a stranger lock a known user
out by failing on purpose. Only failed attempts count, and they count:

- per source address, and per account and source address, for browsers the
  account was never used in: one source cannot spray, nor guess one account;
- per account, from all such browsers together (slower guessing from many
  addresses); when this trips, the admins are told in the audit log;
- per account and browser, for a browser the account signed in from before
  (a signed device cookie, set at each successful sign-in, OWASP's "device
  cookies"): that browser is exempt from the three limits above, so the real
  user at their usual desk keeps signing in while a stranger is refused.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter, RequestLimit
from flask_wtf.csrf import CSRFProtect
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response as BaseResponse

LOGIN_LIMIT = "5 per minute"  # failed attempts, per address, per account and address, per device
# Failed attempts per account from all unknown browsers together.
ACCOUNT_LIMIT = "5 per minute;30 per hour"
# Console sessions last one working shift; CSRF tokens as long as the session.
SESSION_LIFETIME = timedelta(hours=8)
DEVICE_COOKIE = "wallet_device"
DEVICE_LIFETIME = timedelta(days=180)
MAX_DEVICE_ACCOUNTS = 8  # a shared desk browser remembers this many accounts
THROTTLE_REPORT_QUIET = timedelta(hours=1)  # one audit entry per account and hour at most
_LIMITER = "wallet_login_limiter"
_DEVICE_SALT = "wallet-login-device"


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


def client_network() -> str:
    """The client's network, not its address, for log lines: ``203.0.113.0/24`` or
    ``2001:db8:1::/48``. Enough to see an attack come from one place, too coarse
    to name a person (an address is personal data; the rate limits keep the whole one)."""
    try:
        address = ipaddress.ip_address(client_address())
    except ValueError:
        return "unknown"
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def _attempted_name() -> str:
    return request.form.get("username", "").strip().lower()[:64]


def login_name() -> str:
    """The username a login attempt is for, normalised so case games do not help."""
    return "user:" + _attempted_name()


def login_name_and_address() -> str:
    return f"{login_name()}@{client_address()}"


# -- device cookies -----------------------------------------------------------------


def _device_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(str(current_app.secret_key), salt=_DEVICE_SALT)


def _device() -> dict[str, Any] | None:
    """This browser's signed device record: {"id": ..., "users": [...]}, or None."""
    raw = request.cookies.get(DEVICE_COOKIE)
    if not raw or len(raw) > 2048:
        return None
    try:
        data = _device_serializer().loads(raw, max_age=int(DEVICE_LIFETIME.total_seconds()))
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        return None
    users = data.get("users")
    if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
        return None
    return data


def known_device() -> bool:
    """True when this browser signed in to the attempted account before."""
    device = _device()
    return device is not None and _attempted_name() in device["users"]


def unknown_device() -> bool:
    return not known_device()


def login_name_and_device() -> str:
    device = _device()
    return f"{login_name()}@device:{device['id'] if device else '-'}"


def remember_device(response: BaseResponse, username: str) -> None:
    """After a successful sign-in: this browser is known for this account from now on."""
    device = _device() or {"id": secrets.token_urlsafe(16), "users": []}
    name = username.strip().lower()
    others = [u for u in device["users"] if u != name]
    users = [*others[-(MAX_DEVICE_ACCOUNTS - 1) :], name]
    value = _device_serializer().dumps({"id": device["id"], "users": users})
    response.set_cookie(
        DEVICE_COOKIE,
        value,
        max_age=int(DEVICE_LIFETIME.total_seconds()),
        path="/console/",
        secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")),
        httponly=True,
        samesite="Lax",
    )


# -- the limits -------------------------------------------------------------------------


def failed_login(response: Response) -> bool:
    """Only failed attempts count: a successful sign-in answers with a redirect."""
    return response.status_code != 302


def limit_logins(
    app: Flask, endpoint: str, *, storage_uri: str, on_account_throttled: Callable[[str], None]
) -> Limiter:
    """Wrap the login view in the four limits of this module's docstring.

    Successful sign-ins do not count, so a whole office behind one address can
    start its shift. Counters live in Redis when configured (shared by every
    worker and host), else in this process. ``on_account_throttled(username)``
    is called when the per-account limit refuses an attempt.
    """
    limiter = _limiter(app, storage_uri)
    view: Callable[..., Any] = app.view_functions[endpoint]

    def account_breached(limit: RequestLimit) -> None:
        on_account_throttled(_attempted_name())

    failed: dict[str, Any] = {"methods": ["POST"], "deduct_when": failed_login}
    limits = [
        limiter.limit(LOGIN_LIMIT, key_func=client_address, exempt_when=known_device, **failed),
        limiter.limit(
            LOGIN_LIMIT, key_func=login_name_and_address, exempt_when=known_device, **failed
        ),
        limiter.limit(
            ACCOUNT_LIMIT,
            key_func=login_name,
            exempt_when=known_device,
            on_breach=account_breached,
            **failed,
        ),
        limiter.limit(
            LOGIN_LIMIT, key_func=login_name_and_device, exempt_when=unknown_device, **failed
        ),
    ]
    for limit in limits:
        view = limit(view)
    app.view_functions[endpoint] = view
    return limiter


def limit_endpoint(
    app: Flask, endpoint: str, rate: str, *, key_func: Callable[[], str] = client_address
) -> None:
    """Wrap a view in a limit per address (or per ``key_func``), counted where the
    login limits are."""
    limiter = _limiter(app, app.extensions["wallet"].settings.redis_url)
    view: Callable[..., Any] = app.view_functions[endpoint]
    app.view_functions[endpoint] = limiter.limit(rate, key_func=key_func)(view)


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
