"""WCAG 2.1 AA in real headless Chromium: axe-core on every kind of page, and the keyboard.

One browser and one live server for the whole module; each page gets a fresh
browser context in the language under test. The pages must also load without a
single Content-Security-Policy complaint (no inline style or script slipped in).
Set WALLET_TEST_SCREENSHOTS to a folder to keep a screenshot of every page checked.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.factories import HOLDERS, NOW, copied_database, dev_services, dev_settings
from tests.web.browser import axe_violations, chromium, live_server, requires_chromium
from wallet.formats.qrimage import read_qr_image
from wallet.services import accounts, passes
from wallet.services.context import Services
from wallet.services.credentials import ensure_dev_chain
from wallet.services.publishing import status_list_uri
from wallet.store.db import Database
from wallet.tokens import sign_pass_token
from wallet.web import create_app

pytestmark = requires_chromium

PASSWORD = "correct horse battery"
SCREENSHOTS = os.environ.get("WALLET_TEST_SCREENSHOTS", "")


@dataclass(frozen=True)
class Site:
    url: str
    valid: str  # claim secrets
    suspended: str
    revoked: str
    serial: str  # a pass with some history, for the detail page
    amber: str  # a genuine pass token whose status list no bundle holds


def _issue(db: Database, services: Services, type_id: str) -> passes.IssuedPass:
    with db.transaction(write=True) as session:
        return passes.issue_pass(
            session, services, type_id=type_id, holder=dict(HOLDERS[type_id]), actor="test", now=NOW
        )


def _change(db: Database, services: Services, serial: str, action: str, reason: str) -> None:
    with db.transaction(write=True) as session:
        passes.change_state(
            session, services, serial, action=action, reason=reason, actor="user:anna", now=NOW
        )


@pytest.fixture(scope="module")
def site(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The real app over SQLite with a few passes and a user, served on 127.0.0.1."""
    folder = tmp_path_factory.mktemp("pages")
    settings = dev_settings(folder)
    services = dev_services(settings)
    keys = services.keys
    ensure_dev_chain(settings, now=NOW)  # Apple Wallet available: its button is checked too
    db = copied_database(sqlite_template, folder)
    valid = _issue(db, services, "library")
    suspended = _issue(db, services, "parking")
    revoked = _issue(db, services, "library")
    _change(db, services, suspended.record.serial, "suspend", "fee unpaid")
    _change(db, services, revoked.record.serial, "revoke", "card reported stolen")
    quick = accounts.argon2.using(memory_cost=1024, rounds=1)  # real argon2, cheap parameters
    with pytest.MonkeyPatch.context() as patch, db.transaction(write=True) as session:
        patch.setattr(accounts, "argon2", quick)
        accounts.add_user(
            session, username="anna", password=PASSWORD, role="issuer", actor="test",
            audit_key=services.audit_key, now=NOW,
        )  # fmt: skip
    app = create_app(
        settings,
        services=services,
        db=db,
        clock=lambda: NOW,
        config={"TESTING": True, "RATELIMIT_ENABLED": False},
    )
    amber = sign_pass_token(
        key=keys.current_signing_key("parking", now=NOW),
        issuer=settings.issuer,
        serial="SERIAL0123456789",
        pass_type="parking",
        holder=dict(HOLDERS["parking"]),
        issued_at=NOW - timedelta(days=1),
        expires_at=NOW + timedelta(days=30),
        status_idx=5,
        status_uri=status_list_uri(settings.public_url, "parking-999"),
    )
    with live_server(app) as url:
        yield Site(
            url=url,
            valid=valid.claim_secret,
            suspended=suspended.claim_secret,
            revoked=revoked.claim_secret,
            serial=suspended.record.serial,
            amber=amber,
        )
    db.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as running:
        yield running


class Tab:
    """A page in a fresh browser context that records CSP complaints."""

    def __init__(self, browser: Any, *, locale: str) -> None:
        self.context = browser.new_context(locale=locale, viewport={"width": 1024, "height": 900})
        self.page = self.context.new_page()
        self.complaints: list[str] = []
        self.page.on("console", self._console)

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.complaints.append(message.text)

    def open(self, url: str) -> Any:
        self.complaints.clear()
        response = self.page.goto(url)
        self.page.wait_for_load_state("load")
        return response

    def check(self, name: str) -> None:
        """No WCAG 2.1 A/AA violation, no CSP complaint; a screenshot if asked for."""
        if SCREENSHOTS:
            Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)
        assert axe_violations(self.page) == [], name
        assert self.complaints == [], name

    def sign_in(self, url: str) -> None:
        self.open(f"{url}/console/login")
        self.page.fill("#username", "anna")
        self.page.fill("#password", PASSWORD)
        with self.page.expect_navigation():
            self.page.click("main button[type=submit]")

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def german(browser: Any) -> Iterator[Tab]:
    tab = Tab(browser, locale="de-DE")
    yield tab
    tab.close()


