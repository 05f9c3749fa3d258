"""The citizen's downloads behind the claim link: Apple, Google, the printable card.

Every wrapping must carry the stored, signed token (so staff check them all the
same way), a revoked pass must not be handed out in any of them, and a guessed
link must give away nothing.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pypdfium2 as pdfium
import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.factories import NOW
from tests.openssl import OPENSSL, openssl_verify
from tests.standins.google_wallet import (
    ISSUER_ID,
    PRIVATE_KEY_ID,
    SERVICE_ACCOUNT_EMAIL,
    GoogleWalletStandIn,
    service_account_key,
)
from tests.wallets.conftest import StoredPass
from wallet.bundle import root_public_key, verify_bundle
from wallet.formats import google
from wallet.formats.pkpass import read_pkpass
from wallet.formats.printable import A4_HEIGHT_MM, A4_WIDTH_MM, CARD_HEIGHT_MM, CARD_WIDTH_MM
from wallet.formats.qrimage import read_qr_image
from wallet.qrtext import encode_qr_text
from wallet.services import passes, publishing, wallets
from wallet.services.context import Services
from wallet.store.db import Database
from wallet.verifier import Verifier
from wallet.web import citizen, create_app

PT_PER_MM = 72 / 25.4
PKPASS = "application/vnd.apple.pkpass"
ZIP_MAGIC = b"PK\x03\x04"
PDF_MAGIC = b"%PDF"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
MAC_SAFARI = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Safari/605.1.15"
)
MAC_CHROME = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)
WINDOWS_FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0"
DOWNLOADS = ("pass.pkpass", "google-wallet", "card.pdf", "card.pdf?layout=sheet", "card.png")

Issue = Callable[..., StoredPass]
Change = Callable[..., None]


@pytest.fixture
def client_without_google(db: Database, services: Services) -> FlaskClient:
    """The app as tests/web builds it: development mode, no Google Wallet issuer."""
    assert not services.settings.google_enabled
    app = create_app(
        services.settings,
        services=services,
        db=db,
        clock=lambda: NOW,
        config={"TESTING": True, "RATELIMIT_ENABLED": False},
    )
    return app.test_client()


def offline_verifier(db: Database, services: Services) -> Verifier:
    """What a staff device holds: the bundle published at NOW, checked against the root key."""
    with db.transaction(write=True) as session:
        token = publishing.publish_bundle(session, services, now=NOW).token
    root = root_public_key(services.keys.root_public_key(now=NOW).pem())
    return Verifier(verify_bundle(token, root, now=NOW))


def pdf_page(data: bytes) -> tuple[int, tuple[float, float], str]:
    """Page count, first page size in points, and its text."""
    document = pdfium.PdfDocument(data)
    try:
        page = document[0]
        return len(document), page.get_size(), str(page.get_textpage().get_text_range())
    finally:
        document.close()


def save_link_claims(location: str) -> dict[str, Any]:
    """The save JWT's claims, verified with the service account's public key only."""
    assert location.startswith(google.SAVE_URL_PREFIX)
    token = location.removeprefix(google.SAVE_URL_PREFIX)
    header = jwt.get_unverified_header(token)
    assert (header["alg"], header["kid"]) == ("RS256", PRIVATE_KEY_ID)
    return jwt.decode(
        token,
        service_account_key().public_key(),
        algorithms=["RS256"],
        audience="google",
        issuer=SERVICE_ACCOUNT_EMAIL,
        # iat is the app's fixed clock (NOW), not the wall clock; it is compared exactly below.
        options={
            "require": ["iss", "aud", "iat", "typ", "origins", "payload"],
            "verify_iat": False,
        },
    )


def link_positions(html: str, secret: str) -> dict[str, int]:
    """Where each way of keeping the pass is linked on the page (-1: not at all)."""
    base = f"/p/{secret}/"
    targets = {
        "apple": "pass.pkpass",
        "google": "google-wallet",
        "print": "card.pdf?layout=sheet",
    }
    return {name: html.find(f'href="{base}{target}"') for name, target in targets.items()}


def assert_html_page_without_a_file(response: TestResponse) -> None:
    assert response.mimetype == "text/html"
    assert "Content-Disposition" not in response.headers
    assert "Location" not in response.headers
    assert not response.data.startswith((ZIP_MAGIC, PDF_MAGIC, PNG_MAGIC))
    assert b"<html" in response.data


# --- Apple Wallet -----------------------------------------------------------------------


def test_pkpass_download_is_a_signed_pass_carrying_the_stored_token(
    wallet_client: FlaskClient,
    wallet_services: Services,
    issue: Issue,
    db: Database,
    dev_chain_folder: Path,
    tmp_path: Path,
) -> None:
    issued = issue()
    row = issued.row
    response = wallet_client.get(f"/p/{issued.claim_secret}/pass.pkpass")
    assert response.status_code == 200
    assert response.mimetype == PKPASS
    assert response.headers["Content-Disposition"] == 'attachment; filename="library.pkpass"'
    assert response.headers["Cache-Control"] == "no-store"

    files = read_pkpass(response.data)
    manifest = json.loads(files["manifest.json"])
    assert set(manifest) == set(files) - {"manifest.json", "signature"}
    assert {"pass.json", "icon.png"} <= set(manifest)
    for name, digest in manifest.items():
        assert hashlib.sha1(files[name]).hexdigest() == digest, name

    document = json.loads(files["pass.json"])
    message = document["barcodes"][0]["message"]
    assert message == row.token
    result = offline_verifier(db, wallet_services).check(message, now=NOW)
    assert (result.state, result.claims["serial"]) == ("valid", row.serial)
    assert document["serialNumber"] == row.serial
    assert document["authenticationToken"] == row.apple_auth_token
    assert document["webServiceURL"] == wallet_services.settings.public_url + "/apple"
    assert "voided" not in document


@pytest.mark.skipif(not OPENSSL.exists(), reason="needs /usr/bin/openssl")
def test_pkpass_signature_verifies_with_openssl_and_a_tampered_manifest_does_not(
    wallet_client: FlaskClient, issue: Issue, dev_chain_folder: Path, tmp_path: Path
) -> None:
    issued = issue()
    files = read_pkpass(wallet_client.get(f"/p/{issued.claim_secret}/pass.pkpass").data)
    root = dev_chain_folder / "root.pem"
    assert (
        openssl_verify(
            tmp_path, files["signature"], files["manifest.json"], root, at=NOW
        ).returncode
        == 0
    )

    manifest = json.loads(files["manifest.json"])
    manifest["pass.json"] = hashlib.sha1(b"a pass.json of the attacker's choosing").hexdigest()
    tampered = json.dumps(manifest, sort_keys=True, indent=2).encode("utf-8")
    assert tampered != files["manifest.json"]
    assert openssl_verify(tmp_path, files["signature"], tampered, root, at=NOW).returncode != 0


# --- Google Wallet ----------------------------------------------------------------------


def test_google_wallet_redirects_to_a_short_save_link_after_inserting_the_object(
    wallet_client: FlaskClient,
    wallet_services: Services,
    issue: Issue,
    google_wallet_server: GoogleWalletStandIn,
) -> None:
    issued = issue()
    row = issued.row
    response = wallet_client.get(f"/p/{issued.claim_secret}/google-wallet")
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith(google.SAVE_URL_PREFIX)
    assert len(location) <= google.MAX_SAVE_LINK_LENGTH

    claims = save_link_claims(location)
    object_id = f"{ISSUER_ID}.{row.serial}"
    assert claims["typ"] == "savetowallet"
    assert claims["origins"] == [wallet_services.settings.public_url]
    assert claims["iat"] == int(NOW.timestamp())
    # The whole object would not fit in a link: it went over REST, the link names its id only.
    assert claims["payload"] == {"genericObjects": [{"id": object_id}]}

    stored = google_wallet_server.objects[object_id]
    assert stored["barcode"]["value"] == row.token
    assert stored["state"] == "ACTIVE"
    assert stored["classId"] == f"{ISSUER_ID}.library"
    assert stored["classId"] in google_wallet_server.classes
    inserted = [(r.method, r.path.rsplit("/", 1)[-1]) for r in google_wallet_server.api_requests()]
    assert ("POST", "genericClass") in inserted and ("POST", "genericObject") in inserted


def test_save_link_that_fits_whole_creates_the_class_first(
    wallet_client: FlaskClient,
    wallet_services: Services,
    issue: Issue,
    google_wallet_server: GoogleWalletStandIn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Were Google's limit ever large enough for a whole object, the link carries its class.

    Today's objects (3,400+ characters) never fit, so the limit is raised here to reach
    the path: Google refuses a saved object whose class it does not have.
    """
    monkeypatch.setattr(google, "MAX_SAVE_LINK_LENGTH", 100_000)
    issued = issue()
    response = wallet_client.get(f"/p/{issued.claim_secret}/google-wallet")
    assert response.status_code == 303
    payload = save_link_claims(response.headers["Location"])["payload"]
    (whole,) = payload["genericObjects"]
    assert whole["id"] == f"{ISSUER_ID}.{issued.row.serial}"
    assert whole["barcode"]["value"] == issued.row.token
    (carried,) = payload["genericClasses"]
    assert carried["id"] == whole["classId"] == f"{ISSUER_ID}.library"
    assert carried == wallets.google_class(wallet_services, "library")
    assert google_wallet_server.api_requests() == []  # nothing over REST: the link does it all


