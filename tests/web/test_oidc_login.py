"""Staff sign-in through the city's OpenID Connect provider, against a real provider.

The provider (tests/oidc/provider.mjs, the certified `oidc-provider` package) runs
on loopback; the app is the real one on each database backend; a plain HTTP client
goes through the provider's pages. The attack tests make the provider re-sign its
ID token (with its own key) for another audience, already expired, or with another
nonce, and replay a state: each is refused, and nobody is signed in.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from tests.oidc.provider import (
    ACCOUNTS,
    PERSONAL,
    ROLES,
    Provider,
    requires_node,
    running_provider,
    through_provider,
)
from wallet.services import accounts, audit, oidc, totp
from wallet.services.context import Services
from wallet.store.db import Database
from wallet.store.models import StaffSessionRow
from wallet.web import create_app

pytestmark = requires_node

PUBLIC_URL = "https://pass.stadt-musterstadt.de"
CALLBACK = f"{PUBLIC_URL}/console/oidc/callback"


@pytest.fixture(scope="module")
def city_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    log = tmp_path_factory.mktemp("oidc") / "provider.log"
    with running_provider(
        redirect_uris=[CALLBACK],
        post_logout_redirect_uris=[f"{PUBLIC_URL}/console/login"],
        log=log,
    ) as provider:
        yield provider


@pytest.fixture
def provider(city_provider: Provider) -> Iterator[Provider]:
    """The module's provider, behaving again after each test."""
    yield city_provider
    city_provider.control(mode="normal", groups={k: v["groups"] for k, v in ACCOUNTS.items()})


@pytest.fixture
def app(db: Database, services: Services, provider: Provider) -> Flask:
    """The real app on each backend, signing staff in through the provider; its clock is
    the wall clock (the provider keeps the same one)."""
    settings = dataclasses.replace(
        services.settings,
        oidc_issuer=provider.issuer,
        oidc_client_id=provider.client_id,
        oidc_client_secret=provider.client_secret,
        oidc_scopes="openid groups",
        oidc_roles=ROLES,
    )
    return create_app(
        settings,
        services=services,
        db=db,
        clock=lambda: datetime.now(UTC),
        config={"TESTING": True, "RATELIMIT_ENABLED": False},
    )


def start(client: FlaskClient) -> str:
    """Press "sign in with the city's account": the provider's authorization URL."""
    answer = client.get("/console/oidc/login")
    assert answer.status_code == 302, answer.get_data(as_text=True)
    return answer.headers["Location"]


def callback_url(client: FlaskClient, username: str, *, browser: httpx.Client | None = None) -> str:
    """Through the provider's pages (in ``browser``, else a fresh one) back to the app."""
    with httpx.Client(timeout=10) as fresh:
        return through_provider(
            start(client),
            username=username,
            password=ACCOUNTS[username]["password"],
            back_to=CALLBACK,
            browser=browser or fresh,
        )


def come_back(client: FlaskClient, url: str) -> TestResponse:
    parts = urlsplit(url)
    return client.get(f"{parts.path}?{parts.query}")


def sign_in(
    client: FlaskClient, provider: Provider, username: str, *, browser: httpx.Client | None = None
) -> TestResponse:
    return come_back(client, callback_url(client, username, browser=browser))


def signed_in_as(client: FlaskClient) -> str | None:
    """The role shown in the console's header, or None when not signed in."""
    answer = client.get("/console/verify")
    if answer.status_code != 200:
        return None
    found = re.search(r'class="signed-in__role">\(([^)]+)\)', answer.get_data(as_text=True))
    return found.group(1) if found else None


def console_sessions(db: Database) -> int:
    with db.transaction(write=False) as session:
        return len(session.scalars(select(StaffSessionRow)).all())


# -- the way in ---------------------------------------------------------------------------


def test_authorization_request_uses_pkce_s256_state_and_nonce(
    app: Flask, provider: Provider
) -> None:
    url = start(app.test_client())
    assert url.startswith(f"{provider.issuer}/auth?")
    query = parse_qs(urlsplit(url).query)
    assert query["response_type"] == ["code"]
    assert query["client_id"] == [provider.client_id]
    assert query["redirect_uri"] == [CALLBACK]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43  # base64url SHA-256
    assert len(query["state"][0]) >= 20 and len(query["nonce"][0]) >= 20
    assert "openid" in query["scope"][0].split()


