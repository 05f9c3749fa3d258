"""The citizen's pass page: the card, its states, languages, headers and the PNG download."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from babel.messages.catalog import Message
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from flask.testing import FlaskClient

from tests.factories import HOLDERS, NOW
from wallet.config import PROJECT_ROOT
from wallet.formats import qr
from wallet.formats.qrimage import read_qr_image
from wallet.qrtext import encode_qr_text
from wallet.services import passes
from wallet.services.context import Services
from wallet.store.db import Database
from wallet.web import create_app

CATALOGS = PROJECT_ROOT / "wallet" / "translations"


def issue(
    db: Database, services: Services, type_id: str = "parking", *, at: datetime = NOW
) -> passes.IssuedPass:
    with db.transaction(write=True) as session:
        return passes.issue_pass(
            session, services, type_id=type_id, holder=dict(HOLDERS[type_id]), actor="test", now=at
        )


def change(db: Database, services: Services, serial: str, action: str) -> None:
    with db.transaction(write=True) as session:
        if action == "reissue":
            passes.reissue_pass(session, services, serial, reason="lost", actor="test", now=NOW)
        else:
            passes.change_state(
                session, services, serial, action=action, reason="x", actor="test", now=NOW
            )


def page_text(html: str) -> str:
    """The visible words of a page, whitespace collapsed (for phrases across tags)."""
    without_tags = re.sub(r"<[^>]+>", " ", html)
    return " ".join(without_tags.split())


# -- a valid pass -------------------------------------------------------------------------------


def test_valid_pass_is_shown_as_a_german_card_by_default(
    client: FlaskClient, db: Database, services: Services
) -> None:
    issued = issue(db, services)
    response = client.get(f"/p/{issued.claim_secret}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    text = page_text(html)
    assert '<html lang="de">' in html
    assert "<h1" in html and "Bewohnerparkausweis</h1>" in html
    assert "Straßenverkehrsamt" in text
    assert "Kennzeichen D-AB 1234" in text and "Zone 12" in text
    assert "Gültig ab 24. November 2026" in text
    assert "Gültig bis 24. November 2027" in text
    assert "Status: Gültig" in text
    assert f"Seriennummer {issued.record.serial}" in text


def test_qr_code_is_inline_svg_with_a_text_alternative_and_no_inline_style(
    client: FlaskClient, db: Database, services: Services
) -> None:
    issued = issue(db, services)
    html = client.get(f"/p/{issued.claim_secret}").get_data(as_text=True)
    svg = re.search(r"<svg[^>]*>.*?</svg>", html, re.S)
    assert svg is not None
    assert 'role="img"' in svg.group(0)
    assert (
        f"<title>QR-Code: Bewohnerparkausweis, Seriennummer {issued.record.serial}</title>" in html
    )
    # style-src 'self': neither style attributes nor <style> elements, and no inline script
    assert not re.search(r"\sstyle\s*=", html)
    assert "<style" not in html
    assert not re.search(r"<script(?![^>]*\ssrc=)", html)


def test_pass_page_builds_its_qr_code_once_and_a_reload_not_again(
    client: FlaskClient, db: Database, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Building a code takes ~20 ms: the page needs its size and its drawing, one build."""
    built: list[str] = []
    build = qr._build_code

    def counting(text: str) -> Any:
        built.append(text)
        return build(text)

    monkeypatch.setattr(qr, "_build_code", counting)
    issued = issue(db, services)
    qr_text = encode_qr_text(issued.record.token)
    for _ in range(3):
        assert client.get(f"/p/{issued.claim_secret}").status_code == 200
    assert built == [qr_text]
    # A text that is not a pass's QR text (a claim link is a secret) is never kept.
    qr.render_svg("https://example.org/p/secret")
    qr.render_svg("https://example.org/p/secret")
    assert built == [qr_text, "https://example.org/p/secret", "https://example.org/p/secret"]


