"""Structured logs (issue 12, section 3): one JSON line per request, carrying the id the
answer returns in X-Request-ID, and JSON for every other line (gunicorn's, the app's,
the outbox worker's); never a path, which may hold a claim secret."""

from __future__ import annotations

import io
import json
import logging
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.cli.test_serve_e2e import ROOT, LiveService, stop
from tests.web.test_metrics import start_service
from wallet.logs import JsonFormatter
from wallet.store.db import Database
from wallet.web import requestid

# The service runs in its own processes, on the machine's clock.
REAL_CLOCK = pytest.mark.real_clock

SECRET = "Zq3xV9kLmN2pR5sT8uW1yA4bC7dE0fGh"  # claim-secret shaped, never issued


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line, each of which must be one JSON object."""
    lines = [line for line in text.splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"a log line is not JSON: {line!r}")
    assert all(isinstance(p, dict) for p in parsed)
    return parsed


@pytest.fixture
def sqlite_db(sqlite_template: Path, tmp_path: Path) -> Iterator[Database]:
    path = tmp_path / "wallet.sqlite3"
    shutil.copy(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    yield database
    database.dispose()


@pytest.fixture
def service(sqlite_db: Database, tmp_path: Path) -> Iterator[tuple[LiveService, dict[str, str]]]:
    live, _, env = start_service(sqlite_db, tmp_path)
    try:
        yield live, env
    finally:
        stop(live.process)


def get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@REAL_CLOCK
def test_one_json_line_per_request_with_the_id_of_its_answer(
    service: tuple[LiveService, dict[str, str]],
) -> None:
    live, _ = service
    status, headers, body = get(f"{live.url}/healthz", **{requestid.HEADER: "haproxy-0123abcd"})
    assert status == 200 and headers[requestid.HEADER] == "haproxy-0123abcd"
    status, missing, _ = get(f"{live.url}/p/{SECRET}")
    assert status == 404
    port = int(live.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:  # gunicorn's own 414
        sock.sendall(b"GET /p/" + SECRET.encode() * 300 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 414")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:  # quoted by gunicorn
        sock.sendall(b"GET /p/" + SECRET.encode() + b" junk HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 400")
    stop(live.process)

    requests = json_lines(live.stdout.read_text())
    others = json_lines(live.stderr.read_text())
    by_id = {line["request_id"]: line for line in requests if line["request_id"]}
    health = by_id["haproxy-0123abcd"]
    assert health["method"] == "GET" and health["route"] == "/healthz" and health["status"] == 200
    assert health["bytes"] == len(body) and 0 <= health["duration_ms"] < 10_000
    assert health["time"].endswith("Z") and health["level"] == "info"
    claim = by_id[missing[requestid.HEADER]]
    assert claim["route"] == "/p/<secret>" and claim["status"] == 404
    too_long = [line for line in requests if line["status"] == 414]
    assert len(too_long) == 1 and too_long[0]["route"] == "(unread request)"
    assert any(line["status"] == 400 and line["request_id"] is None for line in requests)
    assert any(line["logger"] == "gunicorn.error" for line in others)
    everything = live.stdout.read_text() + live.stderr.read_text()
    assert SECRET not in everything


@REAL_CLOCK
def test_the_outbox_worker_logs_json_lines(
    service: tuple[LiveService, dict[str, str]],
) -> None:
    _, env = service
    done = subprocess.run(
        [Path(sys.executable).parent / "wallet", "worker", "--once"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (Path(env["WALLET_INSTANCE_DIR"]).parent / "worker.err").write_text(done.stderr)  # scanned
    lines = json_lines(done.stderr)
    assert any("Google Wallet updates are off" in line["message"] for line in lines)
    assert all(line["level"] in ("info", "warning") for line in lines)


def test_an_app_log_line_carries_the_request_id(app: Flask) -> None:
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("wallet.web.apple")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        answer = app.test_client().post("/apple/v1/log", json={"logs": ["update failed"]})
        logging.getLogger("wallet.web.apple").info("between requests")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert answer.status_code == 200
    during, after = (json.loads(line) for line in written.getvalue().splitlines())
    assert during["request_id"] == answer.headers[requestid.HEADER]
    assert during["message"] == "Apple Wallet devices logged 1 messages"
    assert during["logger"] == "wallet.web.apple" and during["level"] == "info"
    assert "request_id" not in after


def test_an_exception_is_one_line_with_its_traceback_inside() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        record = logging.LogRecord("wallet.x", logging.ERROR, __file__, 1, "failed: %s", ("a",),
                                   sys.exc_info())  # fmt: skip
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "failed: a" and "ValueError: bad" in parsed["exception"]


def test_an_unexpected_error_on_a_claim_page_logs_the_route_not_the_secret(
    app: Flask, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from wallet.services import passes

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(passes, "pass_by_claim_secret", broken)
    answer = app.test_client().get(f"/p/{SECRET}")
    assert answer.status_code == 500
    assert "unexpected error on GET /p/<secret>" in caplog.text
    assert SECRET not in caplog.text
