"""Request bodies are read whole before the app runs: a streamed body is judged like a counted one.

Without this, Werkzeug reads a ``Transfer-Encoding: chunked`` body only up to
the size limit and hands the view that prefix as if it were the whole body: a
70 KiB body whose first 64 KiB happen to be valid JSON was acted on. Here a
streamed body is read up to one byte past the limit and then presented to the
app as a counted body (``CONTENT_LENGTH`` set, the stream a buffer), so every
limit the app applies to ``Content-Length`` bodies (413, JSON on API paths)
applies to it unchanged, and no view ever sees a truncated body.

Counted bodies within the limit are read here too, so a body that ends early
reads as cut short wherever the app reads it. Whatever is left unread (a body
past the limit) never reaches another request: gunicorn's sync workers answer
one request per connection, with ``Connection: close`` (``gunicorn_conf``).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import IO, Any

_READ_SIZE = 64 * 1024

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]


# The API's CSV import takes a larger body than anything else (10,000 rows at most;
# bigger files go through `wallet import`, which shows progress and resumes).
IMPORT_PATHS = ("/api/v1/imports", "/console/import")
IMPORT_BODY_BYTES = 4 * 1024 * 1024


def _read_at_most(stream: IO[bytes], limit: int) -> bytes:
    """Up to ``limit`` bytes, fewer only when the body ends first."""
    parts: list[bytes] = []
    left = limit
    while left > 0:
        part = stream.read(min(left, _READ_SIZE))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _declared_length(environ: Environ) -> int | None:
    raw = environ.get("CONTENT_LENGTH", "")
    if not isinstance(raw, str) or not raw.isascii() or not raw.isdigit():
        return None
    return int(raw)


class BufferedBodies:
    """WSGI middleware: every request body whole and counted, or marked as too large."""

    def __init__(self, app: WsgiApp, *, max_bytes: Callable[[Environ], int]) -> None:
        self.app = app
        self._max_bytes = max_bytes

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        self._buffer(environ)
        return self.app(environ, start_response)

    def _buffer(self, environ: Environ) -> None:
        limit = self._max_bytes(environ)  # per path: a CSV import may be larger
        stream = environ.get("wsgi.input")
        if stream is None:
            return
        coding = str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower()
        if "chunked" in coding:
            # Only a server that ends the stream at the last chunk makes reading safe.
            if not environ.get("wsgi.input_terminated"):
                return
            data = _read_at_most(stream, limit + 1)
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            environ.pop("wsgi.input_terminated", None)
            if len(data) > limit:
                # At least limit + 1 bytes: the app refuses it as it refuses a counted body
                # of that size (it never reads the prefix), and the rest stays unread.
                environ["CONTENT_LENGTH"] = str(limit + 1)
                environ["wsgi.input"] = io.BytesIO(b"")
                return
            environ["CONTENT_LENGTH"] = str(len(data))
            environ["wsgi.input"] = io.BytesIO(data)
            return
        declared = _declared_length(environ)
        if declared is None or declared == 0:
            return
        if declared > limit:
            return  # refused unread (413 when a view reads it)
        data = _read_at_most(stream, declared)
        # CONTENT_LENGTH stays as declared: a body that ended early still reads as
        # cut short (Werkzeug's ClientDisconnected), never as a shorter whole body.
        environ["wsgi.input"] = io.BytesIO(data)
