"""The staff scanner in real headless Chromium, with a fake camera showing real passes.

The service runs on 127.0.0.1 with its clock at NOW; every browser context gets
the same time (Playwright's clock) and the city's time zone, so these tests do not
depend on the day they run. The camera is a Y4M video made from the card PNG the
service prints for a pass, or from a phone screen showing a wallet app's QR code
(the compact JWS); each video needs a browser of its own. Set
WALLET_TEST_SCREENSHOTS to a folder to keep a screenshot of every view checked.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)
from PIL import Image, ImageDraw
from playwright.sync_api import expect

from tests.factories import (
    HOLDERS,
    NOW,
    City,
    copied_database,
    dev_services,
    dev_settings,
    fresh_holder,
)
from tests.web.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    axe_violations,
    live_server,
    requires_chromium,
)
from tests.web.fakecamera import camera_browser, video_of
from wallet.config import Settings
from wallet.formats.qr import render_png
from wallet.keystore import KeyStore
from wallet.services import passes
from wallet.services.context import Services
from wallet.services.publishing import status_list_uri
from wallet.store.db import Database
from wallet.tokens import sign_pass_token
from wallet.web import create_app
from wallet.web import scanner as scanner_routes
from wallet.web.scanner import ZXING_DIST

pytestmark = [
    requires_chromium,
    pytest.mark.skipif(
        not (ZXING_DIST / "reader" / "zxing_reader.wasm").is_file(),
        reason="the scanner's decoder comes from npm: run `npm ci` (scripts/test does)",
    ),
]

PHONE = {"width": 390, "height": 844}
NARROW = {"width": 320, "height": 640}
TIMEZONE = "Europe/Berlin"
VERDICT = "#verdict:not([hidden])"
WAIT_MS = 30_000
SCREENSHOTS = os.environ.get("WALLET_TEST_SCREENSHOTS", "")


@dataclass
class Clock:
    """The service's clock, which a test may move."""

    moment: datetime = NOW

    def __call__(self) -> datetime:
        return self.moment


@dataclass
class Site:
    url: str
    db: Database
    services: Services
    clock: Clock
    library: passes.IssuedPass
    parking: passes.IssuedPass
    to_revoke: passes.IssuedPass
    root_pem: bytes
    cards: dict[str, bytes] = field(default_factory=dict)  # card.png per pass name
    texts: dict[str, str] = field(default_factory=dict)  # more QR texts, by what they are

    def revoke(self, serial: str) -> None:
        with self.db.transaction(write=True) as session:
            passes.change_state(
                session, self.services, serial, action="revoke", reason="stolen",
                actor="test", now=self.clock(),
            )  # fmt: skip


def _issue(
    db: Database, services: Services, type_id: str, holder: dict[str, str] | None = None
) -> passes.IssuedPass:
    with db.transaction(write=True) as session:
        return passes.issue_pass(
            session, services, type_id=type_id, holder=holder or dict(HOLDERS[type_id]),
            actor="test", now=NOW,
        )  # fmt: skip


def _signed(
    keys: KeyStore,
    settings: Settings,
    *,
    uri: str,
    expires_at: datetime = NOW + timedelta(days=30),
    not_before: datetime | None = None,
) -> str:
    """A genuine parking token of this service's key, with the dates or list given."""
    return sign_pass_token(
        key=keys.current_signing_key("parking", now=NOW),
        issuer=settings.issuer,
        serial="SERIAL0123456789",
        pass_type="parking",
        holder=dict(HOLDERS["parking"]),
        issued_at=NOW - timedelta(days=40),
        expires_at=expires_at,
        not_before=not_before,
        status_idx=5,
        status_uri=uri,
    )