@pytest.fixture(scope="module")
def english(browser: Any) -> Iterator[Tab]:
    tab = Tab(browser, locale="en-GB")
    yield tab
    tab.close()


@pytest.fixture(scope="module")
def staff(browser: Any, site: Site) -> Iterator[Tab]:
    tab = Tab(browser, locale="de-DE")
    tab.sign_in(site.url)
    yield tab
    tab.close()


@pytest.fixture
def fresh(browser: Any) -> Iterator[Tab]:
    """A German tab of its own, for a test that changes cookies."""
    tab = Tab(browser, locale="de-DE")
    yield tab
    tab.close()


# -- the citizen's page -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("which", "lang"),
    [("valid", "de"), ("valid", "en"), ("revoked", "de"), ("revoked", "en"), ("suspended", "de")],
)
def test_citizen_page_meets_wcag_21_aa(
    site: Site, request: pytest.FixtureRequest, which: str, lang: str
) -> None:
    tab: Tab = request.getfixturevalue("german" if lang == "de" else "english")
    response = tab.open(f"{site.url}/p/{getattr(site, which)}")
    assert response.status == 200
    assert tab.page.get_attribute("html", "lang") == lang  # chosen by Accept-Language
    tab.check(f"citizen-{which}-{lang}")


def test_unknown_link_page_meets_wcag_21_aa(site: Site, german: Tab) -> None:
    assert german.open(f"{site.url}/p/{'x' * 32}").status == 404
    german.check("citizen-unknown-de")


_STYLE = """e => {
    const s = getComputedStyle(e);
    return {outline: s.outlineStyle + " " + s.outlineWidth + " " + s.outlineColor,
            shadow: s.boxShadow, background: s.backgroundColor};
}"""


def test_keyboard_reaches_language_switch_and_download_with_visible_focus(
    site: Site, fresh: Tab
) -> None:
    page = fresh.page
    fresh.open(f"{site.url}/p/{site.valid}")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.className") == "skip-link"
    box = page.locator(".skip-link").bounding_box()
    assert box is not None and box["y"] >= 0  # shown on screen once focused
    targets = {"switch": page.locator(".lang-switch a"), "download": page.locator(".download a")}
    focused: dict[str, dict[str, str]] = {}
    for _ in range(15):
        page.keyboard.press("Tab")
        for name, locator in targets.items():
            if locator.evaluate("e => e === document.activeElement"):
                focused[name] = locator.evaluate(_STYLE)
        if "download" in focused:
            break
    assert set(focused) == {"switch", "download"}, f"Tab reached only {sorted(focused)}"
    page.evaluate("() => document.activeElement.blur()")
    for name, locator in targets.items():
        style = focused[name]
        assert style["shadow"] != "none" or not style["outline"].startswith("none"), name
        assert style != locator.evaluate(_STYLE), f"{name}: focus does not change how it looks"
    # Enter on the switch changes the language
    targets["switch"].focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.get_attribute("html", "lang") == "en"


# -- the staff console --------------------------------------------------------------------------


def test_login_page_meets_wcag_21_aa(site: Site, german: Tab, english: Tab) -> None:
    german.open(f"{site.url}/console/login")
    german.check("console-login-de")
    english.open(f"{site.url}/console/login")
    english.page.fill("#username", "anna")
    english.page.fill("#password", "wrong password here")
    with english.page.expect_navigation():
        english.page.click("main button[type=submit]")
    assert english.page.locator(".error-summary").is_visible()
    english.check("console-login-error-en")


def test_console_search_meets_wcag_21_aa(site: Site, staff: Tab) -> None:
    staff.open(f"{site.url}/console/?q=&state=")
    assert staff.page.locator("table tbody tr").count() == 3
    staff.check("console-search")


def test_issue_form_meets_wcag_21_aa_also_with_errors(site: Site, staff: Tab) -> None:
    staff.open(f"{site.url}/console/issue/parking")
    staff.check("console-issue")
    # the zone's pattern attribute compiles in Chromium and, like the server, accepts
    # lower case; a plate has none: it is read in every spelling, so the server judges
    zone = staff.page.locator("#f-zone")
    for typed, valid in [("12", True), ("a1", True), ("1-2", False), ("ä", False)]:
        zone.fill(typed)
        assert zone.evaluate("e => e.validity.valid") is valid, typed
    assert staff.page.locator("#f-plate").get_attribute("pattern") is None
    # let the server judge (the browser's own checks would stop the submission)
    staff.page.evaluate("() => { document.querySelector('main form').noValidate = true; }")
    staff.page.fill("#f-plate", "not a plate")
    staff.page.fill("#f-zone", "12")
    with staff.page.expect_navigation():
        staff.page.click("main button[type=submit]")
    assert staff.page.locator(".field-error").count() == 1
    staff.check("console-issue-errors")


