"""gunicorn settings for the wallet service, from the ``WALLET_*`` environment.

``scripts/serve`` runs ``gunicorn -c python:wallet.web.gunicorn_conf wallet.web.wsgi:app``.
gunicorn reads this module once at start, so unlike the rest of the package it
reads the environment at import time.

- ``WALLET_BIND`` (default ``127.0.0.1:8000``; several addresses comma-separated),
  ``WALLET_WORKERS`` (default 2), ``WALLET_FORWARDED_ALLOW_IPS`` (the TLS proxy's
  address, default ``127.0.0.1``).
- No preloading: every worker builds its own app and database engine after the
  fork, so no connection is ever shared between processes.
- The access log goes to stdout with long path segments and query values
  shortened: claim links carry their secret in the path, and secrets never go
  into logs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from gunicorn.glogging import Logger  # type: ignore[import-untyped]

from wallet.config import Settings
from wallet.errors import ConfigError

MAX_WORKERS = 64
# Serials (16 characters) stay readable; claim secrets and tokens (24 and more) do not.
_SECRET_LIKE = re.compile(r"[A-Za-z0-9_-]{24,}")
_REDACTED_ATOMS = ("r", "U", "q", "f")


def _redact(text: str) -> str:
    return _SECRET_LIKE.sub(lambda m: m.group(0)[:4] + "***", text)


class RedactingLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger, with anything secret-shaped cut out of request lines."""

    def atoms(
        self, resp: Any, req: Any, environ: Mapping[str, Any], request_time: Any
    ) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        for name in _REDACTED_ATOMS:
            if isinstance(atoms.get(name), str):
                atoms[name] = _redact(atoms[name])
        for name in list(atoms):
            lowered = name.lower()
            if lowered.endswith("}e") or lowered in ("{authorization}i", "{cookie}i"):
                atoms[name] = "-"
        return atoms


def _workers(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_WORKERS:
        raise SystemExit(
            f"error: WALLET_WORKERS must be a whole number from 1 to {MAX_WORKERS} (got {raw!r}); "
            "about two per CPU core is a good start"
        )
    return value


try:
    _settings = Settings.from_env(os.environ)
except ConfigError as exc:
    raise SystemExit(f"error: {exc.message}") from exc

bind = [part.strip() for part in _settings.bind.split(",") if part.strip()]
workers = _workers(os.environ.get("WALLET_WORKERS", "2"))
# gthread with one thread: a sync worker that keeps connections alive, which
# clients and the TLS proxy reuse (the benchmark serves the same way).
worker_class = "gthread"
threads = 1
# One listening socket per worker (SO_REUSEPORT; gunicorn opens it after the
# fork) and the kernel spreads new connections over them. On one shared socket
# a worker kept accepting kept-alive connections it could serve only one at a
# time while the other idled (scripts/bench records each worker's CPU time).
reuse_port = True
preload_app = False
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = "-"
errorlog = "-"
loglevel = "info"
logger_class = RedactingLogger
proc_name = "wallet"
forwarded_allow_ips = os.environ.get("WALLET_FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn >= 25 opens a control socket, by default one shared per user ($HOME):
# keep it with the instance so that two instances never collide.
_control = _settings.instance_dir / "gunicorn.ctl"
if len(str(_control)) < 100:  # the limit of a Unix socket path
    control_socket = str(_control)
else:
    control_socket_disable = True
