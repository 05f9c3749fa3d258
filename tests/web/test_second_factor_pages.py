"""The second-factor page in real headless Chromium: WCAG 2.1 AA (axe), reflow at 320 px.

The real app over SQLite on 127.0.0.1, its clock the wall clock. A person signs in,
reads the page's QR code the way a phone's camera would (a screenshot of it, decoded
by zxing-cpp), types the code an authenticator app would show, and the factor is on.
Each state of the page (set-up, a mistyped code, on, a refused switching off) must
have no axe violation, no Content-Security-Policy complaint and no sideways scrolling.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP

from tests.factories import NOW, copied_database, dev_services, dev_settings
from tests.web.browser import chromium, live_server, requires_chromium
from tests.web.test_accessibility import PHONE, Tab, assert_reflows
from wallet.formats.qrimage import read_qr_image
from wallet.services import accounts, totp
from wallet.store.db import Database
from wallet.web import create_app

pytestmark = requires_chromium

PASSWORD = "correct horse battery"
USERS = {"de": "anna", "en": "ben"}


@dataclass(frozen=True)
class Site:
    url: str
    db: Database


@pytest.fixture(scope="module")
def site(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("second-factor-pages")
    settings = dev_settings(folder)
    services = dev_services(settings)
    db = copied_database(sqlite_template, folder)
    quick = accounts.argon2.using(memory_cost=1024, rounds=1)  # real argon2, cheap parameters
    with pytest.MonkeyPatch.context() as patch, db.transaction(write=True) as session:
        patch.setattr(accounts, "argon2", quick)
        for username in USERS.values():
            accounts.add_user(session, username=username, password=PASSWORD, role="issuer",
                              actor="test", audit_key=services.audit_key, now=NOW)  # fmt: skip
    app = create_app(
        settings,
        services=services,
        db=db,
        clock=lambda: datetime.now(UTC),
        config={"TESTING": True, "RATELIMIT_ENABLED": False},
    )
    with live_server(app) as url:
        yield Site(url=url, db=db)
    db.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as running:
        yield running


def sign_in(tab: Tab, site: Site, username: str) -> None:
    tab.open(f"{site.url}/console/login")
    tab.page.fill("#username", username)
    tab.page.fill("#password", PASSWORD)
    with tab.page.expect_navigation():
        tab.page.click("main button[type=submit]")


def submit(tab: Tab, button: str) -> None:
    with tab.page.expect_navigation():
        tab.page.get_by_role("button", name=button).click()
    tab.page.wait_for_load_state("load")


def code_now(secret: bytes) -> str:
    return TOTP(secret, 6, SHA1(), 30).generate(int(datetime.now(UTC).timestamp())).decode()


TEXTS = {
    "de": {"nav": "Zweiter Faktor", "on": "Zweiten Faktor einschalten",
           "off": "Zweiten Faktor ausschalten", "mismatch": "Der Code passt nicht.",
           "is_on": "Der zweite Faktor ist eingeschaltet.",
           "refused": "Das Passwort oder der Code ist nicht richtig."},
    "en": {"nav": "Second factor", "on": "Switch the second factor on",
           "off": "Switch the second factor off", "mismatch": "The code does not match.",
           "is_on": "The second factor is on.",
           "refused": "The password or the code is not correct."},
}  # fmt: skip


@pytest.mark.parametrize("lang", ["de", "en"])
def test_second_factor_page_meets_wcag_21_aa_and_reflows_at_320px(
    browser: Any, site: Site, lang: str
) -> None:
    text = TEXTS[lang]
    username = USERS[lang]
    tab = Tab(browser, locale="de-DE" if lang == "de" else "en-GB")
    try:
        sign_in(tab, site, username)
        with tab.page.expect_navigation():
            tab.page.get_by_role("link", name=text["nav"]).click()
        assert tab.page.url == f"{site.url}/console/second-factor"
        link = tab.page.get_by_role("link", name=text["nav"])
        assert link.get_attribute("aria-current") == "page"
        tab.check(f"console-second-factor-setup-{lang}")
        # What a phone's camera reads is the key the page shows as text.
        uri = read_qr_image(tab.page.locator(".claim__qr svg").screenshot())
        parts = urlsplit(uri)
        assert parts.scheme == "otpauth" and parts.netloc == "totp"
        assert unquote(parts.path).endswith(f":{username}")
        query = parse_qs(parts.query)
        key = tab.page.locator("#totp-key").inner_text().replace(" ", "")
        assert query["secret"] == [key] and query["issuer"] == ["127.0.0.1"]
        secret = base64.b32decode(key + "=" * (-len(key) % 8))
        tab.page.set_viewport_size(PHONE)
        assert_reflows(tab, f"console-second-factor-setup-{lang}")
        # A mistyped code: the error is named at the field, and the factor stays off.
        right = code_now(secret)
        tab.page.fill("#code", "000000" if right != "000000" else "111111")
        submit(tab, text["on"])
        assert text["mismatch"] in tab.page.locator("#code-error").inner_text()
        assert tab.page.locator("#code").get_attribute("aria-invalid") == "true"
        tab.check(f"console-second-factor-mismatch-{lang}")
        assert_reflows(tab, f"console-second-factor-mismatch-{lang}")
        with site.db.transaction(write=False) as session:
            assert not totp.is_enrolled(session, username)
        tab.page.fill("#code", code_now(secret))
        submit(tab, text["on"])
        assert text["is_on"] in tab.page.content()
        with site.db.transaction(write=False) as session:
            assert totp.is_enrolled(session, username)
        tab.check(f"console-second-factor-on-{lang}")
        assert_reflows(tab, f"console-second-factor-on-{lang}")
        # Switching off with a wrong password: refused, said once for both fields.
        tab.page.fill("#password", "not the password")
        tab.page.fill("#off-code", code_now(secret))
        submit(tab, text["off"])
        assert text["refused"] in tab.page.locator("#off-error").inner_text()
        tab.check(f"console-second-factor-off-refused-{lang}")
        assert_reflows(tab, f"console-second-factor-off-refused-{lang}")
        with site.db.transaction(write=False) as session:
            assert totp.is_enrolled(session, username)
    finally:
        tab.close()