def _list_uri(token: str) -> str:
    """The status list a token points at (read without checking: the service made it)."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return str(claims["status"]["status_list"]["uri"])


def _forged(token: str) -> str:
    """The token with one character of its signature changed."""
    head, _, signature = token.rpartition(".")
    swapped = "A" if signature[10] != "A" else "B"
    return f"{head}.{signature[:10]}{swapped}{signature[11:]}"


@pytest.fixture(scope="module")
def site(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("scanner")
    settings = dev_settings(folder)
    services = dev_services(settings)
    keys = services.keys
    db = copied_database(sqlite_template, folder)
    clock = Clock()
    app = create_app(
        settings, services=services, db=db, clock=clock,
        config={"TESTING": True, "RATELIMIT_ENABLED": False},
    )  # fmt: skip
    library, parking = _issue(db, services, "library"), _issue(db, services, "parking")
    to_revoke = _issue(db, services, "library")
    suspended = _issue(db, services, "parking", fresh_holder("parking"))  # another car
    with db.transaction(write=True) as session:
        passes.change_state(
            session, services, suspended.record.serial, action="suspend", reason="unpaid",
            actor="test", now=NOW,
        )  # fmt: skip
    listed = _list_uri(parking.record.token)
    unlisted = status_list_uri(settings.public_url, "parking-999")
    texts = {
        "suspended": suspended.record.qr_text,
        "expired": _signed(keys, settings, uri=listed, expires_at=NOW - timedelta(days=1)),
        "not_yet_valid": _signed(keys, settings, uri=listed, not_before=NOW + timedelta(days=1)),
        "unlisted": _signed(keys, settings, uri=unlisted),
        "forged": _forged(parking.record.token),
    }
    client = app.test_client()
    cards = {
        name: client.get(f"/p/{issued.claim_secret}/card.png").data
        for name, issued in (("library", library), ("to_revoke", to_revoke))
    }
    with live_server(app) as url:
        yield Site(
            url=url, db=db, services=services, clock=clock, library=library, parking=parking,
            to_revoke=to_revoke, root_pem=keys.root_public_key(now=NOW).pem(), cards=cards,
            texts=texts,
        )  # fmt: skip
    db.dispose()


def phone_screen(text: str) -> bytes:
    """A phone showing a wallet app's pass: the QR code of ``text`` on a white screen."""
    code = Image.open(io.BytesIO(render_png(text, box_size=4))).convert("RGB")
    phone = Image.new("RGB", (420, 860), (20, 20, 24))
    draw = ImageDraw.Draw(phone)
    draw.rounded_rectangle((14, 14, 406, 846), radius=36, fill=(250, 250, 250))
    draw.rectangle((14, 80, 406, 200), fill=(11, 58, 117))  # the pass's coloured header
    side = 360
    phone.paste(code.resize((side, side), Image.Resampling.NEAREST), ((420 - side) // 2, 260))
    out = io.BytesIO()
    phone.save(out, format="PNG")
    return out.getvalue()


def spki_fingerprint(pem: bytes) -> str:
    der = load_pem_public_key(pem).public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    digest = hashlib.sha256(der).hexdigest().upper()
    return " ".join(digest[i : i + 4] for i in range(0, len(digest), 4))


class Scanner:
    """The scanner in a fresh browser context (its own IndexedDB and service worker)."""

    def __init__(self, browser: Any, site: Site, *, locale: str = "de-DE") -> None:
        self.site = site
        self.context = browser.new_context(
            locale=locale, timezone_id=TIMEZONE, viewport=PHONE, service_workers="allow"
        )
        self.context.clock.install(time=site.clock())
        self.page = self.context.new_page()
        self.complaints: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.complaints.append(f"page error: {error}"))

    def _console(self, message: Any) -> None:
        text = message.text
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            self.complaints.append(text)

    def open(self) -> None:
        self.page.goto(f"{self.site.url}/scan/")
        self.page.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)

    def open_and_sync(self) -> None:
        """The first, online visit: the key pinned, the bundle kept, the app cached."""
        self.open()
        self.wait_synced(1)
        self.page.wait_for_function(
            "() => navigator.serviceWorker.controller !== null", timeout=WAIT_MS
        )

    def synced(self) -> int:
        return int(self.page.get_attribute("body", "data-synced") or 0)

    def wait_synced(self, count: int) -> None:
        self.page.wait_for_function(
            f"() => Number(document.body.dataset.synced || 0) >= {count}", timeout=WAIT_MS
        )

    def sync_now(self) -> None:
        before = self.synced()
        self.page.click("#sync-now")
        self.wait_synced(before + 1)

    def go_offline_and_reload(self) -> None:
        self.context.set_offline(True)
        self.page.reload()
        self.page.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)

    def start_camera(self) -> None:
        """Started by itself when the camera was allowed before; else by a tap."""
        if self.page.is_visible("#camera-start"):
            self.page.click("#camera-start")

    def enter_and_read(self, text: str) -> dict[str, Any]:
        self.page.fill("#manual-text", text)
        self.page.click("#manual-form button[type=submit]")
        return self.verdict()

    def verdict(self) -> dict[str, Any]:
        self.page.wait_for_selector(VERDICT, timeout=WAIT_MS)
        verdict: dict[str, Any] = self.page.evaluate(
            """() => ({
                classes: document.getElementById("verdict").className,
                title: document.getElementById("verdict-title").textContent,
                type: document.getElementById("verdict-type").textContent,
                fields: [...document.querySelectorAll("#verdict-fields div")].map((row) =>
                    [row.querySelector("dt").textContent, row.querySelector("dd").textContent]),
                message: document.getElementById("verdict-message").textContent,
                admit: document.getElementById("verdict-admit").hidden
                    ? null : document.getElementById("verdict-admit").textContent,
                reason: document.getElementById("verdict-reason").textContent,
                focused: document.activeElement.id,
            })"""
        )
        verdict["tone"] = next(
            (t for t in ("green", "red", "amber") if f"verdict--{t}" in verdict["classes"]), None
        )
        return verdict

    def back(self) -> None:
        self.page.click("#verdict-back")
        self.page.wait_for_selector("#verdict", state="hidden")

    def check_page(self, name: str) -> None:
        """No WCAG 2.1 A/AA violation, no CSP complaint or script error; a screenshot if asked."""
        if SCREENSHOTS:
            Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)
        assert axe_violations(self.page) == [], name
        assert self.complaints == [], name

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    """One Playwright for the module: the browser without a camera and each camera browser."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(playwright: Any) -> Iterator[Any]:
    """A Chromium without a camera: manual entry, the hand scanner, sync."""
    running = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield running
    running.close()


@pytest.fixture
def scanner(browser: Any, site: Site) -> Iterator[Scanner]:
    opened = Scanner(browser, site)
    yield opened
    opened.close()


@pytest.fixture
def card_camera(playwright: Any, site: Site, tmp_path: Path) -> Iterator[Any]:
    """A browser whose camera sees the printed card of a valid library pass."""
    video = video_of(site.cards["library"], tmp_path / "card.y4m")
    with camera_browser(playwright, video) as running:
        yield running


# -- offline, with the camera ----------------------------------------------------------------------


def test_after_one_online_visit_the_camera_reads_a_printed_card_offline_and_shows_green(
    card_camera: Any, site: Site
) -> None:
    scanner = Scanner(card_camera, site)
    try:
        scanner.open_and_sync()
        workers: list[str] = []
        scanner.page.on("worker", lambda worker: workers.append(worker.url))
        scanner.go_offline_and_reload()
        assert "Kein Netz" in scanner.page.inner_text("#data-problem")
        scanner.start_camera()
        verdict = scanner.verdict()
        # headless Chromium on Linux has no BarcodeDetector: ZXing read it, in its worker
        assert [url.rsplit("/", 1)[-1] for url in workers] == ["decoder-worker.js"]
        assert verdict["tone"] == "green"
        assert verdict["title"] == "GÜLTIG"
        assert verdict["type"] == "Bibliotheksausweis"
        fields = dict(verdict["fields"])
        assert fields["Ausweisnummer"] == HOLDERS["library"]["card_number"]
        assert fields["Name"] == HOLDERS["library"]["name"]
        assert verdict["reason"] == "Grund: ok"
        assert verdict["focused"] == "verdict-title"  # read out first, reached first
        scanner.check_page("scanner-verdict-green-offline")
    finally:
        scanner.close()


_NATIVE_DETECTOR = """
    window.BarcodeDetector = class {
        static async getSupportedFormats() { return ["qr_code", "ean_13"]; }
        constructor(options) { window.detectorFormats = options.formats; }
        async detect(source) { return [{ rawValue: %s, format: "qr_code" }]; }
    };
