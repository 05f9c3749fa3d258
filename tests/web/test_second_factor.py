"""A local account switches its own TOTP second factor on and off in the console.

The real app on each database backend, its clock at NOW (moved where a test says);
codes computed with RFC 6238's parameters by cryptography's own TOTP from the key
the page shows, as an authenticator app would. WALLET_TOTP_REQUIRED keeps its say:
where it makes the factor compulsory, the console never switches it off.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.factories import NOW
from wallet.services import accounts, audit, metrics, oidc, totp
from wallet.services.context import Services
from wallet.store.db import Database
from wallet.web import create_app

pytestmark = pytest.mark.usefixtures("quick_password_hashes")

PASSWORD = "correct horse battery"
PAGE = "/console/second-factor"


@dataclasses.dataclass(frozen=True)
class Enrolment:
    """What the set-up page showed: the key to type in and the sealed form field."""

    secret: bytes
    sealed: str
    csrf: str

    def code(self, at: datetime = NOW) -> str:
        return TOTP(self.secret, 6, SHA1(), 30).generate(int(at.timestamp())).decode()


def csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def shown(page: str) -> Enrolment:
    key = re.search(r'id="totp-key">([A-Z2-7 ]+)<', page)
    sealed = re.search(r'name="enrolment" value="([^"]+)"', page)
    assert key is not None and sealed is not None, page[:2000]
    text = key.group(1).replace(" ", "")
    secret = base64.b32decode(text + "=" * (-len(text) % 8))
    return Enrolment(secret=secret, sealed=html.unescape(sealed.group(1)), csrf=csrf(page))


def wrong(right: Callable[[datetime], str], at: datetime = NOW) -> str:
    """A code that is none of the three accepted around ``at``."""
    near = {right(at + timedelta(seconds=s)) for s in (-30, 0, 30)}
    return next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in near)


def signed_in_client(app: Flask, username: str, *, lang: str = "de") -> FlaskClient:
    client = app.test_client()
    client.set_cookie("lang", lang)
    token = csrf(client.get("/console/login").get_data(as_text=True))
    answer = client.post(
        "/console/login", data={"csrf_token": token, "username": username, "password": PASSWORD}
    )
    assert answer.status_code == 302 and answer.headers["Location"] != "/console/login/code"
    return client


def switch_on(client: FlaskClient, enrolment: Enrolment, code: str) -> TestResponse:
    form = {"csrf_token": enrolment.csrf, "enrolment": enrolment.sealed, "code": code}
    return client.post(PAGE, data=form)


def switch_off(client: FlaskClient, *, password: str, code: str) -> TestResponse:
    token = csrf(client.get(PAGE).get_data(as_text=True))
    form = {"csrf_token": token, "password": password, "code": code}
    return client.post(f"{PAGE}/off", data=form)


def enrolled(db: Database, username: str) -> bool:
    with db.transaction(write=False) as session:
        return totp.is_enrolled(session, username)


def totp_entries(db: Database, username: str) -> list[tuple[str, str]]:
    with db.transaction(write=False) as session:
        entries = audit.trail(session, f"user:{username}")
    return [(e.actor, e.details["totp"]) for e in reversed(entries) if e.action == "user.totp"]


def app_with(db: Database, services: Services, *, clock: Callable[[], datetime] = lambda: NOW,
             totp_required: str = "", limits: bool = False) -> Flask:  # fmt: skip
    settings = dataclasses.replace(services.settings, totp_required=totp_required)
    config: dict[str, object] = {"TESTING": True, "RATELIMIT_ENABLED": limits}
    if limits:
        config["RATELIMIT_STORAGE_URI"] = "memory://"
    return create_app(settings, services=services, db=db, clock=clock, config=config)


def switched_on(app: Flask, db: Database, username: str) -> tuple[FlaskClient, Enrolment]:
    client = signed_in_client(app, username)
    enrolment = shown(client.get(PAGE).get_data(as_text=True))
    assert switch_on(client, enrolment, enrolment.code()).status_code == 302
    assert enrolled(db, username)
    return client, enrolment


# -- switching on -----------------------------------------------------------------------


def test_local_account_switches_its_factor_on_with_a_current_code(
    app: Flask, db: Database, make_user: Callable[..., str]
) -> None:
    make_user("anna", "issuer")
    client = signed_in_client(app, "anna")
    page = client.get(PAGE).get_data(as_text=True)
    assert "Zweiter Faktor" in page and "Es ist noch kein zweiter Faktor eingerichtet." in page
    enrolment = shown(page)
    assert len(enrolment.secret) == 20
    answer = switch_on(client, enrolment, enrolment.code())
    assert answer.status_code == 302 and answer.headers["Location"] == PAGE
    after = client.get(PAGE).get_data(as_text=True)
    assert "Der zweite Faktor ist eingeschaltet." in after
    assert 'id="totp-key"' not in after  # the key is never shown again
    assert totp_entries(db, "anna") == [("user:anna", "enrolled")]
    # From now on a sign-in needs a code from that app.
    fresh = app.test_client()
    token = csrf(fresh.get("/console/login").get_data(as_text=True))
    step = fresh.post("/console/login", data={"csrf_token": token, "username": "anna",
                                              "password": PASSWORD})  # fmt: skip
    assert step.headers["Location"] == "/console/login/code"
    code_page = fresh.get("/console/login/code").get_data(as_text=True)
    form = {"csrf_token": csrf(code_page), "step": "code", "username": "anna",
            "code": enrolment.code(NOW + timedelta(seconds=30))}  # fmt: skip
    assert fresh.post("/console/login", data=form).status_code == 302


def test_page_draws_the_qr_code_itself_and_names_the_account(
    app: Flask, make_user: Callable[..., str]
) -> None:
    make_user("anna", "issuer")
    client = signed_in_client(app, "anna", lang="en")
    answer = client.get(PAGE)
    page = answer.get_data(as_text=True)
    assert answer.headers["Cache-Control"] == "no-store"  # the page holds the secret
    assert "Second factor" in page and "QR code for your authenticator app" in page
    svg = re.search(r"<svg [^>]*>.*?</svg>", page, re.S)
    assert svg is not None and "<path" in svg.group(0)  # drawn on the server, inline
    assert '<script src="http' not in page and '<img src="http' not in page


def test_mistyped_code_leaves_the_factor_off_and_shows_the_same_key(
    app: Flask, db: Database, make_user: Callable[..., str]
) -> None:
    make_user("anna", "issuer")
    client = signed_in_client(app, "anna")
    enrolment = shown(client.get(PAGE).get_data(as_text=True))
    for given in (wrong(enrolment.code), "", "12345", "abcdef", "1" * 40):
        answer = switch_on(client, enrolment, given)
        assert answer.status_code == 422
        page = answer.get_data(as_text=True)
        assert "Der Code passt nicht." in page and 'aria-invalid="true"' in page
        assert shown(page).secret == enrolment.secret  # the app scanned it: no new one
        assert not enrolled(db, "anna")
    assert switch_on(client, enrolment, enrolment.code()).status_code == 302


def test_enrolment_form_older_than_its_lifetime_is_refused(
    db: Database, services: Services, make_user: Callable[..., str]
) -> None:
    make_user("anna", "issuer")
    clock = [NOW]
    app = app_with(db, services, clock=lambda: clock[0])
    client = signed_in_client(app, "anna")
    enrolment = shown(client.get(PAGE).get_data(as_text=True))
    clock[0] = NOW + totp.ENROLMENT_LIFETIME + timedelta(seconds=31)
    answer = switch_on(client, enrolment, enrolment.code(clock[0]))
    assert answer.status_code == 422
    page = answer.get_data(as_text=True)
    assert "länger als 15 Minuten" in page
    assert shown(page).secret != enrolment.secret  # a new one to scan
    assert not enrolled(db, "anna")


def test_rejects_an_enrolment_sealed_for_another_account(
    app: Flask, db: Database, make_user: Callable[..., str]
) -> None:
    """Bob submits Anna's set-up form (its key and code right): it opens for Anna only."""
    make_user("anna", "issuer")
    make_user("bob", "issuer")
    annas = shown(signed_in_client(app, "anna").get(PAGE).get_data(as_text=True))
    bob = signed_in_client(app, "bob")
    bobs_form = shown(bob.get(PAGE).get_data(as_text=True))
    forged = dataclasses.replace(annas, csrf=bobs_form.csrf)
    answer = switch_on(bob, forged, annas.code())
    assert answer.status_code == 422
    assert not enrolled(db, "bob") and not enrolled(db, "anna")