def test_the_page_offers_apple_wallet_and_print_but_no_google_when_it_is_not_set_up(
    client: FlaskClient, db: Database, services: Services
) -> None:
    from wallet.services.credentials import ensure_dev_chain

    issued = issue(db, services)
    no_chain = client.get(f"/p/{issued.claim_secret}").get_data(as_text=True)
    assert "pass.pkpass" not in no_chain  # Apple cannot sign yet: no dead button either
    ensure_dev_chain(services.settings, now=NOW)
    secret = issued.claim_secret
    html = client.get(f"/p/{secret}").get_data(as_text=True)
    links = dict(
        (label.strip(), href)
        for href, label in re.findall(
            r'<a class="button[^"]*" href="([^"]+)"[^>]*>([^<]*)</a>', html
        )
    )
    # the wallet button is the platform's artwork, named by its alt text
    badges = dict(
        (alt, (href, src))
        for href, src, alt in re.findall(
            r'<a class="wallet-badge" href="([^"]+)"[^>]*><img src="([^"]+)" alt="([^"]+)"', html
        )
    )
    assert badges["Zu Apple Wallet hinzufügen"] == (
        f"/p/{secret}/pass.pkpass",
        "/wallet-buttons/apple-wallet-de.svg",
    )
    assert client.get(badges["Zu Apple Wallet hinzufügen"][1]).status_code == 200
    assert links["Ausweis drucken (PDF, A4)"] == f"/p/{secret}/card.pdf?layout=sheet"
    assert links["Ausweis als Bild (PNG)"] == f"/p/{secret}/card.png"
    assert "Google Wallet" not in html  # no issuer configured: no dead button
    english = client.get(f"/p/{secret}?lang=en").get_data(as_text=True)
    assert "Add to Apple Wallet" in english and "Print pass (PDF, A4)" in english


def test_pass_pages_are_never_cached_and_never_leak_the_link(
    client: FlaskClient, db: Database, services: Services
) -> None:
    issued = issue(db, services)
    for path in (
        f"/p/{issued.claim_secret}",
        f"/p/{issued.claim_secret}/qr.png",
        "/p/" + "nope" * 5,
    ):
        headers = client.get(path).headers
        assert headers["Cache-Control"] == "no-store", path
        assert headers["Referrer-Policy"] == "no-referrer", path
        assert "noindex" in headers["X-Robots-Tag"], path
        assert "style-src 'self'" in headers["Content-Security-Policy"], path


def test_png_download_decodes_back_to_the_pass_qr_text(
    client: FlaskClient, db: Database, services: Services
) -> None:
    issued = issue(db, services, "library")
    html = client.get(f"/p/{issued.claim_secret}").get_data(as_text=True)
    assert f'href="/p/{issued.claim_secret}/qr.png"' in html
    response = client.get(f"/p/{issued.claim_secret}/qr.png")
    assert response.status_code == 200
    assert response.mimetype == "image/png"
    assert response.headers["Content-Disposition"] == 'attachment; filename="library-pass-qr.png"'
    assert read_qr_image(response.data) == issued.qr_text


# -- states -------------------------------------------------------------------------------------


def test_suspended_pass_says_so_at_the_top_and_greys_its_code(
    client: FlaskClient, db: Database, services: Services
) -> None:
    issued = issue(db, services)
    change(db, services, issued.record.serial, "suspend")
    html = client.get(f"/p/{issued.claim_secret}").get_data(as_text=True)
    text = page_text(html)
    notice = "Dieser Ausweis ist vorübergehend gesperrt. Er wird bei Kontrollen nicht anerkannt."
    assert notice in text
    assert text.index(notice) < text.index("Kennzeichen")  # above the card's data
    assert "Status: Vorübergehend gesperrt" in text
    assert 'class="qr qr--inactive"' in html and "<svg" in html


def test_suspended_pass_offers_no_wallet_downloads(
    client: FlaskClient, db: Database, services: Services
) -> None:
    """Decided: while suspended, nothing to download (a new copy would only be refused);
    the page says so and that reinstating brings it all back."""
    from wallet.services.credentials import ensure_dev_chain

    ensure_dev_chain(services.settings, now=NOW)
    issued = issue(db, services)
    secret = issued.claim_secret
    downloads = ("pass.pkpass", "qr.png", "card.pdf", "card.pdf?layout=sheet", "card.png")
    valid = client.get(f"/p/{secret}").get_data(as_text=True)
    assert all(f"/p/{secret}/{route}" in valid for route in downloads)
    change(db, services, issued.record.serial, "suspend")
    html = client.get(f"/p/{secret}").get_data(as_text=True)
    for route in downloads:
        assert f"/p/{secret}/{route}" not in html, route
    text = page_text(html)
    assert "Solange der Ausweis gesperrt ist, kann er weder in eine Wallet-App" in text
    assert "Sobald er wieder freigegeben ist, bietet dieser Link all das wieder an." in text
    for route in downloads:
        response = client.get(f"/p/{secret}/{route}")
        assert response.status_code == 409, route
        assert response.mimetype == "text/html" and "Content-Disposition" not in response.headers
        assert "Keine Downloads, solange der Ausweis gesperrt ist" in response.get_data(
            as_text=True
        )
    change(db, services, issued.record.serial, "reinstate")
    assert client.get(f"/p/{secret}/qr.png").status_code == 200
    assert f"/p/{secret}/pass.pkpass" in client.get(f"/p/{secret}").get_data(as_text=True)


