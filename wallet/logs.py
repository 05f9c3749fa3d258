"""Log lines as JSON objects, one per line, for the city's log collector (issue 12).

Every line has ``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``;
a line written while a web request is handled also has its ``request_id`` (the
one the answer carries in ``X-Request-ID``). The web layer sets that id in
:data:`REQUEST_ID`; nothing here knows Flask, so the CLI's ``wallet worker``
logs the same shape. What goes into a message is the caller's care: no names,
plates, e-mail addresses, tokens or claim secrets (a test scans a whole test
run's logs for them).
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

REQUEST_ID: ContextVar[str | None] = ContextVar("wallet_request_id", default=None)


def utc_timestamp(seconds: float) -> str:
    """``2026-11-24T09:30:00.123Z``: one sortable form for every line."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def json_line(fields: dict[str, Any]) -> str:
    """One line, whatever the values hold (a line break inside is escaped, never split)."""
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"), default=str)


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: time, level, logger, message, request id, exception."""

    def __init__(self, *, redact: Any = None) -> None:
        super().__init__()
        # gunicorn's own messages may quote a request line (a path with a claim secret).
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if self._redact is not None:
            message = self._redact(message)
        fields: dict[str, Any] = {
            "time": utc_timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": message,
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            fields["request_id"] = request_id
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            fields["exception"] = record.exc_text
        return json_line(fields)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a line is written (as logging's last
    resort does), so a swapped stderr (a test runner's) is never written after closing."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


# Libraries that log every request's URL at INFO (httpx would put each APNs device
# token, in the push URL's path, into the log) or secrets at DEBUG (Authlib: the
# PKCE verifier of a staff sign-in).
QUIET_LIBRARIES = ("httpx", "httpcore", "hpack", "authlib")


def quiet_libraries() -> None:
    """Their warnings and errors still show; their per-request lines do not."""
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


def configure(*, level: int = logging.INFO) -> None:
    """The root logger writes JSON lines to stderr.

    Replaces plain stream handlers (``logging.basicConfig``'s, an earlier call's) and
    leaves any other handler (a log collector's, a test runner's) in place.
    """
    quiet_libraries()
    root = logging.getLogger()
    for old in list(root.handlers):
        if type(old) in (logging.StreamHandler, _Stderr):
            root.removeHandler(old)
    handler = _Stderr()
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)
