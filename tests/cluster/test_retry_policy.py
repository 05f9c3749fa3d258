"""What the shipped HAProxy configuration repeats when a server dies mid-request.

Two servers that pass the health check (GET /readyz) but close every other
connection without an answer, as a server killed while handling a request does.
HAProxy must repeat on another server what is safe to repeat, and only that: a
GET and a POST with an Idempotency-Key (the API answers a key once), never a
POST without one (a revocation could run twice).
"""

from __future__ import annotations

import http.client
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import haproxy

pytestmark = [
    pytest.mark.real_clock,  # HAProxy and OpenSSL's certificate check run on the machine's clock
    pytest.mark.skipif(
        not haproxy.available(), reason="HAProxy is not installed (scripts/test installs it)"
    ),
]


class _Dying(socketserver.BaseRequestHandler):
    """Healthy for HAProxy's check; every other request is read whole, then dropped."""

    def handle(self) -> None:
        conn: socket.socket = self.request
        conn.settimeout(5)
        data = haproxy.read_head(conn)
        if not data:
            return
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])
        }
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            body += conn.recv(65536)
        method, path, _ = lines[0].split(" ", 2)
        if path == "/readyz":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            return
        server: _Server = self.server  # type: ignore[assignment]
        with server.lock:
            server.seen.append((method, path, "idempotency-key" in headers))
        # No answer: the connection just ends, as when the process is killed.


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Dying)
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str, bool]] = []


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path, list[_Server]]]:
    tmp_path = tmp_path_factory.mktemp("retry-policy")
    servers = [_Server(), _Server()]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    addresses = [f"127.0.0.1:{s.server_address[1]}" for s in servers]
    try:
        with haproxy.serving(tmp_path, addresses) as (port, ca_file):
            yield port, ca_file, servers
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def _send(port: int, ca_file: Path, method: str, path: str, headers: dict[str, str]) -> str:
    context = ssl.create_default_context(cafile=str(ca_file))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    try:
        body = b'{"reason": "lost"}' if method == "POST" else None
        conn.request(
            method, path, body=body, headers={"Content-Type": "application/json", **headers}
        )
        return str(conn.getresponse().status)
    except (OSError, http.client.HTTPException) as exc:
        return type(exc).__name__
    finally:
        conn.close()


def _attempts(servers: list[_Server], path: str) -> int:
    return sum(1 for s in servers for _, seen_path, _ in s.seen if seen_path == path)


def test_a_post_without_idempotency_key_is_never_repeated_on_another_server(
    proxy: tuple[int, Path, list[_Server]],
) -> None:
    port, ca_file, servers = proxy
    answer = _send(port, ca_file, "POST", "/api/v1/passes/abc/revoke", {})
    assert answer in ("502", "RemoteDisconnected"), answer  # the client decides what to do
    assert _attempts(servers, "/api/v1/passes/abc/revoke") == 1


def test_a_post_with_idempotency_key_and_a_get_are_repeated_elsewhere(
    proxy: tuple[int, Path, list[_Server]],
) -> None:
    port, ca_file, servers = proxy
    _send(port, ca_file, "POST", "/api/v1/passes", {"Idempotency-Key": "k-1"})
    _send(port, ca_file, "GET", "/verifier/bundle", {})
    for path in ("/api/v1/passes", "/verifier/bundle"):
        attempts = [_attempts([s], path) for s in servers]
        assert sum(attempts) >= 2 and all(attempts), (path, attempts)  # on both servers