@pytest.mark.parametrize("sealed", ["", "x" * 5000, "AAAA", base64.b64encode(b"\0" * 60).decode()])
def test_rejects_a_forged_enrolment_field(
    app: Flask, db: Database, make_user: Callable[..., str], sealed: str
) -> None:
    make_user("anna", "issuer")
    client = signed_in_client(app, "anna")
    enrolment = shown(client.get(PAGE).get_data(as_text=True))
    answer = switch_on(client, dataclasses.replace(enrolment, sealed=sealed), enrolment.code())
    assert answer.status_code == 422
    assert not enrolled(db, "anna")


def test_rejects_replacing_a_factor_already_on(
    app: Flask, db: Database, make_user: Callable[..., str]
) -> None:
    """A stolen session with a set-up form from before cannot swap the owner's phone for its own."""
    make_user("anna", "issuer")
    client = signed_in_client(app, "anna")
    owners = shown(client.get(PAGE).get_data(as_text=True))
    thiefs = shown(client.get(PAGE).get_data(as_text=True))  # another tab, another secret
    assert switch_on(client, owners, owners.code()).status_code == 302
    answer = switch_on(client, thiefs, thiefs.code())
    assert answer.status_code == 409
    assert "Der zweite Faktor ist eingeschaltet." in answer.get_data(as_text=True)
    later = NOW + timedelta(seconds=30)
    with db.transaction(write=True) as session:  # the owner's app still makes the codes
        key = app.extensions["wallet"].services.audit_key
        assert totp.check_code(session, username="anna", code=owners.code(later),
                               audit_key=key, now=later)  # fmt: skip
    assert totp_entries(db, "anna") == [("user:anna", "enrolled")]