"""

# A slow phone: importing the bundle's keys takes a while. The detector answers at once, so
# a scan right after "synced" must already meet the new verifier, not a half-made one.
_SLOW_KEY_IMPORT = """
    const importKey = crypto.subtle.importKey.bind(crypto.subtle);
    crypto.subtle.importKey = async (format, ...rest) => {
        if (format === "jwk") { await new Promise((done) => setTimeout(done, 400)); }
        return importKey(format, ...rest);
    };
"""


def test_a_browser_with_its_own_barcode_detector_uses_it_and_starts_no_decoder_worker(
    card_camera: Any, site: Site
) -> None:
    """Android's Chrome reads QR codes itself: no WebAssembly to start there."""
    scanner = Scanner(card_camera, site)
    try:
        scanner.context.add_init_script(_NATIVE_DETECTOR % json.dumps(site.parking.record.qr_text))
        scanner.context.add_init_script(_SLOW_KEY_IMPORT)
        workers: list[str] = []
        scanner.page.on("worker", lambda worker: workers.append(worker.url))
        scanner.open_and_sync()
        scanner.start_camera()
        verdict = scanner.verdict()
        assert verdict["type"] == "Bewohnerparkausweis"  # what the detector said, not the card
        assert scanner.page.evaluate("() => window.detectorFormats") == ["qr_code"]
        assert workers == []
    finally:
        scanner.close()