def test_google_wallet_unavailable_shows_a_try_again_page_and_recovers(
    wallet_client: FlaskClient, issue: Issue, google_wallet_server: GoogleWalletStandIn
) -> None:
    issued = issue()
    google_wallet_server.fail_next(1, status=503)
    response = wallet_client.get(f"/p/{issued.claim_secret}/google-wallet?lang=en")
    # A DeliveryError (Google down) is "try again later", not a crash of ours.
    assert response.status_code == 503
    assert_html_page_without_a_file(response)
    page = response.get_data(as_text=True)
    assert "Please try again in a few minutes." in page
    assert "Traceback" not in page and "DeliveryError" not in page
    assert google_wallet_server.objects == {}

    retried = wallet_client.get(f"/p/{issued.claim_secret}/google-wallet")
    assert retried.status_code == 303
    assert f"{ISSUER_ID}.{issued.row.serial}" in google_wallet_server.objects


def test_google_wallet_without_google_configuration_answers_503_with_a_page(
    client_without_google: FlaskClient, issue: Issue
) -> None:
    issued = issue()
    response = client_without_google.get(f"/p/{issued.claim_secret}/google-wallet?lang=en")
    assert response.status_code == 503
    assert_html_page_without_a_file(response)
    assert "Please try again in a few minutes." in response.get_data(as_text=True)


