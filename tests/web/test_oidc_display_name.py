"""The console greets a city account by the name in its ID token, for that session only.

The real provider (tests/oidc/provider.mjs) on loopback and the real app on each
backend; the account stays ``oidc-<hash>`` in the database, the audit log and the
logs, and the person's name lives in the signed session cookie alone: after the
sign-in, no table holds it, and signing out forgets it. In real Chromium, the
header with a name meets WCAG 2.1 AA and reflows at 320 px.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.serving import make_server

from tests.factories import NOW, copied_database, dev_services, dev_settings
from tests.oidc.provider import ACCOUNTS, ROLES, Provider, requires_node, running_provider
from tests.web.browser import _QuietHandler, chromium, requires_chromium
from tests.web.test_accessibility import PHONE, Tab, assert_reflows
from tests.web.test_oidc_browser import _Later, through_the_provider
from tests.web.test_oidc_login import CALLBACK, PUBLIC_URL, callback_url, come_back
from wallet.services import accounts, oidc
from wallet.services.context import Services
from wallet.store.db import Database
from wallet.store.models import Base
from wallet.web import create_app

NAME = ACCOUNTS["erika.mustermann"]["name"]  # "Erika Mustermann"
EMAIL = ACCOUNTS["erika.mustermann"]["email"]


@pytest.fixture(scope="module")
def city_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    with running_provider(
        redirect_uris=[CALLBACK],
        post_logout_redirect_uris=[f"{PUBLIC_URL}/console/login"],
        log=tmp_path_factory.mktemp("oidc-name") / "provider.log",
    ) as provider:
        yield provider


def app_for(db: Database, services: Services, provider: Provider, *, scopes: str) -> Flask:
    settings = dataclasses.replace(
        services.settings,
        oidc_issuer=provider.issuer,
        oidc_client_id=provider.client_id,
        oidc_client_secret=provider.client_secret,
        oidc_scopes=scopes,
        oidc_roles=ROLES,
    )
    return create_app(settings, services=services, db=db, clock=lambda: datetime.now(UTC),
                      config={"TESTING": True, "RATELIMIT_ENABLED": False})  # fmt: skip


@pytest.fixture
def app(db: Database, services: Services, city_provider: Provider) -> Flask:
    """Asking for the ``profile`` scope, which brings ``name`` and ``preferred_username``."""
    return app_for(db, services, city_provider, scopes="openid groups profile")


def signed_in(app: Flask, username: str = "erika.mustermann") -> FlaskClient:
    client = app.test_client()
    client.set_cookie("lang", "de")
    answer = come_back(client, callback_url(client, username))
    assert answer.status_code == 302, answer.get_data(as_text=True)
    return client


def header(client: FlaskClient) -> str:
    page = client.get("/console/verify").get_data(as_text=True)
    found = re.search(r'<span class="signed-in__who">(.*?) <span class="signed-in__role">', page)
    assert found is not None, page[:1500]
    return found.group(1)


def account_key(db: Database) -> str:
    with db.transaction(write=False) as session:
        (user,) = [
            u.username for u in accounts.list_users(session) if u.username.startswith("oidc-")
        ]
    return user


def everything_stored(db: Database) -> str:
    """Every row of every table, as text."""
    with db.transaction(write=False) as session:
        return "\n".join(
            repr(tuple(row)) for table in Base.metadata.sorted_tables
            for row in session.execute(select(table))
        )  # fmt: skip


@requires_node
def test_header_greets_a_city_account_by_the_name_in_its_id_token(app: Flask, db: Database) -> None:
    client = signed_in(app)
    key = account_key(db)
    issuer = app.extensions["wallet"].settings.oidc_issuer
    assert key == f"oidc-{oidc.subject_tag(issuer, 'erika.mustermann')}"  # the account's key
    assert header(client) == NAME
    assert key not in client.get("/console/verify").get_data(as_text=True)


@requires_node
def test_the_name_is_kept_in_no_table_and_no_log(
    app: Flask, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        client = signed_in(app)
        assert header(client) == NAME
    stored = everything_stored(db)
    assert account_key(db) in stored  # the scan does see the account ...
    for personal in (NAME, "Mustermann", EMAIL):  # ... and nothing that names the person
        assert personal not in stored
        assert all(personal not in r.getMessage() for r in caplog.records)


@requires_node
@pytest.mark.usefixtures("quick_password_hashes")
def test_the_name_ends_with_the_session(
    app: Flask, db: Database, services: Services, make_user: Any
) -> None:
    client = signed_in(app)
    assert header(client) == NAME
    page = client.get("/console/verify").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    client.post("/console/logout", data={"csrf_token": token.group(1)})
    assert NAME not in client.get("/console/login").get_data(as_text=True)
    # A local account signing in at the same browser is shown as itself.
    make_user("notfall", "issuer")
    login = client.get("/console/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', login)
    assert token is not None
    form = {"csrf_token": token.group(1), "username": "notfall",
            "password": "correct horse battery"}  # fmt: skip
    assert client.post("/console/login", data=form).status_code == 302
    assert header(client) == "notfall"


@requires_node
def test_without_the_profile_scope_the_header_shows_the_account_key(
    db: Database, services: Services, city_provider: Provider
) -> None:
    app = app_for(db, services, city_provider, scopes="openid groups")
    client = signed_in(app)
    assert header(client) == account_key(db)


@requires_node
def test_a_name_chosen_to_attack_the_page_is_shown_as_text(
    app: Flask, db: Database, services: Services
) -> None:
    """Staff may edit their own name at the provider: markup and a right-to-left override
    in it must neither run nor turn the header around."""
    shown = oidc.display_name({"name": "<script>alert(1)</script>\u202eknE"})
    assert shown == "<script>alert(1)</script> knE"
    with db.transaction(write=True) as session:
        user = oidc.sign_in(
            session,
            oidc.Identity(issuer="https://login.stadt-musterstadt.de", subject="mallory",
                          groups=("wallet-desk",)),
            mapping=ROLES, audit_key=services.audit_key, now=NOW,
        )  # fmt: skip
        secret = accounts.start_session(
            session, username=user.username, lifetime=timedelta(hours=1), now=datetime.now(UTC)
        )
    client = app.test_client()
    with client.session_transaction() as cookie:
        cookie["sid"] = secret
        cookie["oidc_id_token"] = ""
        cookie["oidc_name"] = shown
    page = client.get("/console/verify").get_data(as_text=True)
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; knE" in page


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"name": "Erika Mustermann", "preferred_username": "erika"}, "Erika Mustermann"),
        ({"preferred_username": "erika.mustermann"}, "erika.mustermann"),
        ({"name": " \t\n", "preferred_username": "erika"}, "erika"),
        ({"name": "Erika\x00\x1b[31m  Mustermann\u200b"}, "Erika [31m Mustermann"),
        ({"name": "E" * 300}, "E" * oidc.MAX_DISPLAY_NAME),
        ({"name": ["Erika"], "preferred_username": 42}, None),
        ({}, None),
    ],
)
def test_display_name_takes_the_friendliest_claim_cleaned(
    claims: dict[str, Any], expected: str | None
) -> None:
    assert oidc.display_name(claims) == expected


# -- in Chromium ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Site:
    url: str
    provider: Provider
    app: Flask


@pytest.fixture(scope="module")
def page_site(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("oidc-name-pages")
    later = _Later()
    server = make_server("127.0.0.1", 0, later, threaded=True, request_handler=_QuietHandler)
    url = f"http://127.0.0.1:{server.server_port}"
    with running_provider(
        redirect_uris=[f"{url}/console/oidc/callback"],
        post_logout_redirect_uris=[f"{url}/console/login"],
        log=folder / "provider.log",
    ) as provider:
        settings = dev_settings(
            folder,
            public_url=url,
            oidc_issuer=provider.issuer,
            oidc_client_id=provider.client_id,
            oidc_client_secret=provider.client_secret,
            oidc_scopes="openid groups profile",
            oidc_roles=ROLES,
        )
        services = dev_services(settings)
        db = copied_database(sqlite_template, folder)
        later.app = create_app(settings, services=services, db=db,
                               clock=lambda: datetime.now(UTC),
                               config={"TESTING": True, "RATELIMIT_ENABLED": False})  # fmt: skip
        thread = threading.Thread(target=server.serve_forever, name="oidc-name-site", daemon=True)
        thread.start()
        try:
            yield Site(url=url, provider=provider, app=later.app)
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)
            db.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as running:
        yield running


@requires_node
@requires_chromium
def test_header_with_a_name_meets_wcag_21_aa_and_reflows_at_320px(
    browser: Any, page_site: Site
) -> None:
    tab = Tab(browser, locale="de-DE")
    try:
        through_the_provider(tab, page_site, "erika.mustermann")
        assert tab.page.url == f"{page_site.url}/console/"
        assert tab.page.locator(".signed-in__who").inner_text() == f"{NAME} (Administration)"
        # A city account's second factor is the provider's: no link to set one up here.
        assert tab.page.get_by_role("link", name="Zweiter Faktor").count() == 0
        tab.check("console-oidc-display-name")
        tab.page.set_viewport_size(PHONE)
        assert_reflows(tab, "console-oidc-display-name")
        # The longest name kept, as one word (an e-mail address as preferred_username).
        signer = page_site.app.session_interface.get_signing_serializer(page_site.app)  # type: ignore[attr-defined]
        (cookie,) = [c for c in tab.context.cookies() if c["name"] == "session"]
        data = signer.loads(cookie["value"])
        data["oidc_name"] = oidc.display_name({"name": "e" * 300 + "@stadt-musterstadt.de"})
        tab.context.add_cookies([{**cookie, "value": signer.dumps(data)}])
        tab.open(f"{page_site.url}/console/verify")
        assert tab.page.locator(".signed-in__who").inner_text().startswith("e" * 64 + " (")
        assert_reflows(tab, "console-oidc-display-name-long")
        tab.check("console-oidc-display-name-long")
    finally:
        tab.close()