def test_a_pass_revoked_after_the_first_sync_is_red_once_the_app_synced_the_new_list(
    playwright: Any, site: Site, tmp_path: Path
) -> None:
    video = video_of(site.cards["to_revoke"], tmp_path / "revoked.y4m")
    with camera_browser(playwright, video) as camera:
        scanner = Scanner(camera, site)
        try:
            scanner.open_and_sync()
            scanner.start_camera()
            assert scanner.verdict()["tone"] == "green"
            site.revoke(site.to_revoke.record.serial)
            # The app comes back to the front (the officer switched apps): it syncs. Done
            # before "Scan next", so the card in view is not read with the old list first.
            before = scanner.synced()
            scanner.page.evaluate("() => window.dispatchEvent(new Event('focus'))")
            scanner.wait_synced(before + 1)
            scanner.back()
            verdict = scanner.verdict()  # the same card, still in front of the camera
            assert verdict["tone"] == "red"
            assert verdict["title"] == "WIDERRUFEN"
            assert "widerrufen" in verdict["message"].lower()
            scanner.check_page("scanner-verdict-red")
        finally:
            scanner.close()


def test_a_wallet_apps_qr_code_on_a_phone_screen_is_read_offline(
    playwright: Any, site: Site, tmp_path: Path
) -> None:
    screen = phone_screen(site.parking.record.token)  # wallet apps carry the compact JWS
    with camera_browser(playwright, video_of(screen, tmp_path / "phone.y4m")) as camera:
        scanner = Scanner(camera, site)
        try:
            scanner.open_and_sync()
            scanner.go_offline_and_reload()
            scanner.start_camera()
            verdict = scanner.verdict()
            assert verdict["tone"] == "green"
            assert verdict["type"] == "Bewohnerparkausweis"
            fields = dict(verdict["fields"])
            assert fields["Kennzeichen"] == HOLDERS["parking"]["plate"]
            assert fields["Zone"] == HOLDERS["parking"]["zone"]
        finally:
            scanner.close()


@pytest.mark.parametrize(
    ("which", "tone", "title"),
    [
        ("suspended", "amber", "GESPERRT"),
        ("expired", "red", "ABGELAUFEN"),
        ("forged", "red", "UNGÜLTIG"),
        ("unlisted", "amber", "STATUS NICHT PRÜFBAR"),
    ],
)
def test_the_camera_offline_gives_each_kind_of_pass_its_verdict(
    playwright: Any, site: Site, tmp_path: Path, which: str, tone: str, title: str
) -> None:
    """The camera path, not only typed entry: a phone screen showing each kind of QR code."""
    video = video_of(phone_screen(site.texts[which]), tmp_path / f"{which}.y4m")
    with camera_browser(playwright, video) as camera:
        scanner = Scanner(camera, site)
        try:
            scanner.open_and_sync()
            scanner.go_offline_and_reload()
            scanner.start_camera()
            verdict = scanner.verdict()
            assert (verdict["tone"], verdict["title"]) == (tone, title), verdict
        finally:
            scanner.close()


# -- trust -----------------------------------------------------------------------------------------


def test_a_sync_that_brings_nothing_new_costs_a_304_not_the_bundle(
    scanner: Scanner, site: Site
) -> None:
    asked: list[dict[str, str]] = []  # each bundle request's headers
    scanner.page.on(
        "request",
        lambda r: asked.append(r.all_headers()) if r.url.endswith("/verifier/bundle") else None,
    )
    scanner.open_and_sync()
    scanner.sync_now()
    assert len(asked) == 2
    assert "if-none-match" not in asked[0]
    # the second asks "changed since?" (Chromium then reports the 304 as the cached 200)
    assert asked[1]["if-none-match"].strip('"') == _bundle_etag(scanner)
    assert scanner.page.inner_text("#stand").startswith("Stand: heute")


def _bundle_etag(scanner: Scanner) -> str:
    response = scanner.context.request.get(f"{scanner.site.url}/verifier/bundle")
    return response.headers["etag"].strip('"')