def test_revoked_pass_says_so_and_shows_no_code(
    client: FlaskClient, db: Database, services: Services
) -> None:
    issued = issue(db, services, "library")
    change(db, services, issued.record.serial, "revoke")
    response = client.get(f"/p/{issued.claim_secret}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    text = page_text(html)
    assert "Dieser Ausweis wurde widerrufen. Er ist nicht mehr gültig." in text
    assert "Bei Fragen wenden Sie sich bitte an: Stadtbüchereien." in text
    assert "<svg" not in html and "qr.png" not in html
    assert "pass.pkpass" not in html and "card.pdf" not in html and "card.png" not in html
    download = client.get(f"/p/{issued.claim_secret}/qr.png")
    assert download.status_code == 410 and download.mimetype == "text/html"
    english = page_text(client.get(f"/p/{issued.claim_secret}?lang=en").get_data(as_text=True))
    assert "This pass has been revoked. It is no longer valid." in english


def test_replaced_pass_points_to_the_new_link(
    client: FlaskClient, db: Database, services: Services
) -> None:
    issued = issue(db, services)
    change(db, services, issued.record.serial, "reissue")
    text = page_text(client.get(f"/p/{issued.claim_secret}").get_data(as_text=True))
    assert "Er wurde durch einen neuen Ausweis ersetzt." in text


def test_expired_pass_says_when_it_expired(db: Database, services: Services) -> None:
    long_links = replace(services, settings=replace(services.settings, claim_link_lifetime=10**9))
    issued = issue(db, long_links)
    later = issued.record.valid_until + timedelta(days=1)
    app = create_app(long_links.settings, services=long_links, db=db, clock=lambda: later)
    text = page_text(app.test_client().get(f"/p/{issued.claim_secret}").get_data(as_text=True))
    assert "Dieser Ausweis ist am 24. November 2027 abgelaufen." in text
    assert "Status: Abgelaufen" in text


# -- links that open nothing --------------------------------------------------------------------


@pytest.mark.parametrize("secret", ["x" * 32, "short", "A" * 200])
def test_unknown_link_gets_a_friendly_page_saying_what_to_do(
    client: FlaskClient, secret: str
) -> None:
    response = client.get(f"/p/{secret}")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert response.headers["Cache-Control"] == "no-store"
    text = page_text(response.get_data(as_text=True))
    assert "Dieser Link öffnet keinen Ausweis" in text
    assert "Wenden Sie sich an die Stelle, die Ihren Ausweis ausgestellt hat" in text
    english = page_text(client.get(f"/p/{secret}?lang=en").get_data(as_text=True))
    assert "Contact the office that issued your pass" in english


def test_expired_link_gets_the_same_page(
    client: FlaskClient, db: Database, services: Services
) -> None:
    lifetime = timedelta(seconds=services.settings.claim_link_lifetime)
    issued = issue(db, services, at=NOW - lifetime - timedelta(minutes=1))
    response = client.get(f"/p/{issued.claim_secret}")
    assert response.status_code == 404
    assert "Dieser Link öffnet keinen Ausweis" in response.get_data(as_text=True)
    assert client.get(f"/p/{issued.claim_secret}/qr.png").status_code == 404


def test_unexpected_error_is_a_page_in_the_citizens_language(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(passes, "pass_by_claim_secret", broken)
    response = client.get("/p/" + "x" * 32)
    assert response.status_code == 500
    assert response.mimetype == "text/html" and response.headers["Cache-Control"] == "no-store"
    assert "Der Fehler liegt bei uns" in response.get_data(as_text=True)
    assert "database on fire" not in response.get_data(as_text=True)


# -- languages ----------------------------------------------------------------------------------


def test_language_switch_link_chooses_english_and_a_cookie_keeps_it(
    client: FlaskClient, db: Database, services: Services
) -> None:
    issued = issue(db, services)
    path = f"/p/{issued.claim_secret}"
    german = client.get(path).get_data(as_text=True)
    assert f'<a href="{path}?lang=en" lang="en" hreflang="en">English</a>' in german
    response = client.get(f"{path}?lang=en")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("lang=en;") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" in cookie  # public_url is https
    english = page_text(client.get(path).get_data(as_text=True))  # no ?lang: the cookie
    assert "Resident parking permit" in english and "Licence plate D-AB 1234" in english
    assert "Valid until November 24, 2027" in english and "Status: Valid" in english
    assert f'href="{path}?lang=de"' in client.get(path).get_data(as_text=True)
    assert "Bewohnerparkausweis" in client.get(f"{path}?lang=de").get_data(as_text=True)
    assert '<html lang="de">' in client.get(path).get_data(as_text=True)


@pytest.mark.parametrize(
    ("accept", "lang"),
    [
        ("en-US,en;q=0.9", "en"),
        ("de-AT,en;q=0.8", "de"),  # the browser's first choice wins, not an exact later match
        ("fr-FR, en;q=0.5", "en"),
        ("fr, it", "de"),
        ("", "de"),
    ],
)
def test_accept_language_is_honoured(
    client: FlaskClient, db: Database, services: Services, accept: str, lang: str
) -> None:
    issued = issue(db, services)
    response = client.get(f"/p/{issued.claim_secret}", headers={"Accept-Language": accept})
    assert f'<html lang="{lang}">' in response.get_data(as_text=True)
    assert "Accept-Language" in response.headers["Vary"]


def test_unknown_language_parameter_is_ignored(
    client: FlaskClient, db: Database, services: Services
) -> None:
    issued = issue(db, services)
    response = client.get(f"/p/{issued.claim_secret}?lang=xx")
    assert '<html lang="de">' in response.get_data(as_text=True)
    assert "Set-Cookie" not in response.headers


# -- catalogs -----------------------------------------------------------------------------------


def _catalog(lang: str) -> dict[Any, Message]:
    with (CATALOGS / lang / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = read_po(po, locale=lang)
    return {m.id: m for m in catalog if m.id}


def _extracted() -> set[object]:
    method_map = [("wallet/web/**.py", "python"), ("templates/web/**.html", "jinja2")]
    found = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
        str(PROJECT_ROOT), method_map=method_map
    ):
        found.add(message)
    return found


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"%\((\w+)\)[sd]", text))


