"""Sign-in through the city's identity provider in real headless Chromium, end to end.

The real app on SQLite in a server thread, the real provider (tests/oidc/provider.mjs)
beside it on loopback. Chromium goes from the console's login page through the
provider's login and consent pages back to the console with the mapped role, and
out again through the provider's end_session. The refusal page and the TOTP code
page meet WCAG 2.1 AA (axe) and reflow at 320 CSS px, without a CSP complaint.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from flask import Flask
from werkzeug.serving import make_server

from tests.factories import NOW, copied_database, dev_services, dev_settings
from tests.oidc.provider import ACCOUNTS, ROLES, Provider, requires_node, running_provider
from tests.web.browser import _QuietHandler, chromium, requires_chromium
from tests.web.test_accessibility import PHONE, Tab, assert_reflows
from wallet.services import accounts, totp
from wallet.web import create_app

pytestmark = [requires_chromium, requires_node]

LOCAL_PASSWORD = "correct horse battery"
SECRET = bytes(range(40, 60))


@dataclass(frozen=True)
class Site:
    url: str
    provider: Provider


class _Later:
    """A WSGI app set after the server is listening (the provider must know its URL first)."""

    app: Flask | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        assert self.app is not None
        return self.app(environ, start_response)


@pytest.fixture(scope="module")
def site(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("oidc-pages")
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
            oidc_scopes="openid groups",
            oidc_roles=ROLES,
        )
        services = dev_services(settings)
        db = copied_database(sqlite_template, folder)
        quick = accounts.argon2.using(memory_cost=1024, rounds=1)
        with pytest.MonkeyPatch.context() as patch, db.transaction(write=True) as session:
            patch.setattr(accounts, "argon2", quick)
            accounts.add_user(session, username="root", password=LOCAL_PASSWORD, role="admin",
                              actor="test", audit_key=services.audit_key, now=NOW)  # fmt: skip
            before = datetime.now(UTC) - timedelta(seconds=30)  # the code step before is used up
            totp.enrol(session, username="root", enrolment=totp.Enrolment(SECRET),
                       code=totp_code(before), actor="test", audit_key=services.audit_key,
                       now=datetime.now(UTC))  # fmt: skip
        later.app = create_app(
            settings,
            services=services,
            db=db,
            clock=lambda: datetime.now(UTC),
            config={"TESTING": True, "RATELIMIT_ENABLED": False},
        )
        thread = threading.Thread(target=server.serve_forever, name="oidc-site", daemon=True)
        thread.start()
        try:
            yield Site(url=url, provider=provider)
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)
            db.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as running:
        yield running


@pytest.fixture
def tab(browser: Any) -> Iterator[Tab]:
    opened = Tab(browser, locale="de-DE")
    yield opened
    opened.close()


def through_the_provider(tab: Tab, site: Site, username: str) -> None:
    """From the console's login page, as a person clicks and types."""
    tab.open(f"{site.url}/console/login")
    with tab.page.expect_navigation():
        tab.page.get_by_role("link", name="Mit dem Konto der Stadt anmelden").click()
    assert tab.page.url.startswith(site.provider.issuer)
    tab.page.fill("#login", username)
    tab.page.fill("#password", ACCOUNTS[username]["password"])
    with tab.page.expect_navigation():
        tab.page.get_by_role("button", name="Sign in").click()
    with tab.page.expect_navigation():
        tab.page.get_by_role("button", name="Allow").click()
    tab.page.wait_for_load_state("load")


def test_city_account_signs_in_and_out_end_to_end_in_chromium(tab: Tab, site: Site) -> None:
    tab.open(f"{site.url}/console/login")
    tab.check("console-login-with-city-account")
    through_the_provider(tab, site, "erika.mustermann")
    assert tab.page.url == f"{site.url}/console/"
    assert tab.page.locator(".signed-in__role").inner_text() == "(Administration)"
    assert tab.complaints == []
    site.provider.control(reset_ended=True)
    tab.complaints.clear()
    with tab.page.expect_navigation():
        tab.page.get_by_role("button", name="Abmelden").click()
    # The provider's own page asks; its answer leads back to the console's login page.
    assert tab.page.url.startswith(f"{site.provider.issuer}/session/end")
    assert tab.complaints == []  # the console's CSP let the logout form lead there
    with tab.page.expect_navigation():
        tab.page.get_by_role("button", name="Yes, sign me out").click()
    tab.page.wait_for_load_state("load")
    assert tab.page.url.startswith(f"{site.url}/console/login")
    assert "Sie haben sich abgemeldet." in tab.page.content()
    assert site.provider.ended_sessions() == ["erika.mustermann"]
    tab.open(f"{site.url}/console/")
    assert tab.page.url.startswith(f"{site.url}/console/login")


def test_refusal_page_meets_wcag_21_aa_and_reflows_at_320px(tab: Tab, site: Site) -> None:
    through_the_provider(tab, site, "otto.normalverbraucher")
    assert tab.page.url.startswith(f"{site.url}/console/oidc/callback")
    assert tab.page.get_by_role("heading", level=1).inner_text() == (
        "Ihr Konto hat keinen Zugang zu diesem Dienst"
    )
    assert "IT-Abteilung" in tab.page.content()
    tab.check("console-oidc-refused")
    tab.page.set_viewport_size(PHONE)
    assert_reflows(tab, "console-oidc-refused")
    # Signing out at the provider from there lets another account sign in.
    site.provider.control(reset_ended=True)
    with tab.page.expect_navigation():
        tab.page.get_by_role("link", name="Beim Konto der Stadt abmelden").click()
    with tab.page.expect_navigation():
        tab.page.get_by_role("button", name="Yes, sign me out").click()
    assert tab.page.url.startswith(f"{site.url}/console/login")
    assert site.provider.ended_sessions() == ["otto.normalverbraucher"]


def totp_code(at: datetime) -> str:
    return TOTP(SECRET, 6, SHA1(), 30).generate(int(at.timestamp())).decode()


def test_totp_code_page_meets_wcag_21_aa_and_reflows_at_320px(tab: Tab, site: Site) -> None:
    tab.open(f"{site.url}/console/login")
    tab.page.fill("#username", "root")
    tab.page.fill("#password", LOCAL_PASSWORD)
    with tab.page.expect_navigation():
        tab.page.click("main form.form button[type=submit]")
    assert tab.page.url == f"{site.url}/console/login/code"
    tab.check("console-login-code")
    tab.page.fill("#code", "000000" if totp_code(datetime.now(UTC)) != "000000" else "111111")
    with tab.page.expect_navigation():
        tab.page.click("main button[type=submit]")
    assert tab.page.locator(".error-summary").is_visible()
    tab.check("console-login-code-wrong")
    tab.page.set_viewport_size(PHONE)
    assert_reflows(tab, "console-login-code")
    tab.page.fill("#code", totp_code(datetime.now(UTC)))
    with tab.page.expect_navigation():
        tab.page.click("main button[type=submit]")
    assert tab.page.url == f"{site.url}/console/"