def test_a_new_version_of_the_app_takes_over_between_two_scans(
    scanner: Scanner, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never a page of the old version running modules of the new one: reload after a verdict."""
    scanner.open_and_sync()
    # the first visit (installed meanwhile), then a start of the installed app
    for version in ("second", "third"):
        scanner.enter_and_read(site.library.record.qr_text)
        monkeypatch.setattr(scanner_routes, "app_version", lambda version=version: version)
        scanner.page.evaluate(_UPDATE_APP)
        assert scanner.page.is_visible(VERDICT)  # the officer still reads the verdict
        with scanner.page.expect_navigation():
            scanner.page.click("#verdict-back")
        scanner.page.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)
        assert scanner.page.is_hidden(VERDICT)


_UPDATE_APP = """async () => {
    const workers = navigator.serviceWorker;
    const changed = new Promise((resolve) =>
        workers.addEventListener("controllerchange", resolve, {once: true}));
    await (await workers.getRegistration()).update();
    await changed;
}"""


def test_chromium_finds_the_app_installable(scanner: Scanner) -> None:
    """Manifest, icons, scope and an offline-capable service worker, as the browser judges."""
    scanner.open_and_sync()
    session = scanner.context.new_cdp_session(scanner.page)
    found = session.send("Page.getInstallabilityErrors")["installabilityErrors"]
    # Playwright's contexts are incognito profiles, where nothing installs: the only
    # complaint allowed is that one, about the browser rather than the app.
    assert [e["errorId"] for e in found if e["errorId"] != "in-incognito"] == [], found
    manifest = session.send("Page.getAppManifest")
    assert manifest["errors"] == [], manifest["errors"]


def test_the_root_key_fingerprint_shown_is_the_services_root_key(
    scanner: Scanner, site: Site
) -> None:
    scanner.open_and_sync()
    assert scanner.page.inner_text("#fingerprint") == spki_fingerprint(site.root_pem)


def test_a_bundle_signed_by_another_root_is_refused_and_the_pinned_key_kept(
    scanner: Scanner, site: Site
) -> None:
    """A man in the middle (or a changed server) offers another root and its bundle."""
    scanner.open_and_sync()
    stranger = City(now=NOW)
    foreign = stranger.signed_bundle(version=10_000)
    scanner.context.route(
        "**/verifier/bundle",
        lambda route: route.fulfill(status=200, content_type="application/jwt", body=foreign),
    )
    scanner.context.route(
        "**/verifier/root-key.pem",
        lambda route: route.fulfill(status=200, body=stranger.root.public().pem()),
    )
    scanner.sync_now()
    problem = scanner.page.inner_text("#data-problem")
    assert "abgelehnt" in problem and "nicht mit dem Schlüssel dieses Scanners signiert" in problem
    scanner.open()  # a reload does not re-pin the offered key either
    scanner.wait_synced(1)
    assert "abgelehnt" in scanner.page.inner_text("#data-problem")
    assert scanner.page.inner_text("#fingerprint") == spki_fingerprint(site.root_pem)
    # the held bundle still verifies genuine passes; the stranger's passes are not trusted
    assert scanner.enter_and_read(site.library.record.qr_text)["tone"] == "green"
    scanner.back()
    assert scanner.enter_and_read(stranger.issue_qr("library"))["tone"] == "red"


def test_a_captive_portal_page_is_never_pinned_as_the_root_key(
    scanner: Scanner, site: Site
) -> None:
    """The first visit on a network that answers everything with its sign-in page."""
    portal = "<!doctype html><title>WLAN-Anmeldung</title><p>Bitte anmelden</p>"
    scanner.context.route(
        "**/verifier/root-key.pem",
        lambda route: route.fulfill(status=200, content_type="text/html", body=portal),
    )
    scanner.open()
    assert "Schlüssel des Dienstes ist noch nicht gespeichert" in scanner.page.inner_text(
        "#data-problem"
    )
    assert scanner.page.inner_text("#fingerprint") == "\N{EN DASH}"  # nothing pinned
    scanner.context.unroute("**/verifier/root-key.pem")
    scanner.open_and_sync()  # the real network: now the service's key is pinned
    assert scanner.page.inner_text("#fingerprint") == spki_fingerprint(site.root_pem)
    assert scanner.page.inner_text("#stand").startswith("Stand: heute")


def test_stale_status_data_is_amber_and_the_type_policy_decides_admission(
    scanner: Scanner, site: Site
) -> None:
    """Offline for three days: the status lists (two days) are stale, the bundle (7) is not."""
    scanner.open_and_sync()
    scanner.context.set_offline(True)
    scanner.context.clock.set_system_time(NOW + timedelta(days=3))
    library = scanner.enter_and_read(site.library.record.qr_text)
    assert library["tone"] == "amber"
    assert library["title"] == "STATUS NICHT PRÜFBAR"
    assert library["admit"] == "Für diese Ausweisart trotzdem anerkennen."
    scanner.check_page("scanner-verdict-amber")
    scanner.back()
    parking = scanner.enter_and_read(site.parking.record.token)
    assert parking["tone"] == "amber"
    assert parking["admit"] == "Nicht anerkennen."  # parking fails closed
    scanner.back()
    assert "heute" not in scanner.page.inner_text("#stand")  # the data's age says so


def test_an_expired_bundle_stops_being_used_even_while_the_app_stays_open(
    scanner: Scanner, site: Site
) -> None:
    """Offline for eight days: the bundle (seven) has expired; nothing is judged with it."""
    scanner.open_and_sync()
    scanner.context.set_offline(True)
    scanner.context.clock.set_system_time(NOW + timedelta(days=8))
    verdict = scanner.enter_and_read(site.library.record.qr_text)
    assert verdict["tone"] == "amber"
    assert verdict["title"] == "Prüfung nicht möglich"
    assert "abgelaufen" in verdict["message"]
    assert verdict["admit"] == "Nicht anerkennen."
    scanner.back()
    assert "abgelaufen" in scanner.page.inner_text("#data-problem")
    scanner.open()  # and not after a restart either
    assert "abgelaufen" in scanner.page.inner_text("#data-problem")


def test_the_keyboard_goes_from_the_verdict_back_to_scanning(scanner: Scanner, site: Site) -> None:
    scanner.open_and_sync()
    assert scanner.enter_and_read(site.library.record.qr_text)["focused"] == "verdict-title"
    scanner.page.keyboard.press("Tab")
    assert scanner.page.evaluate("() => document.activeElement.id") == "verdict-back"
    scanner.page.keyboard.press("Enter")
    scanner.page.wait_for_selector("#verdict", state="hidden")
    assert scanner.page.evaluate("() => document.activeElement.id") == "camera-state"
    # a hand scanner's next code reaches the page from there
    scanner.page.keyboard.type(site.parking.record.qr_text)
    scanner.page.keyboard.press("Enter")
    assert scanner.verdict()["type"] == "Bewohnerparkausweis"


_RECORD_VIBRATIONS = """
    window.vibrations = [];
    navigator.vibrate = (pattern) => { window.vibrations.push(pattern); return true; };
"""


def test_each_colour_vibrates_in_its_own_pattern(scanner: Scanner, site: Site) -> None:
    """Felt without looking: green, red and amber never buzz alike."""
    scanner.context.add_init_script(_RECORD_VIBRATIONS)
    scanner.open_and_sync()
    for text in (site.library.record.qr_text, site.texts["forged"], site.texts["unlisted"]):
        scanner.enter_and_read(text)
        scanner.back()
    patterns = scanner.page.evaluate("() => window.vibrations")
    assert len(patterns) == 3
    assert len({tuple(p) for p in patterns}) == 3, patterns


# -- entry without the camera ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("which", "tone", "title"),
    [
        ("suspended", "amber", "GESPERRT"),
        ("expired", "red", "ABGELAUFEN"),
        ("not_yet_valid", "red", "NOCH NICHT GÜLTIG"),
        ("forged", "red", "UNGÜLTIG"),
        ("unlisted", "amber", "STATUS NICHT PRÜFBAR"),  # its status list is in no bundle
    ],
)
def test_each_kind_of_pass_gets_the_verdict_of_the_verifier(
    scanner: Scanner, site: Site, which: str, tone: str, title: str
) -> None:
    scanner.open_and_sync()
    verdict = scanner.enter_and_read(site.texts[which])
    assert (verdict["tone"], verdict["title"]) == (tone, title), verdict


def test_manual_entry_of_the_compact_jws_shows_the_pass(scanner: Scanner, site: Site) -> None:
    scanner.open_and_sync()
    verdict = scanner.enter_and_read(site.parking.record.token)
    assert verdict["tone"] == "green"
    assert dict(verdict["fields"])["Kennzeichen"] == HOLDERS["parking"]["plate"]


def test_a_hand_scanner_typing_the_qr_text_and_enter_is_checked(
    scanner: Scanner, site: Site
) -> None:
    scanner.open_and_sync()
    scanner.page.evaluate("() => document.activeElement.blur()")
    scanner.page.keyboard.type(site.library.record.qr_text)
    scanner.page.keyboard.press("Enter")
    assert scanner.verdict()["tone"] == "green"


def test_the_scan_log_keeps_time_type_and_verdict_only_and_is_cleared_with_one_tap(
    scanner: Scanner, site: Site
) -> None:
    scanner.open_and_sync()
    scanner.enter_and_read(site.library.record.qr_text)
    scanner.back()
    scanner.enter_and_read("WP1" + "12345" * 20)
    scanner.back()
    rows = scanner.page.locator("#log-rows li")
    # The verdict is on screen before its log line is stored and drawn (the log
    # must never slow a verdict), so wait for the line instead of counting at once.
    expect(rows).to_have_count(2)
    log = scanner.page.inner_text("#log-rows")
    assert "Bibliotheksausweis" in log and "GÜLTIG" in log and "UNGÜLTIG" in log
    for secret in (HOLDERS["library"]["name"], HOLDERS["library"]["card_number"],
                   site.library.record.serial):  # fmt: skip
        assert secret not in log
    scanner.check_page("scanner-scanning-with-log")
    scanner.page.click("#log-clear")
    expect(rows).to_have_count(0)
    expect(scanner.page.locator("#log-empty")).to_be_visible()
    scanner.open()  # cleared on the device, not only on the screen
    expect(scanner.page.locator("#log-empty")).to_be_visible()
    assert rows.count() == 0


def test_serial_numbers_go_into_the_log_only_when_the_officer_switches_it_on(
    scanner: Scanner, site: Site
) -> None:
    rows = scanner.page.locator("#log-rows li")  # each read waits for its line (see above)
    scanner.open_and_sync()
    assert not scanner.page.is_checked("#log-serials")  # off unless chosen
    scanner.enter_and_read(site.library.record.qr_text)
    scanner.back()
    expect(rows).to_have_count(1)
    assert site.library.record.serial not in scanner.page.inner_text("#log-rows")
    scanner.page.check("#log-serials")
    scanner.enter_and_read(site.library.record.qr_text)
    scanner.back()
    expect(rows).to_have_count(2)
    assert site.library.record.serial in scanner.page.inner_text("#log-rows")
    scanner.open()  # the choice is kept on the device
    assert scanner.page.is_checked("#log-serials")
    scanner.page.uncheck("#log-serials")
    scanner.enter_and_read(site.library.record.qr_text)
    scanner.back()
    expect(rows).to_have_count(3)
    assert scanner.page.locator("#log-rows .log__serial").count() == 1  # only the one opted in


# -- language, WCAG, narrow screens ----------------------------------------------------------------


def test_english_is_one_tap_away_and_kept(scanner: Scanner, site: Site) -> None:
    scanner.open_and_sync()
    assert scanner.page.get_attribute("html", "lang") == "de"
    scanner.page.click("#lang-switch")
    assert scanner.page.get_attribute("html", "lang") == "en"
    assert scanner.page.inner_text("#sync-now") == "Update now"
    assert scanner.page.inner_text("#stand").startswith("Updated: today")
    verdict = scanner.enter_and_read(site.library.record.qr_text)
    assert verdict["title"] == "VALID" and verdict["type"] == "Library card"
    scanner.check_page("scanner-verdict-green-en")
    scanner.back()
    scanner.context.set_offline(True)
    scanner.sync_now()
    assert scanner.page.inner_text("#data-problem").startswith("No network")
    scanner.page.click("#lang-switch")  # what is on screen changes language too
    assert scanner.page.inner_text("#data-problem").startswith("Kein Netz")
    scanner.page.click("#lang-switch")
    scanner.context.set_offline(False)
    scanner.open()
    assert scanner.page.get_attribute("html", "lang") == "en"


_OVERFLOW = """() => {
    const width = document.documentElement.clientWidth;
    const wide = [...document.querySelectorAll("body *")].filter(e => {
        const box = e.getBoundingClientRect();
        return box.width > 0 && (box.right > width + 0.5 || box.left < -0.5)
            && !e.closest(".visually-hidden");
    }).map(e => e.tagName + "#" + e.id + "." + e.className);
    return {scroll: document.documentElement.scrollWidth, width, wide};
}"""


def assert_reflows(scanner: Scanner, name: str) -> None:
    found = scanner.page.evaluate(_OVERFLOW)
    assert found["width"] == NARROW["width"], name
    assert found["scroll"] <= NARROW["width"], f"{name} scrolls sideways: {found}"
    assert found["wide"] == [], f"{name}: wider than the screen: {found['wide']}"


def test_the_scanner_page_itself_may_not_compile_webassembly(scanner: Scanner) -> None:
    """Only the decoder's worker may: a script slipped into the page gets no wasm."""
    scanner.open()
    outcome = scanner.page.evaluate(
        """async () => {
            const empty = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]);  // a valid, empty module
            try { await WebAssembly.compile(empty); return "compiled"; }
            catch (error) { return error.name; }
        }"""
    )
    assert outcome == "CompileError"
    scanner.complaints.clear()  # the refusal is reported as a CSP complaint, as it should be


def test_scanning_view_with_the_camera_running_meets_wcag_21_aa(
    playwright: Any, site: Site, tmp_path: Path
) -> None:
    blank = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 200, 200)).save(blank, format="PNG")
    with camera_browser(playwright, video_of(blank.getvalue(), tmp_path / "blank.y4m")) as camera:
        scanner = Scanner(camera, site)
        try:
            scanner.open_and_sync()
            scanner.start_camera()
            expect(scanner.page.locator("#camera-state")).to_have_text(
                "Halten Sie den QR-Code des Ausweises vor die Kamera."
            )
            assert scanner.page.evaluate("() => document.getElementById('video').videoWidth") > 0
            scanner.check_page("scanner-scanning-camera")
        finally:
            scanner.close()


