"""gunicorn settings for the wallet service, from the ``WALLET_*`` environment.

``scripts/serve`` runs ``gunicorn -c python:wallet.web.gunicorn_conf wallet.web.wsgi:app``.
gunicorn reads this module once at start, so unlike the rest of the package it
reads the environment at import time.

- ``WALLET_BIND`` (default ``127.0.0.1:8000``; several addresses comma-separated),
  ``WALLET_WORKERS`` (default 2), ``WALLET_FORWARDED_ALLOW_IPS`` (the TLS proxy's
  address, default ``127.0.0.1``).
- Sync workers, one request per connection, all workers taking connections
  from one listening socket only when free: one queue, served by whichever
  worker frees first (see ``worker_class`` below). Meant to sit behind HAProxy,
  which keeps clients' connections alive and buffers their requests.
- No preloading: every worker builds its own app and database engine after the
  fork, so no connection is ever shared between processes.
- Logs are JSON lines (:class:`RedactingLogger`): one per request on stdout (time,
  request id as in ``X-Request-ID``, method, route template, status, duration,
  bytes) and every other line on stderr (gunicorn's own and the app's, with the
  request id while one is handled). A request line names the route
  (``/p/<secret>``), never the path: claim links carry their secret in the path,
  and secrets never go into logs; gunicorn's own messages, which may quote a
  request line, have secret-shaped text cut out.
- ``WALLET_METRICS_BIND`` (e.g. ``127.0.0.1:9100``, unset: off): the master serves
  Prometheus metrics there, summed over its workers and the instance's ``wallet
  worker`` processes (multiprocess mode, files in ``<instance>/metrics``, those of
  dead processes removed at start). Never on the public listener.
- Errors gunicorn answers itself, before the app runs (414 URI too long, 431,
  400 for a malformed request line or header, 501), have the service's one
  JSON error shape instead of gunicorn's HTML page (:class:`WalletWorker`).
- Every answer says ``Connection: close`` and the connection is closed, so a
  body the app left unread (see ``wallet.web.bodies``) is never taken for a
  next request.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import socket
import struct
import sys
import termios
import time
from typing import Any

from gunicorn import util as gunicorn_util  # type: ignore[import-untyped]
from gunicorn.glogging import Logger  # type: ignore[import-untyped]
from gunicorn.http.body import (  # type: ignore[import-untyped]
    ChunkedReader,
    EOFReader,
    LengthReader,
)
from gunicorn.workers.sync import SyncWorker  # type: ignore[import-untyped]

from wallet import logs
from wallet.config import Settings
from wallet.errors import ConfigError
from wallet.services import metrics
from wallet.web import requestid

MAX_WORKERS = 64
# Serials (16 characters) stay readable; claim secrets and tokens (24 and more) do not.
_SECRET_LIKE = re.compile(r"[A-Za-z0-9_-]{24,}")


def _redact(text: str) -> str:
    return _SECRET_LIKE.sub(lambda m: m.group(0)[:4] + "***", text)


class RedactingLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger, writing JSON lines: one per request, and every other message.

    The request line is gunicorn's access log (not the app's): gunicorn knows the
    bytes really sent and the time until then, and logs the answers it gives
    itself before the app runs (414, 431, ...). The app hands it the request id
    and route template through the WSGI environ (``wallet.web.requestid``), so
    the line never needs the path, which may hold a claim secret.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(logs.JsonFormatter(redact=_redact))
        for handler in self.access_log.handlers:
            handler.setFormatter(logging.Formatter("%(message)s"))
        # The app's loggers (wallet.*) propagate to the root: JSON on stderr too.
        logs.configure(level=self.loglevel)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        status = resp.status
        sent = getattr(resp, "sent", None)
        self.request_line(
            method=str(environ.get("REQUEST_METHOD", "-")),
            route=str(environ.get(requestid.ENVIRON_ROUTE, "(no route)")),
            status=int(str(status).split(None, 1)[0]) if status else 0,
            request_id=environ.get(requestid.ENVIRON_ID),
            seconds=request_time.total_seconds(),
            sent=sent if isinstance(sent, int) else 0,
        )

    def request_line(
        self, *, method: str, route: str, status: int, request_id: str | None, seconds: float,
        sent: int,
    ) -> None:  # fmt: skip
        """The one JSON line about an answered request."""
        line = {
            "time": logs.utc_timestamp(time.time()),
            "level": "info",
            "logger": "wallet.request",
            "message": f"{method} {route} {status}",
            "request_id": request_id,
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 1),
            "bytes": sent,
        }
        try:
            self.access_log.info(logs.json_line(line))
        except Exception:  # as gunicorn: a log line that fails is no failed request
            self.error("access log line failed")


# gunicorn's status -> the error code slug the app would use for it.
_ERROR_CODES = {
    400: "bad_request",
    403: "forbidden",
    414: "uri_too_long",
    417: "expectation_failed",
    431: "request_header_fields_too_large",
    500: "internal_error",
    501: "not_implemented",
}
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3}) ([^\r\n]*)\r\n")


class _CapturedSocket:
    """Stands in for the client socket while gunicorn writes its HTML error page."""

    def __init__(self) -> None:
        self.data = b""

    def gettimeout(self) -> float:
        return 0.0

    def setblocking(self, flag: bool) -> None:
        pass

    def sendall(self, data: bytes) -> None:
        self.data += data


def json_error_response(status: int, reason: str, message: str) -> bytes:
    """A whole HTTP response with the service's error shape; the connection then closes."""
    code = _ERROR_CODES.get(status, "bad_request" if status < 500 else "internal_error")
    body = json.dumps({"error": {"code": code, "message": message}}).encode("utf-8") + b"\n"
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        "Cache-Control: no-store\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def _body_read_to_the_end(req: Any) -> bool:
    """Whether the app read the request's body to its end (none counts as read)."""
    body = req.body
    reader = body.reader
    if isinstance(reader, LengthReader):
        finished = reader.length == 0
    elif isinstance(reader, ChunkedReader):
        finished = reader.parser is None
    else:
        # Neither Content-Length nor Transfer-Encoding: a request has no body then
        # (RFC 9112, 6.3), whatever gunicorn's reader would read until the end.
        finished = isinstance(reader, EOFReader)
    return finished and not body.buf.getvalue() and not req.unreader.buf.getvalue()


