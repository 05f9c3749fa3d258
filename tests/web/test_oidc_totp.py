"""TOTP as the second sign-in step of local accounts (the break-glass admin).

Real argon2 (cheap parameters), the real app on each backend, its clock fixed at
NOW, codes computed with RFC 6238's parameters by cryptography's own TOTP.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from tests.factories import NOW
from wallet.config import Settings
from wallet.services import audit, totp
from wallet.services.context import Services
from wallet.store.db import Database
from wallet.store.models import StaffUserRow
from wallet.web import create_app

pytestmark = pytest.mark.usefixtures("quick_password_hashes")

PASSWORD = "correct horse battery"
SECRET = bytes(range(20))


def code(at: timedelta = timedelta(0), secret: bytes = SECRET) -> str:
    moment = int((NOW + at).timestamp())
    return TOTP(secret, 6, SHA1(), 30).generate(moment).decode()


def wrong_code() -> str:
    """A code that is none of the three the service accepts now."""
    near = {code(timedelta(seconds=s)) for s in (-30, 0, 30)}
    return next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in near)


def csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def password_step(client: FlaskClient, username: str) -> TestResponse:
    token = csrf(client.get("/console/login").get_data(as_text=True))
    form = {"csrf_token": token, "username": username, "password": PASSWORD}
    return client.post("/console/login", data=form)


def code_step(client: FlaskClient, username: str, given: str | None) -> TestResponse:
    page = client.get("/console/login/code").get_data(as_text=True)
    form = {"csrf_token": csrf(page), "step": "code", "username": username}
    if given is not None:
        form["code"] = given
    return client.post("/console/login", data=form)


def signed_in(client: FlaskClient) -> bool:
    return client.get("/console/verify").status_code == 200


def enrol(db: Database, services: Services, username: str) -> None:
    with db.transaction(write=True) as session:
        totp.enrol(
            session,
            username=username,
            enrolment=totp.Enrolment(SECRET),
            code=code(timedelta(seconds=-30)),  # the confirming code uses up the step before
            actor="test",
            audit_key=services.audit_key,
            now=NOW,
        )


def app_with(db: Database, services: Services, *, totp_required: str) -> Flask:
    settings = dataclasses.replace(services.settings, totp_required=totp_required)
    config = {"TESTING": True, "RATELIMIT_ENABLED": False}
    return create_app(settings, services=services, db=db, clock=lambda: NOW, config=config)


@pytest.fixture
def root(db: Database, services: Services, make_user: Callable[..., str]) -> str:
    """A local admin with TOTP set up."""
    make_user("root", "admin")
    enrol(db, services, "root")
    return "root"


def test_enrolled_admin_signs_in_with_password_and_code(app: Flask, root: str) -> None:
    client = app.test_client()
    first = password_step(client, root)
    assert first.status_code == 302 and first.headers["Location"] == "/console/login/code"
    assert not signed_in(client)  # the password alone is not enough
    second = code_step(client, root, code())
    assert second.status_code == 302 and second.headers["Location"] == "/console/"
    assert signed_in(client)


def test_wrong_totp_code_is_refused(app: Flask, root: str) -> None:
    client = app.test_client()
    client.set_cookie("lang", "de")
    password_step(client, root)
    answer = code_step(client, root, wrong_code())
    assert answer.status_code == 200
    assert "Der Code ist nicht richtig" in answer.get_data(as_text=True)
    assert not signed_in(client)


def test_replayed_totp_code_is_refused(app: Flask, root: str) -> None:
    used = code()
    first = app.test_client()
    password_step(first, root)
    assert code_step(first, root, used).status_code == 302
    thief = app.test_client()  # saw the code over the admin's shoulder, knows the password
    password_step(thief, root)
    assert code_step(thief, root, used).status_code == 200
    assert not signed_in(thief)
    # An older code (the step before) is worthless now too; the next one works.
    assert code_step(thief, root, code(timedelta(seconds=-30))).status_code == 200
    assert code_step(thief, root, code(timedelta(seconds=30))).status_code == 302


def test_missing_totp_code_is_refused(app: Flask, root: str) -> None:
    client = app.test_client()
    password_step(client, root)
    for given in (None, "", "12345", "abcdef", "1234567"):
        assert code_step(client, root, given).status_code == 200
        assert not signed_in(client)


def test_code_step_cannot_be_skipped_or_used_for_another_account(
    app: Flask, root: str, make_user: Callable[..., str], db: Database, services: Services
) -> None:
    make_user("second", "admin")
    enrol(db, services, "second")
    client = app.test_client()
    password_step(client, root)
    assert client.get("/console/").status_code == 302  # nowhere without the code
    # The right code of another account, sent under its name, after root's password.
    answer = code_step(client, "second", code())
    assert answer.status_code == 200 and not signed_in(client)
    # A code without any password step before it.
    fresh = app.test_client()
    token = csrf(fresh.get("/console/login").get_data(as_text=True))
    form = {"csrf_token": token, "step": "code", "username": root, "code": code()}
    assert fresh.post("/console/login", data=form).status_code == 200
    assert not signed_in(fresh)


def test_code_step_expires_after_five_minutes(db: Database, services: Services, root: str) -> None:
    clock = [NOW]
    app = create_app(services.settings, services=services, db=db, clock=lambda: clock[0],
                     config={"TESTING": True, "RATELIMIT_ENABLED": False})  # fmt: skip
    client = app.test_client()
    password_step(client, root)
    page = client.get("/console/login/code").get_data(as_text=True)
    clock[0] = NOW + timedelta(minutes=6)
    form = {"csrf_token": csrf(page), "step": "code", "username": root,
            "code": code(timedelta(minutes=6))}  # fmt: skip
    assert client.post("/console/login", data=form).status_code == 200
    assert not signed_in(client)
    assert client.get("/console/login/code").headers["Location"] == "/console/login"


def test_totp_step_has_the_login_rate_limits(db: Database, services: Services, root: str) -> None:
    app = create_app(
        services.settings, services=services, db=db, clock=lambda: NOW,
        config={"TESTING": True, "RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": "memory://"},
    )  # fmt: skip
    client = app.test_client()
    password_step(client, root)
    answers = [code_step(client, root, wrong_code()).status_code for _ in range(6)]
    assert answers == [200] * 5 + [429]
    # Even the right code waits now: guessing a million codes is not an option.
    assert code_step(client, root, code()).status_code == 429


def test_admin_without_totp_is_refused_where_it_is_required(
    db: Database, services: Services, make_user: Callable[..., str]
) -> None:
    make_user("root", "admin")
    make_user("anna", "issuer")
    app = app_with(db, services, totp_required="admins")
    client = app.test_client()
    client.set_cookie("lang", "de")
    answer = password_step(client, "root")
    assert answer.status_code == 200
    assert "wallet users totp root" in answer.get_data(as_text=True)
    assert not signed_in(client)
    assert password_step(app.test_client(), "anna").status_code == 302  # issuers need none


def test_all_local_accounts_need_totp_where_required(
    db: Database, services: Services, make_user: Callable[..., str]
) -> None:
    make_user("anna", "issuer")
    app = app_with(db, services, totp_required="all")
    assert password_step(app.test_client(), "anna").status_code == 200
    enrol(db, services, "anna")
    client = app.test_client()
    assert password_step(client, "anna").headers["Location"] == "/console/login/code"
    assert code_step(client, "anna", code()).status_code == 302


def test_totp_secret_is_stored_sealed_and_enrolment_audited(
    db: Database, root: str, caplog: pytest.LogCaptureFixture
) -> None:
    with db.transaction(write=False) as session:
        row = session.scalars(select(StaffUserRow).where(StaffUserRow.username == root)).one()
        entries = audit.trail(session, f"user:{root}")
    assert row.totp_secret is not None
    assert (
        SECRET.hex() not in row.totp_secret and "AAAQEAYEAUDAOCAJBIFQYDIOB4" not in row.totp_secret
    )
    assert [e.action for e in entries if e.action == "user.totp"] == ["user.totp"]
    assert all("AAAQEAYE" not in r.getMessage() for r in caplog.records)


def test_totp_policy_defaults() -> None:
    assert Settings(dev_mode=False).totp_policy == "admins"
    assert Settings(dev_mode=False, oidc_issuer="https://login.stadt.de").totp_policy == "all"
    assert Settings(dev_mode=True).totp_policy == "enrolled"
    assert Settings(dev_mode=True, totp_required="all").totp_policy == "all"