def test_scanning_and_verdict_views_reflow_at_320px(scanner: Scanner, site: Site) -> None:
    scanner.page.set_viewport_size(NARROW)
    scanner.open_and_sync()
    scanner.enter_and_read(site.library.record.qr_text)
    scanner.back()
    assert_reflows(scanner, "scanning")
    scanner.check_page("scanner-scanning-320px")
    for text in (site.parking.record.token, "WP1" + "12345" * 20):
        scanner.enter_and_read(text)
        assert_reflows(scanner, "verdict")
        button = scanner.page.locator("#verdict-back").bounding_box()
        assert button is not None and button["height"] >= 48  # a large touch target
        scanner.check_page("scanner-verdict-320px")
        scanner.back()


def _pairing_code(site: Site, name: str = "Handy Außendienst 3") -> tuple[str, str]:
    from wallet.domain import Role
    from wallet.services import devices

    with site.db.transaction(write=True) as session:
        pairing = devices.start_pairing(
            session, name=name, role="verifier", actor="user:vera", actor_role=Role.VERIFIER,
            audit_key=site.services.audit_key, now=site.clock(),
        )  # fmt: skip
    return pairing.code, pairing.device.device_id


def _device(site: Site, device_id: str) -> Any:
    from wallet.services import devices

    with site.db.transaction(write=False) as session:
        return devices.get_device(session, device_id)