def test_german_catalog_is_complete_and_in_step_with_the_sources() -> None:
    german = _catalog("de")
    sources = _extracted()
    assert sources, "no messages extracted"
    missing = sorted(str(m) for m in sources - set(german))
    stale = sorted(str(m) for m in set(german) - sources)
    assert not missing, f"not in the German catalog (run the commands in babel.cfg): {missing}"
    assert not stale, f"no longer used: {stale}"
    for msgid, message in german.items():
        assert not message.fuzzy, msgid
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        ids = msgid if isinstance(msgid, tuple) else (msgid,)
        for string in strings:
            assert string, f"untranslated: {msgid}"
            assert _placeholders(string) == _placeholders(ids[-1]), msgid
    english = _catalog("en")
    assert set(english) == set(german)
    # msgids are English: the English catalog translates nothing, so nothing German leaks in
    leaked = [m.id for m in english.values() if any(m.string)]
    assert not leaked, leaked


def test_catalogs_are_read_from_po_files_without_mo_files() -> None:
    assert not list(Path(CATALOGS).rglob("*.mo"))


def test_official_wallet_artwork_put_into_the_instance_replaces_the_stand_in(
    client: FlaskClient, services: Services
) -> None:
    """Apple's and Google's artwork is licensed to the city, not shipped: the admin adds it."""
    stand_in = client.get("/wallet-buttons/apple-wallet-de.svg")
    assert stand_in.status_code == 200 and stand_in.mimetype == "image/svg+xml"
    folder = services.settings.instance_dir / "wallet-buttons"
    folder.mkdir(parents=True, exist_ok=True)
    official = b'<svg xmlns="http://www.w3.org/2000/svg"><title>official badge</title></svg>'
    (folder / "apple-wallet-de.svg").write_bytes(official)
    served = client.get("/wallet-buttons/apple-wallet-de.svg")
    assert served.status_code == 200 and served.data == official != stand_in.data
    assert served.mimetype == "image/svg+xml"
    assert "script-src" not in served.headers["Content-Security-Policy"]
    assert served.headers["Content-Security-Policy"].startswith("default-src 'none'")


@pytest.mark.parametrize(
    "name", ["../wallet.sqlite3", "evil.svg", "apple-wallet-de.svg/..", "%2e%2e"]
)
def test_button_names_outside_the_four_known_files_are_not_served(
    client: FlaskClient, services: Services, name: str
) -> None:
    """Path traversal: a name from the URL never becomes a path into the instance."""
    (services.settings.instance_dir / "wallet-buttons").mkdir(parents=True, exist_ok=True)
    (services.settings.instance_dir / "wallet-buttons" / "evil.svg").write_text("<svg/>")
    assert client.get(f"/wallet-buttons/{name}").status_code == 404