def test_switching_on_without_a_csrf_token_is_refused(
    app: Flask, db: Database, make_user: Callable[..., str]
) -> None:
    make_user("anna", "issuer")
    client = signed_in_client(app, "anna")
    enrolment = shown(client.get(PAGE).get_data(as_text=True))
    form = {"enrolment": enrolment.sealed, "code": enrolment.code()}
    assert client.post(PAGE, data=form).status_code == 400
    assert not enrolled(db, "anna")


def test_the_page_needs_a_signed_in_account(app: Flask) -> None:
    answer = app.test_client().get(PAGE)
    assert answer.status_code == 302 and "/console/login" in answer.headers["Location"]


def test_a_verifier_sets_up_its_factor_too(
    app: Flask, db: Database, make_user: Callable[..., str]
) -> None:
    make_user("vera", "verifier")
    switched_on(app, db, "vera")
    assert totp_entries(db, "vera") == [("user:vera", "enrolled")]


def test_the_secret_never_reaches_a_log(
    app: Flask, make_user: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    make_user("anna", "issuer")
    with caplog.at_level(logging.DEBUG):
        client, enrolment = switched_on(app, app.extensions["wallet"].db, "anna")
        switch_off(client, password=PASSWORD, code=enrolment.code(NOW + timedelta(seconds=30)))
    key = base64.b32encode(enrolment.secret).decode().rstrip("=")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "second factor on" in text  # the log says what happened ...
    for secret in (key, key[:16], enrolment.secret.hex(), enrolment.sealed[:24]):
        assert secret not in text  # ... never with what


# -- switching off ----------------------------------------------------------------------


def test_switching_off_needs_the_password_and_a_current_code(
    app: Flask, db: Database, make_user: Callable[..., str]
) -> None:
    make_user("anna", "issuer")
    client, enrolment = switched_on(app, db, "anna")
    later = NOW + timedelta(seconds=30)
    attempts = [("not the password", enrolment.code(later)), (PASSWORD, wrong(enrolment.code)),
                (PASSWORD, "")]  # fmt: skip
    for password, code in attempts:
        answer = switch_off(client, password=password, code=code)
        assert answer.status_code == 422
        page = answer.get_data(as_text=True)
        assert "Das Passwort oder der Code ist nicht richtig." in page  # neither named alone
        assert enrolled(db, "anna")
    answer = switch_off(client, password=PASSWORD, code=enrolment.code(later))
    assert answer.status_code == 302
    assert not enrolled(db, "anna")
    assert "Der zweite Faktor ist ausgeschaltet." in client.get(PAGE).get_data(as_text=True)
    assert totp_entries(db, "anna") == [("user:anna", "enrolled"), ("user:anna", "removed")]
    signed_in_client(app, "anna")  # the password alone signs in again


def test_a_code_used_to_switch_on_cannot_switch_off(
    app: Flask, db: Database, make_user: Callable[..., str]
) -> None:
    make_user("anna", "issuer")
    client, enrolment = switched_on(app, db, "anna")
    assert switch_off(client, password=PASSWORD, code=enrolment.code()).status_code == 422
    assert enrolled(db, "anna")


def test_switching_off_without_a_csrf_token_is_refused(
    app: Flask, db: Database, make_user: Callable[..., str]
) -> None:
    make_user("anna", "issuer")
    client, enrolment = switched_on(app, db, "anna")
    form = {"password": PASSWORD, "code": enrolment.code(NOW + timedelta(seconds=30))}
    assert client.post(f"{PAGE}/off", data=form).status_code == 400
    assert enrolled(db, "anna")


def test_guessing_codes_to_switch_off_is_rate_limited(
    db: Database, services: Services, make_user: Callable[..., str]
) -> None:
    make_user("anna", "issuer")
    app = app_with(db, services, limits=True)
    client, enrolment = switched_on(app, db, "anna")
    guess = wrong(enrolment.code)
    answers = [switch_off(client, password=PASSWORD, code=guess).status_code for _ in range(6)]
    assert answers == [422] * 5 + [429]
    right = enrolment.code(NOW + timedelta(seconds=30))
    assert switch_off(client, password=PASSWORD, code=right).status_code == 429  # waits too
    assert enrolled(db, "anna")
    # Counted per account: another one is not held up by Anna's (or a thief's) guesses.
    make_user("bob", "issuer")
    bob, bobs = switched_on(app, db, "bob")
    assert switch_off(bob, password=PASSWORD, code=bobs.code(right_after(NOW))).status_code == 302


def right_after(moment: datetime) -> datetime:
    return moment + timedelta(seconds=30)


@pytest.mark.parametrize(("policy", "role"), [("admins", "admin"), ("all", "issuer")])
def test_a_compulsory_factor_cannot_be_switched_off_in_the_console(
    db: Database, services: Services, make_user: Callable[..., str], policy: str, role: str
) -> None:
    make_user("root", role)
    client, enrolment = switched_on(app_with(db, services), db, "root")
    app = app_with(db, services, totp_required=policy)
    client = app.test_client()
    token = csrf(client.get("/console/login").get_data(as_text=True))
    client.post("/console/login", data={"csrf_token": token, "username": "root",
                                        "password": PASSWORD})  # fmt: skip
    page = client.get("/console/login/code").get_data(as_text=True)
    form = {"csrf_token": csrf(page), "step": "code", "username": "root",
            "code": enrolment.code(NOW + timedelta(seconds=30))}  # fmt: skip
    assert client.post("/console/login", data=form).status_code == 302
    page = client.get(PAGE).get_data(as_text=True)
    assert "kann er hier nicht ausgeschaltet werden" in page
    assert f'action="{PAGE}/off"' not in page
    answer = switch_off(client, password=PASSWORD, code=enrolment.code(NOW + timedelta(minutes=1)))
    assert answer.status_code == 409
    assert enrolled(db, "root")


def test_where_only_admins_must_have_one_an_issuer_may_switch_it_off(
    db: Database, services: Services, make_user: Callable[..., str]
) -> None:
    make_user("anna", "issuer")
    app = app_with(db, services, totp_required="admins")
    client, enrolment = switched_on(app, db, "anna")
    code = enrolment.code(NOW + timedelta(seconds=30))
    assert switch_off(client, password=PASSWORD, code=code).status_code == 302
    assert not enrolled(db, "anna")


def test_an_admin_without_a_required_factor_still_cannot_sign_in_to_set_one_up(
    db: Database, services: Services, make_user: Callable[..., str]
) -> None:
    """A password alone never sets up the factor the policy requires: that stays on the server."""
    make_user("root", "admin")
    client = app_with(db, services, totp_required="admins").test_client()
    token = csrf(client.get("/console/login").get_data(as_text=True))
    answer = client.post("/console/login", data={"csrf_token": token, "username": "root",
                                                 "password": PASSWORD})  # fmt: skip
    assert answer.status_code == 200 and "wallet users totp root" in answer.get_data(as_text=True)
    assert client.get(PAGE).status_code == 302  # not signed in: no set-up page either


# -- the city's accounts ------------------------------------------------------------------


def test_a_city_account_is_told_its_factor_lives_at_the_provider(
    app: Flask, db: Database, services: Services
) -> None:
    with db.transaction(write=True) as session:
        user = oidc.sign_in(
            session,
            oidc.Identity(issuer="https://login.stadt-musterstadt.de/realms/stadt",
                          subject="max.desk", groups=("wallet-desk",)),
            mapping=(("wallet-desk", "issuer"),), audit_key=services.audit_key, now=NOW,
        )  # fmt: skip
        secret = accounts.start_session(
            session, username=user.username, lifetime=timedelta(hours=1), now=NOW
        )
    client = app.test_client()
    client.set_cookie("lang", "de")
    with client.session_transaction() as cookie:
        cookie["sid"] = secret
        cookie["oidc_id_token"] = ""  # as a sign-in through the provider leaves it
    page = client.get(PAGE).get_data(as_text=True)
    assert "beim Anmeldedienst der Stadt eingerichtet" in page
    assert 'name="enrolment"' not in page
    assert f'href="{PAGE}"' not in client.get("/console/").get_data(as_text=True)  # no nav link
    # A forged set-up form for it changes nothing.
    enrolment = totp.Enrolment.new()
    form = {"csrf_token": csrf(page), "enrolment": "AAAA", "code": enrolment.code_at(NOW)}
    assert client.post(PAGE, data=form).status_code == 422
    assert not enrolled(db, user.username)


# -- other sessions -----------------------------------------------------------------------


def still_signed_in(client: FlaskClient) -> bool:
    answer = client.get(PAGE)
    return answer.status_code == 200


def test_a_session_signed_in_with_a_stolen_password_ends_when_the_owner_switches_the_factor_on(
    app: Flask, db: Database, make_user: Callable[..., str]
) -> None:
    """Switching the factor on is what an owner does who fears the password is known: a
    session opened with it before must not stay open beside the new factor."""
    make_user("anna", "issuer")
    thief = signed_in_client(app, "anna")
    client, _enrolment = switched_on(app, db, "anna")
    assert still_signed_in(client)  # the owner's own session stays
    assert not still_signed_in(thief)


def test_switching_the_factor_off_ends_the_accounts_other_sessions(
    db: Database, services: Services, make_user: Callable[..., str]
) -> None:
    make_user("anna", "issuer")
    clock = [NOW]
    app = app_with(db, services, clock=lambda: clock[0])
    client, enrolment = switched_on(app, db, "anna")
    clock[0] += timedelta(seconds=30)  # a code works once: the next steps need new ones
    other = app.test_client()  # the same account on another computer, with a code
    first = other.post("/console/login", data={
        "csrf_token": csrf(other.get("/console/login").get_data(as_text=True)),
        "username": "anna", "password": PASSWORD,
    })  # fmt: skip
    assert first.headers["Location"] == "/console/login/code"
    form = {"csrf_token": csrf(other.get("/console/login/code").get_data(as_text=True)),
            "step": "code", "username": "anna", "code": enrolment.code(clock[0])}  # fmt: skip
    assert other.post("/console/login", data=form).status_code == 302
    assert still_signed_in(other)
    clock[0] += timedelta(seconds=30)
    assert switch_off(client, password=PASSWORD, code=enrolment.code(clock[0])).status_code == 302
    assert still_signed_in(client)
    assert not still_signed_in(other)


def test_a_wrong_password_on_the_off_form_is_not_counted_as_a_failed_sign_in(
    app: Flask, db: Database, make_user: Callable[..., str]
) -> None:
    """Monitoring alerts on failed sign-ins: a signed-in user mistyping a password to
    confirm a change is not someone trying accounts."""
    make_user("anna", "issuer")
    client, enrolment = switched_on(app, db, "anna")
    failures = metrics.LOGIN_FAILURES.labels("local")
    before = failures._value.get()
    later = NOW + timedelta(seconds=30)
    assert switch_off(client, password="not it", code=enrolment.code(later)).status_code == 422
    assert failures._value.get() == before
    signed_out = app.test_client()
    signed_out.post("/console/login", data={
        "csrf_token": csrf(signed_out.get("/console/login").get_data(as_text=True)),
        "username": "anna", "password": "not it",
    })  # fmt: skip
    assert failures._value.get() == before + 1  # a real failed sign-in still counts
