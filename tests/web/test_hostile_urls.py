"""A NUL byte (or other junk) in any URL part gets a 4xx, never a database error.

PostgreSQL refuses NUL in text outright, so every lookup by a name from the URL
must check the name's shape before the query: /status/%00 once answered 500.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

JUNK = ["a%00b", "x" * 300, "..%2F..%2Fetc"]
PATHS = [
    "GET /api/v1/passes?q={}",
    "GET /api/v1/passes?type={}",
    "GET /api/v1/passes?state={}",
    "GET /api/v1/passes/{}",
    "POST /api/v1/passes/{}/suspend",
    "POST /api/v1/passes/{}/reissue",
    "GET /status/{}",
    "GET /p/{}",
    "GET /p/{}/card.pdf",
    "GET /p/{}/pass.pkpass",
    "GET /passes/{}/logo.png",
    "GET /console/passes/{}",
    "GET /apple/v1/passes/pass.de.example.wallet.dev/{}",
    "GET /apple/v1/devices/{}/registrations/pass.de.example.wallet.dev",
]


@pytest.mark.parametrize("junk", JUNK)
@pytest.mark.parametrize("route", PATHS)
def test_junk_in_urls_gets_a_4xx_never_a_500(
    client: FlaskClient, make_token: Callable[[str], str], route: str, junk: str
) -> None:
    method, path = route.split(" ", 1)
    headers = {"Authorization": f"Bearer {make_token('admin')}"}
    response = client.open(path.format(junk), method=method, headers=headers, json={})
    assert response.status_code < 500, (route, junk, response.status_code)


CONSOLE_PATHS = [
    "/console/?q={}",
    "/console/?type={}",
    "/console/?state={}",
    "/console/issue/{}",
    "/console/passes/{}",
    "/console/verify?token={}",
]


@pytest.mark.parametrize("junk", JUNK[:1])
@pytest.mark.parametrize("path", CONSOLE_PATHS)
def test_junk_in_console_urls_gets_a_4xx_never_a_500(
    client: FlaskClient, make_user: Callable[..., str], path: str, junk: str
) -> None:
    from tests.web.test_console import login

    login(client, make_user("anna", role="admin"), "correct horse battery")
    response = client.get(path.format(junk))
    assert response.status_code < 500, (path, junk, response.status_code)


def test_a_nul_in_the_login_name_is_a_failed_login_not_a_500(
    client: FlaskClient, make_user: Callable[..., str]
) -> None:
    from tests.web.test_console import login

    make_user("anna")
    response = login(client, "an\x00na", "correct horse battery")
    assert response.status_code == 200  # the form again, with "wrong name or password"
    assert "/console/login" in response.get_data(as_text=True)