# --- the printable card -----------------------------------------------------------------


def test_card_pdf_is_one_id1_page_and_the_sheet_is_a4(
    wallet_client: FlaskClient, issue: Issue
) -> None:
    secret = issue().claim_secret
    card = wallet_client.get(f"/p/{secret}/card.pdf")
    assert card.status_code == 200
    assert card.mimetype == "application/pdf"
    assert card.headers["Content-Disposition"] == 'attachment; filename="library-card.pdf"'
    pages, size, _ = pdf_page(card.data)
    assert pages == 1
    assert size == pytest.approx((CARD_WIDTH_MM * PT_PER_MM, CARD_HEIGHT_MM * PT_PER_MM), abs=0.1)
    assert size == pytest.approx((242.65, 153.01), abs=0.1)

    sheet = wallet_client.get(f"/p/{secret}/card.pdf?layout=sheet")
    assert sheet.status_code == 200
    assert sheet.mimetype == "application/pdf"
    assert sheet.headers["Content-Disposition"] == 'attachment; filename="library-a4.pdf"'
    pages, size, _ = pdf_page(sheet.data)
    assert pages == 1
    assert size == pytest.approx((A4_WIDTH_MM * PT_PER_MM, A4_HEIGHT_MM * PT_PER_MM), abs=0.1)


def test_card_pdf_is_printed_in_the_language_asked_for(
    wallet_client: FlaskClient, issue: Issue
) -> None:
    issued = issue()
    _, _, german = pdf_page(wallet_client.get(f"/p/{issued.claim_secret}/card.pdf").data)
    assert "Ausweisnummer" in german and "Seriennummer" in german
    _, _, english = pdf_page(wallet_client.get(f"/p/{issued.claim_secret}/card.pdf?lang=en").data)
    assert "Card number" in english and "Serial number" in english
    assert "City Libraries" in english
    assert "Ausweisnummer" not in english
    assert issued.row.serial in english


