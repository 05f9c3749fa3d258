"""HTTP at the edge, against the real server: gunicorn as the service runs it.

Flask's test client neither frames bodies nor keeps connections alive, so these
attacks are sent as raw bytes on a socket to gunicorn started with the
service's own configuration (as tests/cli/test_serve_e2e.py starts it).
"""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import EnvironBuilder, run_wsgi_app

from tests.cli.test_serve_e2e import LiveService, dev_server_env, setup_and_serve, stop

LIBRARY = {"type": "library", "holder": {"card_number": "100200300400", "name": "Erika Mustermann"}}
API_LIMIT = 64 * 1024  # wallet.web.api.MAX_BODY_BYTES
APP_LIMIT = 256 * 1024  # the app's MAX_CONTENT_LENGTH


@dataclass
class Server:
    service: LiveService
    port: int
    token: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """gunicorn with wallet.web.gunicorn_conf, one worker (so keep-alive is deterministic)."""
    tmp = tmp_path_factory.mktemp("live")
    env = dev_server_env(tmp, workers=1)
    port = int(env["WALLET_BIND"].rsplit(":", 1)[1])
    service, token = setup_and_serve(env, tmp)
    try:
        yield Server(service=service, port=port, token=token)
    finally:
        stop(service.process)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def read_answer(sock: socket.socket) -> Answer:
    """One HTTP/1.1 response with a Content-Length, read off the socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        part = sock.recv(65536)
        if not part:
            raise ConnectionError(f"the connection ended before a whole response: {data!r}")
        data += part
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        part = sock.recv(65536)
        if not part:
            break
        rest += part
    return Answer(status, headers, rest[:length])


def connection_ends(sock: socket.socket) -> bool:
    """True when the server closed the connection (after any bytes still in flight)."""
    sock.settimeout(5)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def chunked(body: bytes, size: int = 4096) -> bytes:
    framed = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size])
        for i in range(0, len(body), size)
    )
    return framed + b"0\r\n\r\n"


def post_head(server: Server, path: str, *, framing: str, token: str | None = None) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token or server.token}\r\n"
        f"Content-Type: application/json\r\n{framing}\r\n\r\n"
    ).encode("latin-1")


def get(sock: socket.socket, path: str, *, token: str = "") -> Answer:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n".encode("latin-1"))
    return read_answer(sock)


def passes_issued(server: Server) -> int:
    with connect(server) as sock:
        answer = get(sock, "/api/v1/passes", token=server.token)
    assert answer.status == 200, answer.body
    total: int = answer.json()["total"]
    return total


def padded_issue_request(size: int) -> bytes:
    """A valid issue request, then spaces: any prefix of 64 KiB or more is valid JSON too."""
    body = json.dumps(LIBRARY).encode("utf-8")
    return body + b" " * (size - len(body))


# -- bodies -----------------------------------------------------------------------


def test_chunked_body_over_the_limit_is_refused_not_truncated(server: Server) -> None:
    before = passes_issued(server)
    body = padded_issue_request(API_LIMIT + 6 * 1024)
    with connect(server) as sock:
        sock.sendall(post_head(server, "/api/v1/passes", framing="Transfer-Encoding: chunked"))
        sock.sendall(chunked(body))
        answer = read_answer(sock)
        assert answer.status == 413, answer.body
        assert answer.json()["error"]["code"] == "payload_too_large"
        assert answer.headers["connection"] == "close"
        assert connection_ends(sock)
    assert passes_issued(server) == before


def test_chunked_and_counted_bodies_over_the_limit_get_the_same_answer(server: Server) -> None:
    body = padded_issue_request(API_LIMIT + 1)
    answers = []
    for framing, sent in (
        ("Transfer-Encoding: chunked", chunked(body)),
        (f"Content-Length: {len(body)}", body),
    ):
        with connect(server) as sock:
            sock.sendall(post_head(server, "/api/v1/passes", framing=framing) + sent)
            answers.append(read_answer(sock))
    assert [a.status for a in answers] == [413, 413]
    assert answers[0].json() == answers[1].json()


def test_chunked_body_within_the_limit_is_served_whole(server: Server) -> None:
    before = passes_issued(server)
    body = padded_issue_request(API_LIMIT)
    with connect(server) as sock:
        sock.sendall(post_head(server, "/api/v1/passes", framing="Transfer-Encoding: chunked"))
        sock.sendall(chunked(body, size=1000))
        answer = read_answer(sock)
    assert answer.status == 201, answer.body
    assert answer.json()["holder"] == LIBRARY["holder"]
    assert passes_issued(server) == before + 1


def test_chunked_body_far_over_every_limit_is_refused_and_the_connection_closed(
    server: Server,
) -> None:
    body = padded_issue_request(APP_LIMIT + 100 * 1024)
    with connect(server) as sock:
        sock.sendall(post_head(server, "/api/v1/passes", framing="Transfer-Encoding: chunked"))
        sock.sendall(chunked(body))
        answer = read_answer(sock)
        assert answer.status == 413
        assert answer.json()["error"]["code"] == "payload_too_large"
        assert answer.headers["connection"] == "close"
        assert connection_ends(sock)


def test_refused_body_says_connection_close_instead_of_dropping_the_socket(
    server: Server,
) -> None:
    body = padded_issue_request(APP_LIMIT + 100 * 1024)
    with connect(server) as sock:
        head = post_head(server, "/api/v1/passes", framing=f"Content-Length: {len(body)}")
        sock.sendall(head + body)
        answer = read_answer(sock)
        assert answer.status == 413
        assert answer.json()["error"]["code"] == "payload_too_large"
        assert answer.headers["connection"] == "close"
        assert connection_ends(sock)


def test_body_refused_before_it_was_read_is_answered_whole_and_the_connection_closed(
    server: Server,
) -> None:
    """One request per connection (gunicorn_conf): the answer says so, and the unread
    body is never taken for a next request."""
    body = padded_issue_request(API_LIMIT + 30 * 1024)  # more than gunicorn itself drains
    with connect(server) as sock:
        head = post_head(
            server, "/api/v1/passes", framing=f"Content-Length: {len(body)}", token="wpt_wrong"
        )
        sock.sendall(head + body)
        answer = read_answer(sock)
        assert answer.status == 401
        assert answer.json()["error"]["code"] == "unauthorized"
        assert answer.headers["connection"] == "close"
        assert connection_ends(sock)


# -- errors gunicorn answers itself --------------------------------------------------


def assert_json_error(answer: Answer, status: int, code: str) -> None:
    assert answer.status == status, answer.body
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    assert b"<html" not in answer.body


def test_uri_too_long_is_answered_in_the_json_error_shape(server: Server) -> None:
    with connect(server) as sock:
        answer = get(sock, "/api/v1/passes?q=" + "a" * 9000)
    assert_json_error(answer, 414, "uri_too_long")
    assert answer.headers["connection"] == "close"


def test_malformed_request_line_is_answered_in_the_json_error_shape(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /api/v1/passes HTTP/1.1 trailing junk\r\nHost: x\r\n\r\n")
        answer = read_answer(sock)
    assert_json_error(answer, 400, "bad_request")


def test_oversized_header_is_answered_in_the_json_error_shape(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(
            b"GET /api/v1/passes HTTP/1.1\r\nHost: x\r\nX-Junk: " + b"a" * 9000 + b"\r\n\r\n"
        )
        answer = read_answer(sock)
    assert answer.status in (400, 431), answer.body
    assert_json_error(answer, answer.status, answer.json()["error"]["code"])
    assert answer.json()["error"]["code"] in ("bad_request", "request_header_fields_too_large")


# -- the same rules without gunicorn (any WSGI server) -----------------------------------


def call_wsgi(app: Flask, environ: dict[str, Any]) -> tuple[int, Any]:
    """The app called as a WSGI server calls it: the environ exactly as given."""
    body, status, _ = run_wsgi_app(app, environ, buffered=True)
    return int(status.split(" ")[0]), json.loads(b"".join(body))


def api_post(token: str, stream: bytes, **headers: str) -> dict[str, Any]:
    return EnvironBuilder(
        path="/api/v1/passes",
        method="POST",
        input_stream=io.BytesIO(stream),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}", **headers},
    ).get_environ()


def test_counted_body_cut_short_is_never_taken_for_a_whole_one(
    app: Flask, client: FlaskClient, make_token: Callable[[str], str]
) -> None:
    """A client that stops after a valid JSON prefix gets no pass (buffering keeps the length)."""
    token = make_token("issuer")
    body = padded_issue_request(2048)
    environ = api_post(token, body[:1024])  # the whole JSON, then the connection ends
    environ["CONTENT_LENGTH"] = str(len(body))
    status, answer = call_wsgi(app, environ)
    assert status == 400, answer
    listed = client.get("/api/v1/passes", headers={"Authorization": f"Bearer {token}"})
    assert listed.get_json()["total"] == 0


def test_streamed_body_is_read_whole_by_the_app_on_any_server(
    app: Flask, make_token: Callable[[str], str]
) -> None:
    """A server that ends chunked streams (wsgi.input_terminated) gets the same answers."""
    token = make_token("issuer")
    for size, expected in ((API_LIMIT + 1, 413), (APP_LIMIT + 1, 413), (API_LIMIT, 201)):
        environ = api_post(token, padded_issue_request(size), **{"Transfer-Encoding": "chunked"})
        del environ["CONTENT_LENGTH"]
        environ["wsgi.input_terminated"] = True
        status, answer = call_wsgi(app, environ)
        assert status == expected, (size, answer)
        if expected == 413:
            assert answer["error"]["code"] == "payload_too_large"