@pytest.mark.parametrize("username", ["erika.mustermann", "max.desk"])
def test_city_account_signs_in_with_the_mapped_role(
    app: Flask, provider: Provider, db: Database, username: str
) -> None:
    client = app.test_client()
    client.set_cookie("lang", "de")
    answer = sign_in(client, provider, username)
    assert answer.status_code == 302, answer.get_data(as_text=True)
    assert signed_in_as(client) is not None
    with db.transaction(write=False) as session:
        users = [u for u in accounts.list_users(session) if u.username.startswith("oidc-")]
    assert [u.role.value for u in users] == [dict(ROLES)[ACCOUNTS[username]["groups"][0]]]
    assert users[0].last_login_at is not None


def test_the_login_page_offers_the_city_account_first(app: Flask) -> None:
    page = app.test_client().get("/console/login?lang=de").get_data(as_text=True)
    assert "Mit dem Konto der Stadt anmelden" in page
    assert page.index("/console/oidc/login") < page.index('name="password"')  # local second


def test_role_change_at_the_provider_takes_effect_at_next_login(
    app: Flask, provider: Provider, db: Database
) -> None:
    first = app.test_client()
    assert sign_in(first, provider, "max.desk").status_code == 302
    provider.control(groups={"max.desk": ["wallet-enforcement"]})
    second = app.test_client()
    assert sign_in(second, provider, "max.desk").status_code == 302
    with db.transaction(write=False) as session:
        (user,) = [u for u in accounts.list_users(session) if u.username.startswith("oidc-")]
        trail = audit.trail(session, f"user:{user.username}")
    assert user.role.value == "verifier"
    assert "user.role" in [e.action for e in trail]
    assert second.get("/console/").status_code == 403  # a verifier may not search passes
    assert not_signed_in(first)  # the session under the old role has ended


def not_signed_in(client: FlaskClient) -> bool:
    answer = client.get("/console/verify")
    return answer.status_code == 302 and "/console/login" in answer.headers["Location"]