def test_card_png_carries_the_pass_qr_code(wallet_client: FlaskClient, issue: Issue) -> None:
    issued = issue()
    row = issued.row
    response = wallet_client.get(f"/p/{issued.claim_secret}/card.png")
    assert response.status_code == 200
    assert response.mimetype == "image/png"
    assert response.headers["Content-Disposition"] == 'attachment; filename="library-card.png"'
    assert response.data.startswith(PNG_MAGIC)
    assert read_qr_image(response.data) == encode_qr_text(row.token)


# --- revoked and suspended passes -------------------------------------------------------


@pytest.mark.parametrize("route", DOWNLOADS)
def test_revoked_pass_is_not_handed_out(
    wallet_client: FlaskClient,
    issue: Issue,
    change: Change,
    google_wallet_server: GoogleWalletStandIn,
    route: str,
) -> None:
    issued = issue()
    change(issued.row.serial, "revoke", "lost")
    separator = "&" if "?" in route else "?"
    response = wallet_client.get(f"/p/{issued.claim_secret}/{route}{separator}lang=en")
    assert response.status_code == 410
    assert_html_page_without_a_file(response)
    assert "No QR code for a revoked pass" in response.get_data(as_text=True)
    assert google_wallet_server.api_requests() == []


@pytest.mark.parametrize("route", DOWNLOADS)
def test_suspended_pass_is_not_handed_out_for_now(
    wallet_client: FlaskClient,
    issue: Issue,
    change: Change,
    google_wallet_server: GoogleWalletStandIn,
    route: str,
) -> None:
    """A suspended holder downloads nothing (409, a page saying why); reinstating ends that."""
    issued = issue("parking")
    change(issued.row.serial, "suspend", "moving house")
    separator = "&" if "?" in route else "?"
    response = wallet_client.get(f"/p/{issued.claim_secret}/{route}{separator}lang=en")
    assert response.status_code == 409
    assert_html_page_without_a_file(response)
    assert "No downloads while the pass is suspended" in response.get_data(as_text=True)
    assert google_wallet_server.api_requests() == []
    change(issued.row.serial, "reinstate", "moved")
    again = wallet_client.get(f"/p/{issued.claim_secret}/{route}")
    assert again.status_code in (200, 303)


# --- the pass page: which ways to keep the pass, in which order -------------------------


def test_page_offers_apple_google_and_print_with_print_last(
    wallet_client: FlaskClient, issue: Issue
) -> None:
    secret = issue().claim_secret
    response = wallet_client.get(f"/p/{secret}")
    assert response.status_code == 200
    at = link_positions(response.get_data(as_text=True), secret)
    assert min(at.values()) >= 0, at
    assert at["apple"] < at["google"] < at["print"]


def test_page_shows_google_only_on_android(wallet_client: FlaskClient, issue: Issue) -> None:
    """Apple Wallet does not exist on Android: no Apple button there (Apple's guidelines)."""
    secret = issue().claim_secret
    response = wallet_client.get(f"/p/{secret}", headers={"User-Agent": ANDROID})
    at = link_positions(response.get_data(as_text=True), secret)
    assert at["apple"] == -1, at
    assert 0 <= at["google"] < at["print"]


def test_page_puts_apple_first_in_safari_on_a_mac(wallet_client: FlaskClient, issue: Issue) -> None:
    secret = issue().claim_secret
    response = wallet_client.get(f"/p/{secret}", headers={"User-Agent": MAC_SAFARI})
    at = link_positions(response.get_data(as_text=True), secret)
    assert min(at.values()) >= 0, at
    assert at["apple"] < at["google"] < at["print"]


@pytest.mark.parametrize(
    ("agent", "platform"),
    [
        (ANDROID, "android"),
        (IPHONE, "apple"),
        (MAC_SAFARI, "apple"),
        (MAC_CHROME, "desktop"),
        (WINDOWS_FIREFOX, "desktop"),
        ("", "desktop"),
    ],
)
def test_platform_is_read_from_the_user_agent(agent: str, platform: str) -> None:
    assert citizen.platform(agent) == platform


