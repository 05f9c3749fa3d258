"""Requests wait in one queue for whichever gunicorn worker is free.

Against the real server with the service's own gunicorn configuration and two
workers: a worker that is busy takes no new connection, so nothing waits
behind it while the other worker could answer.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_serve_e2e import ROOT, LiveService, dev_server_env, setup_and_serve, stop


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


def _answered_but_left_open(service: LiveService) -> socket.socket:
    """A connection whose request was answered and read, and that the client keeps open."""
    host, port = service.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(b"GET /verifier/root-key.pem HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    answer = b""
    while b"-----END PUBLIC KEY-----" not in answer:
        part = sock.recv(65536)
        assert part, answer
        answer += part
    assert answer.startswith(b"HTTP/1.1 200")
    return sock


def test_clients_that_keep_answered_connections_open_hold_no_worker(
    two_workers: LiveService,
) -> None:
    """gunicorn lingers after each answer until the client closes (up to 2 s), so a
    client that simply leaves its connection open, as many do, kept a worker from
    everyone else. With nothing left unread the worker closes at once and takes the
    next request; the client sees a clean end of the connection, not a reset."""
    _quick_request(two_workers, timeout=20)  # both workers up
    for _ in range(3):
        held = [_answered_but_left_open(two_workers) for _ in range(2)]
        try:
            assert _quick_request(two_workers, timeout=5) < 1.0
            for sock in held:
                sock.settimeout(5)
                assert sock.recv(1) == b""  # FIN, not RST (that would raise)
        finally:
            for sock in held:
                sock.close()


def read_large_answer_slowly(
    service: LiveService, *, before_second: float, after_second: float
) -> tuple[bytes, bytes]:
    """Head and body of a 1 MB answer read through a slow phone's small window, with
    a second request sent on the same connection `before_second` seconds after the
    answer began; the rest is read `after_second` seconds later."""
    host, port = service.url.removeprefix("http://").split(":")
    path = "/scan/vendor/zxing-wasm/reader/zxing_reader.wasm"  # about 1 MB
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a slow phone's window
        sock.settimeout(10)
        sock.connect((host, int(port)))
        sock.sendall(request)
        answer = sock.recv(4096)
        time.sleep(before_second)
        sock.sendall(request)
        time.sleep(after_second)
        while part := sock.recv(65536):
            answer += part
    head, _, body = answer.partition(b"\r\n\r\n")
    return head, body


def test_a_request_sent_behind_a_large_answer_does_not_cut_that_answer_short(
    two_workers: LiveService,
) -> None:
    """Bytes the app did not read (here a second request, pipelined while the first
    answer is still being sent) make the worker linger as gunicorn does: closing at
    once, with them unread, sends a reset, and the reset throws away whatever of the
    answer the client's slow reading had left in the server's send buffer."""
    # Sent at once, while the server is still sending; read when it is done.
    head, body = read_large_answer_slowly(two_workers, before_second=0, after_second=0.5)
    assert head.startswith(b"HTTP/1.1 200"), head
    length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])  # type: ignore[index]
    assert len(body) == length > 900_000


def test_a_request_sent_after_the_worker_is_done_does_not_cut_the_answer_short(
    two_workers: LiveService,
) -> None:
    """The same client, slower: its second request comes after the worker has handed
    the whole answer to the kernel and found nothing unread. Most of the answer is
    still in the server's send queue (the client has acknowledged only what its
    small window took), so a close then would turn the late request into a reset
    that throws that away: the worker lingers until the client has it all."""
    # Sent when the worker has written the answer into its send queue.
    head, body = read_large_answer_slowly(two_workers, before_second=0.5, after_second=0.2)
    assert head.startswith(b"HTTP/1.1 200"), head
    length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])  # type: ignore[index]
    assert len(body) == length > 900_000


def test_gunicorn_serving_tls_itself_answers_without_errors(tmp_path: Path) -> None:
    """A small installation may let gunicorn terminate TLS (--certfile) instead of a
    proxy. A TLS socket takes no flags on recv, so the check for unread bytes cannot
    run there: the worker keeps gunicorn's lingering close, and no request ends in
    an error logged after its answer."""
    from tests.cluster.haproxy import write_certificate

    _pem, ca_file = write_certificate(tmp_path / "tls")
    tls = tmp_path / "tls"
    env = dev_server_env(
        tmp_path, workers=1,
        GUNICORN_CMD_ARGS=f"--certfile {tls / 'chain.pem'} --keyfile {tls / 'key.pem'}",
    )  # fmt: skip
    setup = subprocess.run(
        [Path(sys.executable).parent / "wallet", "setup"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert setup.returncode == 0, setup.stderr
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:wallet.web.gunicorn_conf",
             "wallet.web.wsgi:app"],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    host, port = env["WALLET_BIND"].split(":")
    context = ssl.create_default_context(cafile=str(ca_file))
    try:
        answered = 0
        deadline = time.monotonic() + 60
        while answered < 3:
            assert process.poll() is None, log.read_text()
            conn = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
            try:
                conn.request("GET", "/verifier/root-key.pem")
                response = conn.getresponse()
                assert response.status == 200 and b"PUBLIC KEY" in response.read()
                answered += 1
            except (OSError, http.client.HTTPException):
                assert time.monotonic() < deadline, log.read_text()  # still starting
                time.sleep(0.2)
            finally:
                conn.close()
    finally:
        stop(process)
    written = log.read_text()
    assert "Error handling request" not in written and "Traceback" not in written, written