def _nothing_more_coming(req: Any, client: socket.socket) -> bool:
    """Whether the client has sent nothing beyond the request the app read whole.

    Closing a socket with unread bytes in it sends RST, and a client's stack may
    then throw away the answer it has not read yet; that is why gunicorn lingers,
    reading, until the client closes. Where nothing is unread and nothing more is
    due, close sends a plain FIN and the wait is for nothing (nginx's
    ``lingering_close auto`` decides the same way).
    """
    if req is None or not _body_read_to_the_end(req):
        return False
    try:
        waiting = client.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return True
    except (OSError, ValueError):  # ValueError: a TLS socket takes no recv flags
        return False
    return not waiting  # b"": the client has closed its side; bytes: a pipelined request


_INT_BUFFER = bytes(struct.calcsize("i"))


def _answer_acknowledged(client: socket.socket) -> bool:
    """Whether the client has acknowledged every byte of the answer.

    Nothing unread now does not mean nothing later: a client that sends again after
    the close gets a reset, and the reset throws away what is still in the server's
    send queue (a slow reader's window holds little of a 1 MB answer). With the
    queue empty the client holds the whole answer, and a reset costs it nothing.
    SIOCOUTQ (TIOCOUTQ on a TCP socket, Linux) counts bytes not yet acknowledged;
    where it is unknown the worker lingers, as gunicorn does.
    """
    try:
        queued = fcntl.ioctl(client.fileno(), termios.TIOCOUTQ, _INT_BUFFER)
    except (OSError, ValueError, AttributeError):
        return False
    return int.from_bytes(queued, sys.byteorder, signed=True) == 0


