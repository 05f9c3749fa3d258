"""Requests wait in one queue for whichever gunicorn worker is free.

Against the real server with the service's own gunicorn configuration and two
workers: a worker that is busy takes no new connection, so nothing waits
behind it while the other worker could answer.
"""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_serve_e2e import LiveService, dev_server_env, setup_and_serve, stop


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    tmp: Path = tmp_path_factory.mktemp("queue")
    env = dev_server_env(tmp, workers=2)
    service, _token = setup_and_serve(env, tmp)
    try:
        yield service
    finally:
        stop(service.process)


def _quick_request(service: LiveService, *, timeout: float) -> float:
    """Seconds one GET on a new connection took; raises if it took longer than ``timeout``."""
    host, port = service.url.removeprefix("http://").split(":")
    started = time.monotonic()
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", "/verifier/root-key.pem")
        response = conn.getresponse()
        response.read()
        assert response.status == 200
        assert response.getheader("Connection") == "close"  # one request per connection
    finally:
        conn.close()
    return time.monotonic() - started


def test_a_worker_held_by_a_slow_client_is_given_no_new_connection(
    two_workers: LiveService,
) -> None:
    """A client that sends half a request (a slow phone, or on purpose) holds the
    worker that took it. With a listening socket per worker (reuse_port) the kernel
    still handed about every second new connection to that worker, where it waited
    until the slow client was done; now the free worker takes each of them."""
    host, port = two_workers.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as slow:
        slow.sendall(b"GET /verifier/root-key.pem HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        # Once the second worker has started (it may still be loading the app), it
        # answers; from then on every request must be answered without waiting.
        _quick_request(two_workers, timeout=20)
        took = [_quick_request(two_workers, timeout=5) for _ in range(12)]
        assert max(took) < 1.0, took
        slow.sendall(b"\r\n")  # the held worker answers it after all
        assert slow.recv(12) == b"HTTP/1.1 200"
