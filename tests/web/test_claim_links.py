"""A holder lost the message with their link: staff make a new one, the old one says "replaced"."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.cli.admin import Wallet, wallet_fixture  # noqa: F401 - the `wallet` fixture
from tests.factories import NOW
from tests.push.test_claim_email import ADDRESS, drain, mail_services
from tests.push.test_claim_email import issue as issue_library
from tests.standins.smtp import smtp_server
from tests.web.test_citizen import change, issue, page_text
from tests.web.test_console import csrf_token, login
from wallet.errors import ClaimLinkReplacedError, StateConflictError
from wallet.services import audit, passes
from wallet.services.context import Services
from wallet.store.db import Database
from wallet.web import create_app

pytestmark = pytest.mark.usefixtures("quick_password_hashes")

ORIGIN = "https://pass.stadt-musterstadt.de"


def path_of(url: str) -> str:
    return url.removeprefix(ORIGIN)


def replace(db: Database, services: Services, serial: str) -> passes.IssuedPass:
    with db.transaction(write=True) as session:
        return passes.replace_claim_link(
            session, services, serial, reason="letter lost", actor="user:anna", now=NOW
        )


def test_a_replaced_link_says_so_and_the_new_one_opens_the_same_pass(
    client: FlaskClient, db: Database, services: Services
) -> None:
    first = issue(db, services)
    second = replace(db, services, first.record.serial)
    old = client.get(f"/p/{first.claim_secret}")
    assert old.status_code == 410
    assert "wurde durch einen neuen ersetzt" in page_text(old.get_data(as_text=True))
    assert client.get(f"/p/{first.claim_secret}?lang=en").status_code == 410
    new = client.get(f"/p/{second.claim_secret}")
    assert new.status_code == 200
    assert second.record.serial == first.record.serial
    assert second.record.token == first.record.token  # the pass and its wallet copies stay


@pytest.mark.parametrize("download", ["pass.pkpass", "card.pdf", "card.png", "google-wallet"])
def test_downloads_through_a_replaced_link_are_refused(
    client: FlaskClient, db: Database, services: Services, download: str
) -> None:
    first = issue(db, services)
    replace(db, services, first.record.serial)
    assert client.get(f"/p/{first.claim_secret}/{download}").status_code == 410


def test_replacing_twice_leaves_only_the_newest_link_open(
    client: FlaskClient, db: Database, services: Services
) -> None:
    first = issue(db, services)
    second = replace(db, services, first.record.serial)
    third = replace(db, services, first.record.serial)
    statuses = [client.get(f"/p/{s.claim_secret}").status_code for s in (first, second, third)]
    assert statuses == [410, 410, 200]


def test_a_revoked_pass_gets_no_new_link(db: Database, services: Services) -> None:
    first = issue(db, services)
    change(db, services, first.record.serial, "revoke")
    with pytest.raises(StateConflictError):
        replace(db, services, first.record.serial)


def test_the_new_link_is_in_the_audit_log_with_its_reason_but_never_the_secret(
    db: Database, services: Services
) -> None:
    first = issue(db, services)
    second = replace(db, services, first.record.serial)
    with db.transaction(write=False) as session:
        trail = audit.trail(session, first.record.serial)
    newest = trail[0]
    assert (newest.action, newest.actor) == ("pass.claim_link_replaced", "user:anna")
    assert newest.details == {"reason": "letter lost", "links_replaced": 1}
    assert second.claim_secret not in json.dumps([e.to_json() for e in trail])


def test_the_api_makes_a_new_link_once_per_idempotency_key(
    client: FlaskClient, db: Database, services: Services, make_token: Callable[[str], str]
) -> None:
    first = issue(db, services)
    headers = {"Authorization": f"Bearer {make_token('issuer')}", "Idempotency-Key": "k1"}
    url = f"/api/v1/passes/{first.record.serial}/claim-link"
    made = client.post(url, json={"reason": "e-mail bounced"}, headers=headers)
    assert made.status_code == 201
    again = client.post(url, json={"reason": "e-mail bounced"}, headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["claim_url"] == made.get_json()["claim_url"]
    assert client.get(path_of(made.get_json()["claim_url"])).status_code == 200
    assert client.get(f"/p/{first.claim_secret}").status_code == 410


def test_a_verifier_token_cannot_make_links(
    client: FlaskClient, db: Database, services: Services, make_token: Callable[[str], str]
) -> None:
    first = issue(db, services)
    headers = {"Authorization": f"Bearer {make_token('verifier')}"}
    answer = client.post(
        f"/api/v1/passes/{first.record.serial}/claim-link", json={}, headers=headers
    )
    assert answer.status_code == 403
    assert client.get(f"/p/{first.claim_secret}").status_code == 200


def test_staff_make_a_new_link_from_the_pass_page(
    app: Flask, db: Database, services: Services, make_user: Callable[..., str]
) -> None:
    first = issue(db, services)
    staff = app.test_client()
    make_user("anna", "issuer")
    assert login(staff, "anna").status_code == 302
    page = staff.get(f"/console/passes/{first.record.serial}").get_data(as_text=True)
    assert "Neuer Link für den Inhaber" in page
    form = {"csrf_token": csrf_token(page), "reason": "Brief kam zurück", "confirm": "yes"}
    made = staff.post(f"/console/passes/{first.record.serial}/new-link", data=form)
    assert made.status_code == 201
    html = made.get_data(as_text=True)
    assert "Jeder ältere Link dieses Ausweises zeigt jetzt an" in page_text(html)
    assert f"/p/{first.claim_secret}" not in html
    assert app.test_client().get(f"/p/{first.claim_secret}").status_code == 410


def test_the_cli_prints_the_new_link_and_closes_the_old(
    wallet: Wallet, db: Database, services: Services
) -> None:
    first = issue(db, services)
    result = wallet.ok("passes", "new-link", first.record.serial, "--reason", "lost letter")
    assert "claim URL:" in result.stdout
    with db.transaction(write=False) as session, pytest.raises(ClaimLinkReplacedError):
        passes.pass_by_claim_secret(session, first.claim_secret, now=NOW)


def test_staff_send_a_new_link_by_e_mail_from_the_pass_page_and_see_it_arrive(
    db: Database, services: Services, tmp_path: Path, make_user: Callable[..., str]
) -> None:
    first = issue_library(db, services)
    with smtp_server(tmp_path) as server:
        mailing = mail_services(services, server)
        app = create_app(mailing.settings, services=mailing, db=db, clock=lambda: NOW,
                         config={"TESTING": True, "RATELIMIT_ENABLED": False})  # fmt: skip
        staff = app.test_client()
        make_user("anna", "issuer")
        assert login(staff, "anna").status_code == 302
        page_url = f"/console/passes/{first.record.serial}"
        form = {
            "csrf_token": csrf_token(staff.get(page_url).get_data(as_text=True)),
            "reason": "E-Mail verloren",
            "confirm": "yes",
            "email": ADDRESS,
            "lang": "en",
        }
        sent = staff.post(f"{page_url}/new-link", data=form)
        assert sent.status_code == 302
        assert drain(db, mailing).delivered == 1
        [message] = server.messages()
        text = page_text(staff.get(page_url).get_data(as_text=True))
    assert str(message["Subject"]).strip().startswith("Your digital pass")
    assert "Per E-Mail gesendete Links 1" in text
    assert ADDRESS not in text  # the address was for this message only


def test_a_city_system_sends_a_new_link_by_e_mail_through_the_api_without_seeing_it(
    db: Database, services: Services, tmp_path: Path, make_token: Callable[[str], str]
) -> None:
    first = issue_library(db, services)
    headers = {"Authorization": f"Bearer {make_token('issuer')}", "Idempotency-Key": "mail-1"}
    url = f"/api/v1/passes/{first.record.serial}/claim-link"
    with smtp_server(tmp_path) as server:
        mailing = mail_services(services, server)
        app = create_app(mailing.settings, services=mailing, db=db, clock=lambda: NOW,
                         config={"TESTING": True, "RATELIMIT_ENABLED": False})  # fmt: skip
        api = app.test_client()
        wrong = api.post(url, json={"email": "erika at example", "lang": "en"}, headers=headers)
        assert wrong.status_code == 422 and wrong.get_json()["error"]["field"] == "email"
        body = {"email": ADDRESS, "lang": "en", "reason": "e-mail lost"}
        sent = api.post(url, json=body, headers={**headers, "Idempotency-Key": "mail-2"})
        assert sent.status_code == 202
        answer = sent.get_json()
        assert answer["claim_link_sent_by"] == "email" and "claim_url" not in answer
        again = api.post(url, json=body, headers={**headers, "Idempotency-Key": "mail-2"})
        assert again.headers["Idempotent-Replayed"] == "true"  # a retry sends nothing twice
        assert drain(db, mailing).delivered == 1
        [message] = server.messages()
    assert message["To"] == ADDRESS
    assert client_opens_link_in(message, db, services)
    assert ADDRESS not in json.dumps(answer)


def test_the_api_says_when_e_mail_is_not_set_up(
    client: FlaskClient, db: Database, services: Services, make_token: Callable[[str], str]
) -> None:
    first = issue(db, services)
    headers = {"Authorization": f"Bearer {make_token('issuer')}"}
    url = f"/api/v1/passes/{first.record.serial}/claim-link"
    answer = client.post(url, json={"email": ADDRESS}, headers=headers)
    assert answer.status_code == 422 and answer.get_json()["error"]["field"] == "email"
    assert "WALLET_SMTP" in answer.get_json()["error"]["message"]
    lonely = client.post(url, json={"lang": "en"}, headers=headers)
    assert lonely.status_code == 422 and lonely.get_json()["error"]["field"] == "lang"
    assert client.get(f"/p/{first.claim_secret}").status_code == 200  # nothing replaced


def client_opens_link_in(message: object, db: Database, services: Services) -> bool:
    """The link in the message opens the pass (it is the newest one)."""
    text = message.get_body(("plain",)).get_content()  # type: ignore[attr-defined]
    found = re.search(r"/p/([A-Za-z0-9_-]{16,})", text)
    assert found is not None
    with db.transaction(write=False) as session:
        return passes.pass_by_claim_secret(session, found[1], now=NOW) is not None


def test_staff_typing_a_wrong_address_see_the_field_explained(
    db: Database, services: Services, client: FlaskClient, make_user: Callable[..., str]
) -> None:
    first = issue_library(db, services)
    make_user("anna", "issuer")
    assert login(client, "anna").status_code == 302
    page_url = f"/console/passes/{first.record.serial}"
    form = {
        "csrf_token": csrf_token(client.get(page_url).get_data(as_text=True)),
        "reason": "E-Mail verloren",
        "confirm": "yes",
        "email": "erika at example",
    }
    answer = client.post(f"{page_url}/new-link", data=form)
    assert answer.status_code == 422
    assert "zum Beispiel erika.mustermann@example.de" in page_text(answer.get_data(as_text=True))
    with db.transaction(write=False) as session:  # nothing changed
        assert passes.pass_by_claim_secret(session, first.claim_secret, now=NOW)