def test_user_with_no_mapped_group_is_refused_with_a_clear_page(
    app: Flask, provider: Provider, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    client = app.test_client()
    client.set_cookie("lang", "de")
    with caplog.at_level(logging.INFO):
        answer = sign_in(client, provider, "otto.normalverbraucher")
    page = answer.get_data(as_text=True)
    assert answer.status_code == 403
    assert "keiner der Gruppen" in page and "IT" in page
    for group, _role in ROLES:  # neither the groups it lacks ...
        assert group not in page
    assert "sportverein-vorstand" not in page  # ... nor the ones it has
    assert not_signed_in(client)
    tag = oidc.subject_tag(provider.issuer, "otto.normalverbraucher")
    assert tag in page  # a reference IT can find in the log
    assert any("no_role" in r.getMessage() and tag in r.getMessage() for r in caplog.records)
    with db.transaction(write=False) as session:
        assert [u for u in accounts.list_users(session) if u.username.startswith("oidc-")] == []
        refusals = audit.trail(session, f"oidc:{tag}")
    assert [e.action for e in refusals] == ["user.oidc_refused"]


def test_an_account_losing_its_group_loses_its_sessions(app: Flask, provider: Provider) -> None:
    first = app.test_client()
    assert sign_in(first, provider, "max.desk").status_code == 302
    provider.control(groups={"max.desk": ["kantine"]})
    assert sign_in(app.test_client(), provider, "max.desk").status_code == 403
    assert not_signed_in(first)


def test_disabled_account_is_refused(
    app: Flask, provider: Provider, db: Database, services: Services
) -> None:
    assert sign_in(app.test_client(), provider, "max.desk").status_code == 302
    with db.transaction(write=True) as session:
        (user,) = [u for u in accounts.list_users(session) if u.username.startswith("oidc-")]
        accounts.disable_user(session, username=user.username, actor="test",
                              audit_key=services.audit_key, now=datetime.now(UTC))  # fmt: skip
    answer = sign_in(app.test_client(), provider, "max.desk")
    assert answer.status_code == 403


def test_a_city_account_has_no_local_password(app: Flask, provider: Provider, db: Database) -> None:
    assert sign_in(app.test_client(), provider, "erika.mustermann").status_code == 302
    with db.transaction(write=False) as session:
        (user,) = [u for u in accounts.list_users(session) if u.username.startswith("oidc-")]
        assert totp.second_factors(session)[user.username] == "provider"
        for password in ("", oidc.NO_PASSWORD, "city-pass-erika"):
            found = accounts.authenticate_user(
                session, username=user.username, password=password, now=datetime.now(UTC)
            )
            assert found is None


# -- attacks --------------------------------------------------------------------------------


def assert_refused(client: FlaskClient, answer: TestResponse) -> None:
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert "sid" not in (client.get_cookie("session").value if client.get_cookie("session") else "")
    assert not_signed_in(client)


def test_id_token_for_another_audience_is_refused(
    app: Flask, provider: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    client = app.test_client()
    provider.misbehave("wrong_audience")
    with caplog.at_level(logging.INFO):
        answer = sign_in(client, provider, "erika.mustermann")
    assert_refused(client, answer)
    assert any("audience" in r.getMessage() for r in caplog.records)


def test_expired_id_token_is_refused(
    app: Flask, provider: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    client = app.test_client()
    provider.misbehave("expired")
    with caplog.at_level(logging.INFO):
        answer = sign_in(client, provider, "erika.mustermann")
    assert_refused(client, answer)
    assert any("expired" in r.getMessage() for r in caplog.records)


def test_nonce_mismatch_is_refused(
    app: Flask, provider: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    client = app.test_client()
    provider.misbehave("nonce_mismatch")
    with caplog.at_level(logging.INFO):
        answer = sign_in(client, provider, "erika.mustermann")
    assert_refused(client, answer)
    assert any("nonce" in r.getMessage() for r in caplog.records)


def test_replayed_state_is_refused(app: Flask, provider: Provider, db: Database) -> None:
    """The callback URL and the cookie from before it, used again: the state works once."""
    client = app.test_client()
    url = callback_url(client, "erika.mustermann")
    cookie = client.get_cookie("session")
    assert cookie is not None
    assert come_back(client, url).status_code == 302  # the real sign-in
    sessions = console_sessions(db)
    thief = app.test_client()
    thief.set_cookie("session", cookie.value)
    answer = come_back(thief, url)
    assert answer.status_code == 400
    assert not_signed_in(thief)
    assert console_sessions(db) == sessions


def test_callback_without_a_started_sign_in_is_refused(app: Flask, provider: Provider) -> None:
    """Someone else's callback URL in a fresh browser (login CSRF): no state of ours."""
    url = callback_url(app.test_client(), "erika.mustermann")
    victim = app.test_client()
    answer = come_back(victim, url)
    assert answer.status_code == 400
    assert not_signed_in(victim)


def test_answer_naming_another_issuer_is_refused(app: Flask, provider: Provider) -> None:
    client = app.test_client()
    url = callback_url(client, "erika.mustermann")
    forged = re.sub(r"iss=[^&]+", "iss=https%3A%2F%2Fevil.example", url)
    assert forged != url
    assert come_back(client, forged).status_code == 400
    assert not_signed_in(client)


def test_refused_sign_ins_log_no_personal_data(
    app: Flask, provider: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        sign_in(app.test_client(), provider, "otto.normalverbraucher")
        provider.misbehave("nonce_mismatch")
        sign_in(app.test_client(), provider, "erika.mustermann")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "refused" in text
    for personal in PERSONAL:
        assert personal not in text


# -- the way out ------------------------------------------------------------------------------


def test_logout_ends_the_session_and_the_providers(app: Flask, provider: Provider) -> None:
    client = app.test_client()
    browser = httpx.Client(timeout=10)  # the provider's side of the same browser
    assert sign_in(client, provider, "erika.mustermann", browser=browser).status_code == 302
    page = client.get("/console/verify").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    answer = client.post("/console/logout", data={"csrf_token": token.group(1)})
    assert answer.status_code == 302
    end_session = answer.headers["Location"]
    assert end_session.startswith(f"{provider.issuer}/session/end?")
    query = parse_qs(urlsplit(end_session).query)
    assert query["post_logout_redirect_uri"] == [f"{PUBLIC_URL}/console/login"]
    assert query["id_token_hint"][0].count(".") == 2
    assert not_signed_in(client)  # the local session is gone at once
    # The console's pages let the logout form lead to the provider (CSP form-action).
    csp = client.get("/console/login").headers["Content-Security-Policy"]
    assert f"form-action 'self' {provider.issuer}" in csp
    provider.control(reset_ended=True)
    try:
        confirm = browser.get(end_session)
        assert confirm.status_code == 200
        action = re.search(r'<form[^>]*action="([^"]+)"', confirm.text)
        xsrf = re.search(r'name="xsrf" value="([^"]+)"', confirm.text)
        assert action is not None and xsrf is not None
        done = browser.post(action.group(1), data={"xsrf": xsrf.group(1), "logout": "yes"})
    finally:
        browser.close()
    assert done.is_redirect
    assert done.headers["location"].startswith(f"{PUBLIC_URL}/console/login")
    assert provider.ended_sessions() == ["erika.mustermann"]


def test_without_oidc_the_login_page_offers_only_local_accounts(
    db: Database, services: Services
) -> None:
    client = create_app(services.settings, services=services, db=db).test_client()
    page = client.get("/console/login?lang=de").get_data(as_text=True)
    assert "/console/oidc/login" not in page
    assert client.get("/console/oidc/login").status_code == 404


def test_unreachable_provider_is_a_clear_page_not_a_500(db: Database, services: Services) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = dataclasses.replace(
        services.settings,
        oidc_issuer=f"http://127.0.0.1:{port}",
        oidc_client_id="wallet-console",
        oidc_client_secret="not-used-here",
        oidc_roles=ROLES,
    )
    client = create_app(settings, services=services, db=db).test_client()
    client.set_cookie("lang", "de")
    answer = client.get("/console/oidc/login")
    assert answer.status_code == 502
    assert "Der Anmeldedienst der Stadt ist nicht erreichbar" in answer.get_data(as_text=True)
    # The local form still works: the break-glass admin can sign in.
    assert 'name="password"' in client.get("/console/login").get_data(as_text=True)


def test_a_sign_in_logs_no_secrets(
    app: Flask, provider: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    """Not the state, the code, the PKCE verifier or a token, even at DEBUG."""
    client = app.test_client()
    with caplog.at_level(logging.DEBUG):
        url = callback_url(client, "erika.mustermann")
        assert come_back(client, url).status_code == 302
    query = parse_qs(urlsplit(url).query)
    text = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (query["state"][0], query["code"][0], "code_verifier", "eyJ"):
        assert secret not in text
    for personal in PERSONAL:
        assert personal not in text


def test_member_of_hundreds_of_groups_keeps_a_small_cookie_and_still_signs_out(
    app: Flask, provider: Provider
) -> None:
    many = [
        f"CN=Abteilung {n:03d} Gruppe,OU=Gruppen,DC=stadt-musterstadt,DC=de" for n in range(150)
    ]
    provider.control(groups={"max.desk": [*many, "wallet-desk"]})
    client = app.test_client()
    assert sign_in(client, provider, "max.desk").status_code == 302
    cookie = client.get_cookie("session")
    assert cookie is not None and len(cookie.value) < 3000  # browsers keep 4 KB per cookie
    assert signed_in_as(client) is not None
    page = client.get("/console/verify").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    end_session = client.post("/console/logout", data={"csrf_token": token.group(1)})
    query = parse_qs(urlsplit(end_session.headers["Location"]).query)
    assert "id_token_hint" not in query and query["client_id"] == [provider.client_id]
    assert not_signed_in(client)


@pytest.mark.parametrize(
    "query",
    [
        "",
        "code=abc",
        "state=%00&code=%00",
        "state=" + "x" * 5000 + "&code=y",
        "error=access_denied&error_description=%3Cscript%3Ealert(1)%3C/script%3E",
        "iss=%00&state=a&code=b",
    ],
)
def test_hostile_callbacks_are_refusal_pages_not_errors(
    app: Flask, provider: Provider, query: str
) -> None:
    client = app.test_client()
    start(client)  # a sign-in under way, so the state check is not the only line of defence
    named = query if "iss=" in query else f"iss={quote(provider.issuer, safe='')}&{query}"
    for url in (f"/console/oidc/callback?{query}", f"/console/oidc/callback?{named}"):
        answer = client.get(url)
        assert answer.status_code == 400, url
        assert "<script>alert" not in answer.get_data(as_text=True)
    assert not_signed_in(client)
