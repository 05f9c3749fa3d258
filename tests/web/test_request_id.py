"""Every answer carries a request id; a log line about a failure names it and the route,
never the path that may hold a claim secret (issue 12, section 3)."""

from __future__ import annotations

import re

import pytest
from flask import Flask

from wallet.web import requestid

ID = re.compile(r"[0-9a-f]{16}")


def test_every_answer_has_its_own_request_id(app: Flask) -> None:
    client = app.test_client()
    first, second = client.get("/healthz"), client.get("/no/such/page")
    ids = [first.headers[requestid.HEADER], second.headers[requestid.HEADER]]
    assert all(ID.fullmatch(i) for i in ids) and ids[0] != ids[1]


def test_the_proxys_request_id_is_kept_so_one_id_follows_the_request(app: Flask) -> None:
    answer = app.test_client().get("/healthz", headers={requestid.HEADER: "haproxy-7f3a9c21"})
    assert answer.headers[requestid.HEADER] == "haproxy-7f3a9c21"


@pytest.mark.parametrize("forged", ["x", "a" * 65, "evil\u2028line-injection", "id with spaces"])
def test_a_malformed_request_id_is_replaced_not_echoed_into_logs(app: Flask, forged: str) -> None:
    answer = app.test_client().get("/healthz", headers={requestid.HEADER: forged})
    assert ID.fullmatch(answer.headers[requestid.HEADER])


def test_a_failure_is_logged_with_route_and_request_id_never_the_claim_secret(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "Sup3rS3cretClaimLinkValue0123456789"

    @app.get("/p/<claim>/boom")
    def boom(claim: str) -> str:
        raise RuntimeError("boom")

    answer = app.test_client().get(f"/p/{secret}/boom")
    assert answer.status_code == 500
    assert f"GET /p/<claim>/boom (request {answer.headers[requestid.HEADER]})" in caplog.text
    assert secret not in caplog.text