def test_pass_detail_meets_wcag_21_aa(site: Site, staff: Tab) -> None:
    staff.open(f"{site.url}/console/passes/{site.serial}")
    staff.page.click("details.action--reinstate summary")
    assert staff.page.locator("#reason-reinstate").is_visible()
    assert staff.page.locator(".trail tbody tr").count() == 2
    staff.check("console-detail")


def test_verify_page_meets_wcag_21_aa(site: Site, staff: Tab) -> None:
    staff.open(f"{site.url}/console/verify")
    staff.page.fill("#text", "WP1" + "12345" * 20)
    with staff.page.expect_navigation():
        staff.page.click("main button[type=submit]")
    assert staff.page.locator(".verdict").is_visible()
    staff.check("console-verify")


# -- narrow screens: WCAG 1.4.10 reflow at 320 CSS px ---------------------------------------------

PHONE = {"width": 320, "height": 640}

_OVERFLOW = """() => {
    const width = document.documentElement.clientWidth;
    const wide = [...document.querySelectorAll("body *")].filter(e => {
        const box = e.getBoundingClientRect();
        return box.width > 0 && (box.right > width + 0.5 || box.left < -0.5)
            && !e.closest(".visually-hidden, .skip-link");
    }).map(e => e.tagName + "." + e.className);
    return {scroll: document.documentElement.scrollWidth, width, wide};
}"""

_CUT_OFF = """e => ({scroll: e.scrollWidth, client: e.clientWidth,
               right: e.getBoundingClientRect().right,
               cardRight: e.closest('.card').getBoundingClientRect().right})"""


@pytest.fixture
def phone(browser: Any) -> Iterator[Tab]:
    tab = Tab(browser, locale="de-DE")
    tab.page.set_viewport_size(PHONE)
    yield tab
    tab.close()


def assert_reflows(tab: Tab, name: str) -> None:
    found = tab.page.evaluate(_OVERFLOW)
    assert found["width"] == 320, name
    assert found["scroll"] <= 320, f"{name} scrolls sideways: {found}"
    assert found["wide"] == [], f"{name}: wider than the screen: {found['wide']}"


@pytest.mark.parametrize(("which", "lang"), [("valid", "de"), ("suspended", "de"), ("valid", "en")])
def test_citizen_page_reflows_at_320px(site: Site, phone: Tab, which: str, lang: str) -> None:
    """No sideways scrolling, and the card's title ("Bewohnerparkausweis") is never cut off."""
    assert phone.open(f"{site.url}/p/{getattr(site, which)}?lang={lang}").status == 200
    assert_reflows(phone, f"citizen-{which}-{lang}")
    title = phone.page.locator(".card__title").evaluate(_CUT_OFF)
    assert title["scroll"] <= title["client"], f"title cut off: {title}"
    assert title["right"] <= title["cardRight"], f"title runs past the card: {title}"
    phone.check(f"citizen-{which}-{lang}-320px")


def test_console_pass_page_reflows_at_320px_with_a_stacked_audit_trail(
    site: Site, phone: Tab
) -> None:
    phone.sign_in(site.url)
    phone.open(f"{site.url}/console/passes/{site.serial}")
    assert_reflows(phone, "console-detail")
    trail = phone.page.locator(".trail .table-wrap")
    assert trail.evaluate("e => e.scrollWidth <= e.clientWidth"), "the audit trail scrolls"
    # Action and details of every entry are on screen, each cell labelled.
    cells = phone.page.locator(".trail tbody td")
    assert cells.count() == 8
    for index in range(cells.count()):
        cell = cells.nth(index)
        box = cell.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 320
        label = cell.evaluate("e => getComputedStyle(e, '::before').content")
        assert label.strip('"') in {"Zeit", "Von", "Aktion", "Details"}, label
    phone.check("console-detail-320px")


def test_console_search_reflows_at_320px_with_stacked_rows(site: Site, phone: Tab) -> None:
    phone.sign_in(site.url)
    phone.open(f"{site.url}/console/?q=&state=")
    assert_reflows(phone, "console-search")
    table = phone.page.locator(".table-wrap")
    assert table.evaluate("e => e.scrollWidth <= e.clientWidth"), "the result table scrolls"
    for selector in ("td .badge", "tbody td:nth-child(3)"):  # state and holder
        shown = phone.page.locator(f"tbody {selector}" if selector.startswith("td") else selector)
        for index in range(shown.count()):
            box = shown.nth(index).bounding_box()
            assert box is not None and box["x"] + box["width"] <= 320, selector
    phone.check("console-search-320px")


