"""HAProxy hands a server no more requests at once than it has workers.

A gunicorn sync worker answers one request at a time. Two stand-in servers with
one "worker" each (they take one connection at a time, the rest wait in the
kernel's accept queue, as gunicorn's do) sit behind the shipped configuration
with ``maxconn`` set to their worker count. While one is busy with a slow
request, quick requests must go to the other, or wait in HAProxy's queue for
whichever frees first, never behind the slow one.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import socket
import socketserver
import ssl
import threading
import time
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
SLOW_SECONDS = 3.0


class _OneAtATime(socketserver.BaseRequestHandler):
    """Answers /slow after SLOW_SECONDS, anything else at once; one connection at a time."""

    def handle(self) -> None:
        conn: socket.socket = self.request
        conn.settimeout(10)
        data = haproxy.read_head(conn)
        if not data:
            return
        path = data.split(b" ", 2)[1].decode("latin-1")
        server: _Server = self.server  # type: ignore[assignment]
        if path == "/slow":
            server.slow.set()
            time.sleep(SLOW_SECONDS)
        elif path != "/readyz":
            server.quick += 1
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")


class _Server(socketserver.TCPServer):  # not threading: one request at a time
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _OneAtATime)
        self.slow = threading.Event()
        self.quick = 0


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path, list[_Server]]]:
    tmp_path = tmp_path_factory.mktemp("proxy-queue")
    servers = [_Server(), _Server()]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    addresses = [f"127.0.0.1:{s.server_address[1]}" for s in servers]
    try:
        # maxconn 1: each stand-in has one worker
        with haproxy.serving(tmp_path, addresses, maxconn=1) as (port, ca_file):
            yield port, ca_file, servers
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def _get(port: int, ca_file: Path, path: str) -> float:
    """Seconds until the answer to GET ``path`` through HAProxy."""
    context = ssl.create_default_context(cafile=str(ca_file))
    started = time.monotonic()
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        assert response.status == 200
    finally:
        conn.close()
    return time.monotonic() - started


def test_no_request_waits_behind_a_busy_server_while_another_is_free(
    proxy: tuple[int, Path, list[_Server]],
) -> None:
    """With more requests allowed per server than it has workers, HAProxy (leastconn)
    sent about every other quick request to the server busy with the slow one,
    where it waited seconds in the accept queue while the other server idled."""
    port, ca_file, servers = proxy
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        slow = pool.submit(_get, port, ca_file, "/slow")
        deadline = time.monotonic() + 5
        while not any(s.slow.is_set() for s in servers):
            assert time.monotonic() < deadline, "the slow request reached no server"
            time.sleep(0.01)
        quick = [pool.submit(_get, port, ca_file, f"/quick/{i}") for i in range(12)]
        took = [q.result(timeout=30) for q in quick]
        assert slow.result(timeout=30) >= SLOW_SECONDS
    busy = next(s for s in servers if s.slow.is_set())
    assert max(took) < SLOW_SECONDS / 2, took
    assert busy.quick == 0