class WalletWorker(SyncWorker):  # type: ignore[misc]
    """gunicorn's sync worker, with its own error answers in the JSON error shape,
    and free for the next request as soon as an answer is sent.

    Before the request line is read the path is unknown, so every such answer
    is JSON (the shape of the API; browsers show it readably). gunicorn still
    decides the status, logs the error and writes the access log line: its
    HTML page is captured and replaced, nothing else changes.
    """

    def handle_request(self, listener: Any, req: Any, client: Any, addr: Any) -> None:
        super().handle_request(listener, req, client, addr)
        # gunicorn (27) then always lingers until the client closes, up to 2 s,
        # and the worker serves no one meanwhile: under load every request
        # waited a client's round trip longer in the queue (scripts/bench_service,
        # PostgreSQL, 16 clients: p99 37 -> 33-35 ms), and a client that just keeps
        # its connection open held a worker for 2 s. Closed here, gunicorn's
        # lingering close finds the socket closed and returns at once.
        if (
            not self.cfg.is_ssl
            and _nothing_more_coming(req, client)
            and _answer_acknowledged(client)
        ):
            client.close()

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        captured = _CapturedSocket()
        super().handle_error(req, captured, addr, exc)
        match = _STATUS_LINE.match(captured.data)
        if match is None:
            answer = captured.data  # not a response this knows: pass gunicorn's on unchanged
        else:
            status, reason = int(match[1]), match[2].decode("latin-1")
            if status >= 500:
                message = "something went wrong on our side; it was logged"
            else:
                message = f"{reason}: {exc}"[:300] if str(exc) else reason
            answer = json_error_response(status, reason, message)
            if req is None and isinstance(self.log, RedactingLogger):
                # gunicorn writes no request line when it could not read one: this does,
                # so every answer has its line (the request line itself never goes in).
                self.log.request_line(method="-", route="(unread request)", status=status,
                                      request_id=None, seconds=0.0, sent=len(answer))  # fmt: skip
        if not answer:
            return
        try:
            gunicorn_util.write_nonblock(client, answer)
        except Exception:  # as gunicorn: a client that is gone is no error of ours
            self.log.debug("Failed to send error message.")


def on_starting(server: Any) -> None:
    """gunicorn hook (master, before any worker): the metric files' folder, if wanted."""
    if _settings.metrics_bind:
        metrics.use_directory(_settings.metrics_dir)
        metrics.remove_dead_files(_settings.metrics_dir)


def when_ready(server: Any) -> None:
    """gunicorn hook (master, listening): Prometheus's own listener, if wanted."""
    if not _settings.metrics_bind:
        return
    from wallet.web import metrics as web_metrics

    try:
        web_metrics.serve(_settings)
    except OSError as exc:
        raise SystemExit(
            f"error: cannot serve metrics on WALLET_METRICS_BIND={_settings.metrics_bind}: "
            f"{exc.strerror or exc}"
        ) from exc
    server.log.info("Prometheus metrics on http://%s/metrics", _settings.metrics_bind)


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn hook (master): a worker ended; prometheus-client tidies its live files."""
    metrics.process_ended(worker.pid)


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
# gunicorn's sync worker: one request per connection, and a worker takes the
# next connection from the one shared listening socket only when it is free,
# so every request waits in one queue for whichever worker frees first. This
# is the pre-fork model gunicorn describes for a server behind a buffering
# proxy: HAProxy keeps the clients' connections alive and hands over whole
# requests (deploy/haproxy: option http-buffer-request), so no slow client
# holds a worker. Kept-alive connections had to be tied to a worker: on one
# shared socket a gthread worker hoarded them while the other idled, and with
# a socket per worker (reuse_port) the kernel's hash split them unevenly, so
# a request waited behind a busy worker while the other was free; gthread's
# hand-over between its threads also cost about 1.5 ms a request. Measured by
# scripts/bench, 16 clients on SQLite: 527 -> 754 issuances/s, p99 79 -> 54 ms.
worker_class = WalletWorker
preload_app = False
timeout = 30
graceful_timeout = 20
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