def test_console_verify_result_gets_focus_on_a_phone(site: Site, phone: Tab) -> None:
    """The result lands below the form, below the fold on a phone: focus and view move to it."""
    phone.page.set_viewport_size({"width": 360, "height": 640})
    phone.sign_in(site.url)
    phone.open(f"{site.url}/console/verify")
    phone.page.fill("#text", "WP1" + "12345" * 20)
    with phone.page.expect_navigation():
        phone.page.click("main button[type=submit]")
    assert phone.page.evaluate("() => document.activeElement.id") == "verdict"
    box = phone.page.locator("#verdict h2").bounding_box()
    assert box is not None and 0 <= box["y"] < 640, box  # in view, not below the fold
    phone.check("console-verify-phone")


def test_pass_issued_page_shows_the_whole_link_and_a_qr_code_of_it(site: Site, staff: Tab) -> None:
    """The citizen at the desk scans the link with their phone; staff see all of it."""
    staff.open(f"{site.url}/console/issue/parking")
    staff.page.fill("#f-plate", "K-LM 567")
    staff.page.fill("#f-zone", "3")
    with staff.page.expect_navigation():
        staff.page.click("main button[type=submit]")
    field = staff.page.locator("#claim-url")
    link = field.input_value()
    assert link.startswith("http://127.0.0.1/p/")  # the configured public URL
    fits = field.evaluate("e => e.scrollWidth <= e.clientWidth && e.scrollHeight <= e.clientHeight")
    assert fits, "the claim link is cut off in its field"
    image = staff.page.locator(".claim__qr svg").screenshot()
    assert read_qr_image(image) == link
    staff.check("console-issued")


def test_amber_verdict_meets_wcag_21_aa(site: Site, staff: Tab) -> None:
    """The status-unchecked verdict: its amber colours must keep their contrast."""
    staff.open(f"{site.url}/console/verify")
    staff.page.fill("#text", site.amber)
    with staff.page.expect_navigation():
        staff.page.click("main button[type=submit]")
    assert staff.page.locator(".verdict--amber .verdict__admit").is_visible()
    staff.check("console-verify-amber")


def test_devices_and_pairing_pages_meet_wcag_21_aa_and_reflow_at_320px(
    site: Site, staff: Tab, phone: Tab
) -> None:
    """Staff pair their phone from the console; a phone is what they may use to open it."""
    staff.open(f"{site.url}/console/devices")
    staff.page.fill("#name", "Handy Außendienst 3")
    with staff.page.expect_navigation():
        staff.page.click("main form button[type=submit]")
    link = staff.page.locator("#pair-url").input_value()
    assert "/scan/#pair=wpp_" in link
    image = staff.page.locator(".claim__qr svg").screenshot()
    assert read_qr_image(image) == link
    staff.check("console-device-pairing")
    staff.open(f"{site.url}/console/devices")
    assert staff.page.locator("table tbody tr").count() >= 1
    staff.check("console-devices")
    phone.sign_in(site.url)
    phone.open(f"{site.url}/console/devices")
    assert_reflows(phone, "console-devices-320px")
    phone.check("console-devices-320px")


def test_import_page_with_its_report_meets_wcag_21_aa_and_reflows(
    site: Site, staff: Tab, phone: Tab, tmp_path: Path
) -> None:
    export = tmp_path / "export.csv"
    export.write_bytes(b"Ausweisnummer;Name;Notiz\r\n12;Erika;x\r\n100200300999;Max;y\r\n")
    staff.open(f"{site.url}/console/import")
    staff.page.set_input_files("#file", str(export))
    with staff.page.expect_navigation():
        staff.page.click("button[value=check]")
    assert staff.page.locator("table tbody tr").count() == 1
    staff.check("console-import-report")
    phone.sign_in(site.url)
    phone.open(f"{site.url}/console/import")
    assert_reflows(phone, "console-import-320px")


def _check_plate(tab: Tab, url: str) -> None:
    tab.open(f"{url}/console/plates")
    tab.page.fill("#plate", "dab1234")
    tab.page.fill("#zone", "12")
    with tab.page.expect_navigation():
        tab.page.click("main button[type=submit]")
    assert tab.page.locator(".verdict").is_visible()


def test_plate_check_page_meets_wcag_21_aa(site: Site, staff: Tab) -> None:
    _check_plate(staff, site.url)
    staff.check("console-plates")


def test_plate_check_page_reflows_at_320px(site: Site, phone: Tab) -> None:
    phone.sign_in(site.url)
    _check_plate(phone, site.url)
    assert_reflows(phone, "console-plates")
    phone.check("console-plates-320px")
