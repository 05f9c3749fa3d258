"""A failed console sign-in is logged with the client's network, not its address."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from tests.web.test_console import login

pytestmark = pytest.mark.usefixtures("quick_password_hashes")


@pytest.mark.parametrize(
    ("address", "network"),
    [("203.0.113.57", "203.0.113.0/24"), ("2001:db8:1:2::99", "2001:db8:1::/48")],
)
def test_a_failed_sign_in_logs_the_network_not_the_personal_address(
    client: FlaskClient,
    make_user: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
    address: str,
    network: str,
) -> None:
    make_user("anna", "issuer")
    client.environ_base["REMOTE_ADDR"] = address
    with caplog.at_level(logging.INFO, logger="wallet"):
        answer = login(client, "anna", "not the password")
    assert answer.status_code == 200
    lines = [r.getMessage() for r in caplog.records if "failed console sign-in" in r.message]
    assert lines == [f"failed console sign-in from {network}"]
    assert address not in caplog.text and "anna" not in caplog.text