def test_wallet_buttons_are_the_platforms_artwork_in_the_pages_language(
    wallet_client: FlaskClient, issue: Issue
) -> None:
    secret = issue().claim_secret
    for lang, apple, google_name in (
        ("de", "Zu Apple Wallet hinzufügen", "Zu Google Wallet hinzufügen"),
        ("en", "Add to Apple Wallet", "Add to Google Wallet"),
    ):
        page = wallet_client.get(f"/p/{secret}?lang={lang}").get_data(as_text=True)
        for name, alt in (("apple", apple), ("google", google_name)):
            src = f"/wallet-buttons/{name}-wallet-{lang}.svg"
            assert f'<img src="{src}" alt="{alt}"' in page
            artwork = wallet_client.get(src)
            assert artwork.status_code == 200 and artwork.mimetype == "image/svg+xml"


def test_page_puts_apple_first_on_an_iphone(wallet_client: FlaskClient, issue: Issue) -> None:
    secret = issue().claim_secret
    response = wallet_client.get(f"/p/{secret}", headers={"User-Agent": IPHONE})
    at = link_positions(response.get_data(as_text=True), secret)
    assert min(at.values()) >= 0, at
    assert at["apple"] < at["google"] < at["print"]


def test_page_without_google_configuration_offers_no_google_link(
    client_without_google: FlaskClient, issue: Issue
) -> None:
    secret = issue().claim_secret
    response = client_without_google.get(f"/p/{secret}", headers={"User-Agent": IPHONE})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    at = link_positions(page, secret)
    assert at["google"] == -1
    assert "google-wallet" not in page
    assert 0 <= at["apple"] < at["print"]


# --- attacks ----------------------------------------------------------------------------


@pytest.mark.parametrize("route", DOWNLOADS)
def test_guessed_claim_secret_downloads_nothing(
    wallet_client: FlaskClient,
    issue: Issue,
    google_wallet_server: GoogleWalletStandIn,
    route: str,
) -> None:
    issued = issue()
    real = issued.claim_secret
    near_miss = real[:-1] + ("A" if real[-1] != "A" else "B")
    for guess in (secrets.token_urlsafe(32), near_miss, "0" * len(real)):
        response = wallet_client.get(f"/p/{guess}/{route}")
        assert response.status_code == 404, guess
        assert_html_page_without_a_file(response)
        page = response.get_data(as_text=True)
        for leaked in (
            issued.row.serial,
            issued.row.token,
            "Erika Mustermann",
            "100200300400",
        ):
            assert leaked not in page
    assert google_wallet_server.api_requests() == []


def test_the_api_hands_out_every_download_link_when_both_wallets_are_set_up(
    wallet_client: FlaskClient, db: Database
) -> None:
    from wallet.services import accounts

    with db.transaction(write=True) as session:
        secret = accounts.create_api_token(
            session, name="city-system", role="issuer", actor="test",
            audit_key=wallet_client.application.extensions["wallet"].services.audit_key, now=NOW,
        ).secret  # fmt: skip
    created = wallet_client.post(
        "/api/v1/passes",
        json={"type": "library", "holder": {"card_number": "100200300400", "name": "Erika"}},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert created.status_code == 201
    body = created.get_json()
    downloads = body["downloads"]
    assert set(downloads) == {
        "apple_wallet", "google_wallet", "card_pdf", "print_sheet_pdf", "card_png"
    }  # fmt: skip
    assert all(link.startswith(body["claim_url"] + "/") for link in downloads.values())
    public_url = wallet_client.application.extensions["wallet"].settings.public_url
    apple = wallet_client.get(downloads["apple_wallet"].removeprefix(public_url))
    assert apple.mimetype == "application/vnd.apple.pkpass"
    google_link = wallet_client.get(downloads["google_wallet"].removeprefix(public_url))
    assert google_link.status_code == 303


def test_the_google_class_is_written_once_per_type_not_per_link(
    wallet_client: FlaskClient,
    issue: Callable[..., passes.IssuedPass],
    google_wallet_server: GoogleWalletStandIn,
) -> None:
    for _ in range(3):
        assert wallet_client.get(f"/p/{issue().claim_secret}/google-wallet").status_code == 303
    class_calls = [r for r in google_wallet_server.api_requests() if "genericClass" in r.path]
    object_calls = [r for r in google_wallet_server.api_requests() if "genericObject" in r.path]
    assert len(class_calls) == 1 and len(object_calls) == 3