def test_opening_the_consoles_pairing_link_pairs_the_phone_and_syncs_as_that_device(
    scanner: Scanner, site: Site
) -> None:
    code, device_id = _pairing_code(site)
    scanner.page.goto(f"{site.url}/scan/#pair={code}")
    scanner.page.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)
    assert "#pair" not in scanner.page.url  # the one-time code left the address bar at once
    scanner.page.wait_for_function(
        "() => document.getElementById('device').textContent.includes('Handy Außendienst 3')",
        timeout=WAIT_MS,
    )
    assert "gekoppelt" in scanner.page.inner_text("#pairing-state").lower()
    scanner.wait_synced(1)
    held = scanner.page.evaluate(
        """() => new Promise((resolve) => {
            const open = indexedDB.open("wallet-scanner");
            open.onsuccess = () => {
              const get = open.result.transaction("state").objectStore("state").get("device");
              get.onsuccess = () => resolve(get.result);
            };
        })"""
    )
    assert held["credential"].startswith("wpd_") and held["id"] == device_id
    assert _device(site, device_id).last_sync_at is not None  # it synced with its credential
    assert scanner.complaints == []


def test_a_pairing_qr_scanned_in_the_app_pairs_instead_of_giving_a_verdict(
    scanner: Scanner, site: Site
) -> None:
    scanner.open_and_sync()
    code, device_id = _pairing_code(site, "Handy Kasse")
    scanner.page.fill("#manual-text", f"{site.url}/scan/#pair={code}")
    scanner.page.press("#manual-text", "Enter")
    scanner.page.wait_for_function(
        "() => document.getElementById('device').textContent.includes('Handy Kasse')",
        timeout=WAIT_MS,
    )
    assert scanner.page.is_hidden("#verdict")
    assert _device(site, device_id).state.value == "active"


def test_a_used_pairing_code_is_refused_with_what_to_do(scanner: Scanner, site: Site) -> None:
    code, _ = _pairing_code(site)
    first = Scanner(scanner.page.context.browser, site)
    try:
        first.page.goto(f"{site.url}/scan/#pair={code}")
        first.page.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)
        first.page.wait_for_function(
            "() => !document.getElementById('pairing-state').hidden", timeout=WAIT_MS
        )
    finally:
        first.close()
    scanner.page.goto(f"{site.url}/scan/#pair={code}")
    scanner.page.wait_for_function(
        "() => !document.getElementById('pairing-state').hidden", timeout=WAIT_MS
    )
    assert "einen neuen anzeigen" in scanner.page.inner_text("#pairing-state")


def test_a_device_revoked_in_the_console_is_told_so_at_its_next_sync(
    scanner: Scanner, site: Site
) -> None:
    from wallet.services import devices

    code, device_id = _pairing_code(site)
    scanner.page.goto(f"{site.url}/scan/#pair={code}")
    scanner.page.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)
    scanner.wait_synced(1)
    with site.db.transaction(write=True) as session:
        devices.revoke_device(session, device_id=device_id, actor="user:admin",
                              audit_key=site.services.audit_key, now=site.clock())  # fmt: skip
    scanner.sync_now()
    assert "gesperrt" in scanner.page.inner_text("#data-problem")
