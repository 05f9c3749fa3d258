"""The staff console: sign-in and its limits, CSRF, roles, issuing, changes, search, verify."""

from __future__ import annotations

import os
import re
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.factories import HOLDERS, NOW, fresh_holder, genuine_token_without_a_published_list
from wallet.passtypes import Field, Text
from wallet.services import accounts, audit, passes
from wallet.services.context import Services
from wallet.store.db import Database
from wallet.web import create_app
from wallet.web.console import html_pattern

pytestmark = pytest.mark.usefixtures("quick_password_hashes")

PASSWORD = "correct horse battery"
ORIGIN = "https://pass.stadt-musterstadt.de"
REDIS_URL = os.environ.get("WALLET_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, "no CSRF token in the page"
    return found.group(1)


def page_text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def login(
    client: FlaskClient, username: str, password: str = PASSWORD, **extra: Any
) -> TestResponse:
    token = csrf_token(client.get("/console/login").get_data(as_text=True))
    form = {"csrf_token": token, "username": username, "password": password, **extra}
    return client.post("/console/login", data=form)


def post_form(client: FlaskClient, page: str, action: str, data: dict[str, str]) -> TestResponse:
    """Submit a form the way a browser would: with the CSRF token of the page it is on."""
    token = csrf_token(client.get(page).get_data(as_text=True))
    return client.post(action, data={"csrf_token": token, **data})


def issue(db: Database, services: Services, type_id: str = "parking", **holder: str) -> str:
    with db.transaction(write=True) as session:
        issued = passes.issue_pass(
            session,
            services,
            type_id=type_id,
            holder=holder or fresh_holder(type_id),
            actor="test",
            now=NOW,
        )
        return issued.record.serial


def state_of(db: Database, serial: str) -> str:
    with db.transaction(write=False) as session:
        return passes.get_pass(session, serial).state


@pytest.fixture
def issuer(client: FlaskClient, make_user: Callable[..., str]) -> FlaskClient:
    """The client, signed in as anna (issuer)."""
    make_user("anna", "issuer")
    assert login(client, "anna").status_code == 302
    return client


# -- signing in ---------------------------------------------------------------------------------


def test_login_with_the_right_password_opens_a_secure_session(
    client: FlaskClient, make_user: Callable[..., str]
) -> None:
    make_user("anna", "issuer")
    response = login(client, "anna")
    assert response.status_code == 302 and response.location == "/console/"
    cookies = response.headers.getlist("Set-Cookie")
    cookie = next((c for c in cookies if c.startswith("session=")), "")
    for flag in ("HttpOnly", "SameSite=Lax", "Secure", "Expires="):
        assert flag in cookie, flag
    page = client.get("/console/")
    assert page.status_code == 200 and "anna" in page.get_data(as_text=True)


@pytest.mark.parametrize(
    ("username", "password"), [("anna", "wrong password!"), ("nobody", PASSWORD)]
)
def test_login_with_a_wrong_password_or_user_fails(
    client: FlaskClient, make_user: Callable[..., str], username: str, password: str
) -> None:
    make_user("anna", "issuer")
    response = login(client, username, password)
    assert response.status_code == 200
    text = page_text(response.get_data(as_text=True))
    assert "Benutzername oder Passwort sind nicht richtig" in text
    assert 'value="' + username + '"' in response.get_data(as_text=True)  # kept for a retry
    assert client.get("/console/").status_code == 302


def test_disabled_user_cannot_log_in_and_loses_an_open_session(
    client: FlaskClient, db: Database, services: Services, make_user: Callable[..., str]
) -> None:
    make_user("anna", "issuer")
    assert login(client, "anna").status_code == 302
    with db.transaction(write=True) as session:
        accounts.disable_user(
            session, username="anna", actor="test", audit_key=services.audit_key, now=NOW
        )
    assert client.get("/console/").headers["Location"].startswith("/console/login")
    response = login(client, "anna")
    assert response.status_code == 200
    assert "Konto ist gesperrt" in response.get_data(as_text=True)


def test_session_is_regenerated_at_login(
    client: FlaskClient, make_user: Callable[..., str]
) -> None:
    make_user("anna", "issuer")
    planted = csrf_token(client.get("/console/login").get_data(as_text=True))
    assert login(client, "anna").status_code == 302
    fresh = csrf_token(client.get("/console/").get_data(as_text=True))
    assert fresh != planted
    # the token of the session before the login is worthless after it
    assert client.post("/console/logout", data={"csrf_token": planted}).status_code == 400
    assert client.post("/console/logout", data={"csrf_token": fresh}).status_code == 302


def test_session_ends_after_one_shift(
    db: Database, services: Services, make_user: Callable[..., str]
) -> None:
    clock = [NOW]
    app = create_app(
        services.settings,
        services=services,
        db=db,
        clock=lambda: clock[0],
        config={"TESTING": True},
    )
    client = app.test_client()
    make_user("anna", "issuer")
    assert login(client, "anna").status_code == 302
    clock[0] = NOW + timedelta(hours=7, minutes=59)
    assert client.get("/console/").status_code == 200
    clock[0] = NOW + timedelta(hours=8, seconds=1)
    assert client.get("/console/").headers["Location"].startswith("/console/login")


def test_logout_ends_the_session(issuer: FlaskClient) -> None:
    response = post_form(issuer, "/console/", "/console/logout", {})
    assert response.status_code == 302 and response.location == "/console/login"
    assert "Sie haben sich abgemeldet." in issuer.get("/console/login").get_data(as_text=True)
    assert issuer.get("/console/").status_code == 302


def copy_session(source: FlaskClient, app: Flask) -> FlaskClient:
    """Another browser with a copy of the session cookie (stolen, or kept from before)."""
    cookie = source.get_cookie("session")
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie("session", cookie.value)
    return thief


def signed_in(client: FlaskClient) -> bool:
    response = client.get("/console/")
    return response.status_code == 200 and "/console/login" not in response.headers.get(
        "Location", ""
    )


def test_copied_session_cookie_stops_working_after_logout(app: Flask, issuer: FlaskClient) -> None:
    thief = copy_session(issuer, app)
    assert signed_in(thief)  # the copy works while the session lives
    assert post_form(issuer, "/console/", "/console/logout", {}).status_code == 302
    assert not signed_in(thief)
    assert thief.get("/console/").headers["Location"].startswith("/console/login")


def test_logout_ends_only_that_session(
    app: Flask, client: FlaskClient, make_user: Callable[..., str]
) -> None:
    make_user("anna", "issuer")
    desk, office = app.test_client(), app.test_client()
    assert login(desk, "anna").status_code == 302
    assert login(office, "anna").status_code == 302
    assert post_form(desk, "/console/", "/console/logout", {}).status_code == 302
    assert not signed_in(desk)
    assert signed_in(office)


@pytest.mark.parametrize("change", ["password", "role", "disable"])
def test_password_role_or_account_change_ends_every_session_of_the_user(
    app: Flask, db: Database, make_user: Callable[..., str], change: str
) -> None:
    make_user("anna", "issuer")
    make_user("bert", "issuer")
    anna_desk, anna_office, bert = app.test_client(), app.test_client(), app.test_client()
    for client, name in ((anna_desk, "anna"), (anna_office, "anna"), (bert, "bert")):
        assert login(client, name).status_code == 302
    stolen = copy_session(anna_desk, app)
    key = app.extensions["wallet"].services.audit_key
    with db.transaction(write=True) as session:
        if change == "password":
            accounts.set_password(
                session, username="anna", password="a new long password", actor="test",
                audit_key=key, now=NOW,
            )  # fmt: skip
        elif change == "role":
            accounts.set_role(
                session, username="anna", role="verifier", actor="test", audit_key=key, now=NOW
            )
        else:
            accounts.disable_user(session, username="anna", actor="test", audit_key=key, now=NOW)
    assert not signed_in(anna_desk)
    assert not signed_in(anna_office)
    assert not signed_in(stolen)
    assert signed_in(bert)  # other users keep their sessions


def test_the_cookie_holds_no_user_name_only_a_session_secret(
    app: Flask, issuer: FlaskClient
) -> None:
    cookie = issuer.get_cookie("session")
    assert cookie is not None
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    assert serializer is not None
    data = serializer.loads(cookie.value)
    assert "user" not in data and "anna" not in str(data)
    assert isinstance(data["sid"], str) and len(data["sid"]) >= 40


def test_pages_need_a_login_and_return_there_afterwards(
    client: FlaskClient, make_user: Callable[..., str]
) -> None:
    make_user("anna", "issuer")
    response = client.get("/console/?q=erika")
    assert response.status_code == 302
    assert response.location == "/console/login?next=/console/?q%3Derika"
    assert login(client, "anna", next="/console/?q=erika").location == "/console/?q=erika"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/api/v1/passes"])
def test_login_never_redirects_outside_the_console(
    client: FlaskClient, make_user: Callable[..., str], target: str
) -> None:
    make_user("anna", "issuer")
    assert login(client, "anna", next=target).location == "/console/"


# -- rate limits --------------------------------------------------------------------------------


def limited_app(db: Database, services: Services, **config: Any) -> Flask:
    settings = services.settings
    if "redis_url" in config:
        settings = replace(settings, redis_url=config.pop("redis_url"))
    return create_app(
        settings,
        services=replace(services, settings=settings),
        db=db,
        clock=lambda: NOW,
        config={"TESTING": True, "RATELIMIT_ENABLED": True, **config},
    )


def attempt(client: FlaskClient, username: str, address: str) -> TestResponse:
    environ = {"REMOTE_ADDR": address}
    token = csrf_token(client.get("/console/login", environ_base=environ).get_data(as_text=True))
    form = {"csrf_token": token, "username": username, "password": "not the password"}
    return client.post("/console/login", data=form, environ_base=environ)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # counters live outside the database
def test_login_attempts_are_limited_per_address(db: Database, services: Services) -> None:
    client = limited_app(db, services).test_client()
    for i in range(5):
        assert attempt(client, f"user{i}", "192.0.2.1").status_code == 200
    blocked = attempt(client, "someone-else", "192.0.2.1")
    assert blocked.status_code == 429
    assert "Zu viele Anmeldeversuche" in blocked.get_data(as_text=True)
    assert int(blocked.headers["Retry-After"]) > 0
    assert attempt(client, "user0", "192.0.2.2").status_code == 200  # another address
    assert (
        client.get("/console/login", environ_base={"REMOTE_ADDR": "192.0.2.1"}).status_code == 200
    )


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_login_attempts_are_limited_per_username(db: Database, services: Services) -> None:
    client = limited_app(db, services).test_client()
    for i in range(5):
        assert attempt(client, "anna", f"192.0.2.{10 + i}").status_code == 200
    assert attempt(client, "ANNA ", "192.0.2.99").status_code == 429  # case and spaces do not help
    assert attempt(client, "bert", "192.0.2.99").status_code == 200


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_successful_logins_do_not_count(
    db: Database, services: Services, make_user: Callable[..., str]
) -> None:
    """A whole office behind one address can start its shift."""
    client = limited_app(db, services).test_client()
    make_user("anna", "issuer")
    for _ in range(6):
        environ = {"REMOTE_ADDR": "192.0.2.50"}
        page = client.get("/console/login", environ_base=environ).get_data(as_text=True)
        form = {"csrf_token": csrf_token(page), "username": "anna", "password": PASSWORD}
        assert client.post("/console/login", data=form, environ_base=environ).status_code == 302
        client.delete_cookie("session")
    for _ in range(5):
        assert attempt(client, "anna", "192.0.2.50").status_code == 200
    assert attempt(client, "anna", "192.0.2.50").status_code == 429


def sign_in_at(client: FlaskClient, username: str, address: str, password: str) -> TestResponse:
    environ = {"REMOTE_ADDR": address}
    page = client.get("/console/login", environ_base=environ).get_data(as_text=True)
    form = {"csrf_token": csrf_token(page), "username": username, "password": password}
    return client.post("/console/login", data=form, environ_base=environ)


def throttle_reports(db: Database) -> list[str | None]:
    with db.transaction(write=False) as session:
        entries = audit.trail(session, "user:root") + audit.trail(session, "user:nobody")
    return [e.target for e in entries if e.action == "user.login_throttled"]


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_stranger_cannot_lock_out_a_known_admin(
    db: Database, services: Services, make_user: Callable[..., str]
) -> None:
    app = limited_app(db, services)
    make_user("root", "admin")
    desk = app.test_client()  # the admin's own browser
    assert sign_in_at(desk, "root", "192.0.2.50", PASSWORD).status_code == 302
    desk.delete_cookie("session")
    stranger = app.test_client()
    answers = [attempt(stranger, "root", f"198.51.100.{i}").status_code for i in range(40)]
    assert answers[:5] == [200] * 5 and set(answers[5:]) == {429}  # guessing stops
    # ... from the admin's own address too, which the stranger may share (one office NAT)
    assert [attempt(stranger, "root", "192.0.2.50").status_code for _ in range(6)][-1] == 429
    # The admin, at the usual desk, still signs in.
    assert sign_in_at(desk, "root", "192.0.2.50", PASSWORD).status_code == 302


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_known_browser_still_has_a_limit_of_its_own(
    db: Database, services: Services, make_user: Callable[..., str]
) -> None:
    app = limited_app(db, services)
    make_user("root", "admin")
    desk = app.test_client()
    assert sign_in_at(desk, "root", "192.0.2.50", PASSWORD).status_code == 302
    desk.delete_cookie("session")
    wrong = [sign_in_at(desk, "root", "192.0.2.50", "not it").status_code for _ in range(6)]
    assert wrong == [200] * 5 + [429]


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_forged_or_foreign_device_cookie_does_not_lift_the_limit(
    db: Database, services: Services, make_user: Callable[..., str]
) -> None:
    app = limited_app(db, services)
    make_user("root", "admin")
    make_user("mallory", "verifier")
    stranger = app.test_client()
    # A device cookie of the stranger's own account says nothing about root's.
    assert sign_in_at(stranger, "mallory", "198.51.100.1", PASSWORD).status_code == 302
    stranger.delete_cookie("session")
    answers = [attempt(stranger, "root", f"198.51.100.{i}").status_code for i in range(6)]
    assert answers == [200] * 5 + [429]
    forged = app.test_client()
    forged.set_cookie("wallet_device", '{"id": "x", "users": ["root"]}', path="/console/")
    assert attempt(forged, "root", "198.51.100.77").status_code == 429


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_throttled_account_is_reported_to_the_admins_once(
    db: Database, services: Services, make_user: Callable[..., str]
) -> None:
    app = limited_app(db, services)
    make_user("root", "admin")
    stranger = app.test_client()
    for i in range(12):
        attempt(stranger, "root", f"198.51.100.{i}")
        attempt(stranger, "nobody", f"198.51.100.{i}")
    assert throttle_reports(db) == ["user:root"]  # once, and only for a real account


def redis_reachable() -> bool:
    host, port = "127.0.0.1", 6379
    found = re.match(r"redis://([^:/]+):(\d+)", REDIS_URL)
    if found:
        host, port = found.group(1), int(found.group(2))
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    if not redis_reachable():
        pytest.skip(
            f"no Redis at {REDIS_URL} (set WALLET_TEST_REDIS_URL) for the shared-limit test"
        )
    import redis

    prefix = f"wallet-test-{uuid.uuid4().hex}"
    yield prefix
    connection = redis.Redis.from_url(REDIS_URL)
    for key in connection.scan_iter(f"*{prefix}*"):
        connection.delete(key)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_login_limit_holds_across_workers_with_redis(
    db: Database, services: Services, redis_prefix: str
) -> None:
    """Two apps stand in for two gunicorn workers: the counters in Redis are shared."""
    workers = [
        limited_app(db, services, redis_url=REDIS_URL, RATELIMIT_KEY_PREFIX=redis_prefix)
        for _ in range(2)
    ]
    assert all(w.config["RATELIMIT_STORAGE_URI"] == REDIS_URL for w in workers)
    first, second = (w.test_client() for w in workers)
    for i in range(5):
        assert attempt(first if i % 2 else second, "anna", "192.0.2.7").status_code == 200
    assert attempt(first, "anna", "192.0.2.7").status_code == 429
    assert attempt(second, "anna", "192.0.2.7").status_code == 429
    # a worker of another deployment (its own prefix) counts on its own
    other = limited_app(
        db, services, redis_url=REDIS_URL, RATELIMIT_KEY_PREFIX=redis_prefix + "-other"
    )
    assert attempt(other.test_client(), "anna", "192.0.2.7").status_code == 200


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_login_limit_falls_back_to_memory_when_redis_is_down(
    db: Database, services: Services
) -> None:
    unused_port = socket.socket()
    unused_port.bind(("127.0.0.1", 0))
    down = f"redis://127.0.0.1:{unused_port.getsockname()[1]}/0"
    unused_port.close()
    client = limited_app(db, services, redis_url=down).test_client()
    for _ in range(5):
        assert attempt(client, "anna", "192.0.2.8").status_code == 200
    assert attempt(client, "anna", "192.0.2.8").status_code == 429


# -- CSRF ---------------------------------------------------------------------------------------


def test_forms_without_a_csrf_token_are_refused(
    issuer: FlaskClient, client: FlaskClient, db: Database, services: Services
) -> None:
    serial = issue(db, services)
    posts = {
        "/console/issue/parking": {"plate": "D-AB 1234", "zone": "12"},
        f"/console/passes/{serial}/revoke": {"reason": "x", "confirm": "yes"},
        "/console/verify": {"text": "WP1123"},
        "/console/logout": {},
    }
    for path, data in posts.items():
        for token in (None, "forged-token"):
            form = data if token is None else {**data, "csrf_token": token}
            response = issuer.post(path, data=form)
            assert response.status_code == 400, path
            assert "Das Formular konnte nicht angenommen werden" in response.get_data(as_text=True)
    assert state_of(db, serial) == "valid"
    anonymous = FlaskClient(issuer.application)
    assert anonymous.post("/console/login", data={"username": "anna"}).status_code == 400


def test_csrf_is_not_required_outside_the_html_blueprints(app: Flask) -> None:
    """The JSON API authenticates with bearer tokens; only our blueprints check CSRF."""
    app.add_url_rule("/api/v1/csrf-probe", "csrf_probe", lambda: "ok", methods=["POST"])
    assert app.config["WTF_CSRF_CHECK_DEFAULT"] is False
    assert app.test_client().post("/api/v1/csrf-probe", json={}).status_code == 200


def test_https_posts_need_a_same_origin_referrer(
    client: FlaskClient, make_user: Callable[..., str]
) -> None:
    """Flask-WTF checks the referrer on HTTPS; console pages send it same-origin only."""
    make_user("anna", "issuer")
    page = client.get("/console/login", base_url=ORIGIN)
    assert page.headers["Referrer-Policy"] == "same-origin"
    form = {"csrf_token": csrf_token(page.get_data(as_text=True)), "username": "anna"}
    form["password"] = PASSWORD
    assert client.post("/console/login", data=form, base_url=ORIGIN).status_code == 400
    elsewhere = {"Referer": "https://evil.example/console/login"}
    response = client.post("/console/login", data=form, base_url=ORIGIN, headers=elsewhere)
    assert response.status_code == 400
    same = {"Referer": f"{ORIGIN}/console/login"}
    assert (
        client.post("/console/login", data=form, base_url=ORIGIN, headers=same).status_code == 302
    )


# -- roles --------------------------------------------------------------------------------------


def test_verifier_may_only_verify(
    client: FlaskClient, db: Database, services: Services, make_user: Callable[..., str]
) -> None:
    serial = issue(db, services)
    make_user("vera", "verifier")
    assert login(client, "vera").location == "/console/verify"
    for path in (
        "/console/",
        "/console/issue",
        "/console/issue/parking",
        f"/console/passes/{serial}",
    ):
        response = client.get(path)
        assert response.status_code == 403, path
        assert "Nicht erlaubt" in response.get_data(as_text=True)
    token = csrf_token(client.get("/console/verify").get_data(as_text=True))
    for action in ("revoke", "suspend", "reinstate", "reissue"):
        form = {"csrf_token": token, "reason": "x", "confirm": "yes"}
        assert client.post(f"/console/passes/{serial}/{action}", data=form).status_code == 403
    form = {"csrf_token": token, "plate": "D-AB 1234", "zone": "12"}
    assert client.post("/console/issue/parking", data=form).status_code == 403
    assert state_of(db, serial) == "valid"
    page = client.get("/console/verify").get_data(as_text=True)
    assert 'href="/console/issue"' not in page  # the menu offers only what the role may use


@pytest.mark.parametrize("role", ["admin", "issuer"])
def test_issuers_and_admins_may_use_everything(
    client: FlaskClient, db: Database, services: Services, make_user: Callable[..., str], role: str
) -> None:
    serial = issue(db, services)
    make_user("anna", role)
    login(client, "anna")
    for path in (
        "/console/",
        "/console/issue/parking",
        f"/console/passes/{serial}",
        "/console/verify",
    ):
        assert client.get(path).status_code == 200, path


# -- issuing ------------------------------------------------------------------------------------


def test_issue_form_is_generated_from_the_pass_type(issuer: FlaskClient) -> None:
    html = issuer.get("/console/issue/parking").get_data(as_text=True)
    assert '<label for="f-plate">Kennzeichen</label>' in html
    assert '<label for="f-zone">Zone</label>' in html
    plate = re.search(r'<input id="f-plate"[^>]*>', html, re.S)
    assert plate is not None
    # Room for a second car: two plates of 12 characters and ", " between them.
    assert 'maxlength="26"' in plate.group(0) and "required" in plate.group(0)
    assert "Bis zu 2 Kennzeichen, durch Komma getrennt" in html
    assert "pattern=" not in plate.group(0)  # read in any spelling: the server judges
    zone = re.search(r'<input id="f-zone"[^>]*>', html, re.S)
    assert zone is not None and 'pattern="(?i:[0-9A-Z]{1,4})"' in zone.group(0)
    english = issuer.get("/console/issue/library?lang=en").get_data(as_text=True)
    assert '<label for="f-card_number">Card number</label>' in english
    assert 'pattern="(?i:[0-9]{12})"' in english
    name = re.search(r'<input id="f-name"[^>]*>', english, re.S)
    assert name is not None and "pattern=" not in name.group(0)
    choose = issuer.get("/console/issue").get_data(as_text=True)
    assert 'href="/console/issue/library"' in choose and 'href="/console/issue/parking"' in choose
    assert issuer.get("/console/issue/swimming").status_code == 404


@pytest.mark.parametrize(
    ("python", "browser"),
    [
        ("[0-9]{12}", "(?i:[0-9]{12})"),
        ("[A-ZÄÖÜ]{1,3}[- ][A-Z]{1,2}", r"(?i:[A-ZÄÖÜ]{1,3}[\- ][A-Z]{1,2})"),
        ("[A-Z-]+", r"(?i:[A-Z\-]+)"),
        ("[^-x]", r"(?i:[^\-x])"),
        ("[]a]", r"(?i:[\]a])"),
        ("[a(b)|/c]", r"(?i:[a\(b\)\|\/c])"),
        (r"\d{3}-[\-x]", r"(?i:\d{3}-[\-x])"),
        ("(?P<x>a)", None),
        (None, None),
    ],
)
def test_html_pattern_follows_the_browsers_v_flag_rules(
    python: str | None, browser: str | None
) -> None:
    field = Field(
        name="f",
        label=Text(de="F", en="F"),
        max_length=10,
        pattern=re.compile(python) if python is not None else None,
        in_token=False,
    )
    assert html_pattern(field) == browser


def test_issue_via_form_shows_the_claim_link_once(
    issuer: FlaskClient, db: Database, services: Services
) -> None:
    form_page = issuer.get("/console/issue/parking").get_data(as_text=True)
    form_id = re.search(r'name="form_id" value="([^"]+)"', form_page)
    assert form_id is not None
    data = {
        "csrf_token": csrf_token(form_page),
        "form_id": form_id.group(1),
        "plate": "b-xy 77",
        "zone": "4a",
    }
    response = issuer.post("/console/issue/parking", data=data)
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    link = re.search(rf'id="claim-url"[^>]*>({re.escape(ORIGIN)}/p/([A-Za-z0-9_-]+))<', html)
    assert link is not None
    assert "Dieser Link wird nur dieses eine Mal angezeigt." in page_text(html)
    with db.transaction(write=False) as session:
        found = passes.list_passes(session, text="B-XY 77")
        assert found.total == 1
        row = found.items[0]
        assert row.holder == {"plate": "B-XY 77", "zone": "4A"}
        assert [e.actor for e in audit.trail(session, row.serial)] == ["user:anna"]
    # the link opens the citizen's page
    citizen = issuer.get(f"/p/{link.group(2)}")
    assert citizen.status_code == 200 and "B-XY 77" in citizen.get_data(as_text=True)
    # and staff can print the pass at the desk for a holder without a smartphone
    sheet = f'href="/p/{link.group(2)}/card.pdf?layout=sheet"'
    assert sheet in html and "A4-Bogen zum Ausschneiden (PDF)" in html
    printed = issuer.get(f"/p/{link.group(2)}/card.pdf?layout=sheet")
    assert printed.status_code == 200 and printed.mimetype == "application/pdf"
    # never again: the detail page cannot show it, and sending the form again issues nothing
    assert link.group(2) not in issuer.get(f"/console/passes/{row.serial}").get_data(as_text=True)
    again = issuer.post("/console/issue/parking", data=data)
    assert again.status_code == 302 and again.location == f"/console/passes/{row.serial}"
    with db.transaction(write=False) as session:
        assert passes.list_passes(session).total == 1


def test_issue_form_hints_name_the_format_with_an_example(
    issuer: FlaskClient, db: Database
) -> None:
    """ "Kennzeichen wie D-AB 1234"; a digits-only card number gets no hint about capitals."""

    def hint(type_id: str, field: str) -> str:
        html = issuer.get(f"/console/issue/{type_id}").get_data(as_text=True)
        found = re.search(rf'<p class="hint" id="f-{field}-hint">(.*?)</p>', html, re.S)
        assert found is not None, field
        return page_text(found.group(1))

    assert hint("parking", "plate") == (  # a permit may hold a second car
        "Zum Beispiel: D-AB 1234 Bis zu 2 Kennzeichen, durch Komma getrennt; "
        "Buchstaben werden groß gespeichert."
    )
    assert hint("library", "card_number") == "Zum Beispiel: 100200300400 Höchstens 12 Zeichen."
    assert hint("library", "name") == "Höchstens 80 Zeichen."


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (
            {"plate": "NOT A PLATE", "zone": "12"},
            "plate",
            "Das Format stimmt nicht, zum Beispiel: D-AB 1234",
        ),
        ({"plate": "", "zone": "12"}, "plate", "Bitte füllen Sie dieses Feld aus."),
        ({"plate": "D-AB 1234", "zone": "12345"}, "zone", "Bitte höchstens 4 Zeichen verwenden."),
        (
            {"plate": "D-AB 1234", "zone": "12", "valid_until": "2030-01-01"},
            "valid_until",
            "Wählen Sie ein Datum in der Zukunft, spätestens den 24. November 2027.",
        ),
        (
            {"plate": "D-AB 1234", "zone": "12", "valid_until": "2026-11-01"},
            "valid_until",
            "Wählen Sie ein Datum in der Zukunft, spätestens den 24. November 2027.",
        ),
        *(
            (
                {"plate": "D-AB 1234", "zone": "12", "valid_until": hostile},
                "valid_until",
                "Wählen Sie ein Datum in der Zukunft, spätestens den 24. November 2027.",
            )
            for hostile in ("0001-01-01", "9999-12-31", "next tuesday", "2027-02-30")
        ),
    ],
)
def test_issue_form_shows_errors_next_to_the_field(
    issuer: FlaskClient, db: Database, data: dict[str, str], field: str, message: str
) -> None:
    response = post_form(issuer, "/console/issue/parking", "/console/issue/parking", data)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    block = re.search(
        rf'<div class="form-field form-field--error">\s*<label for="f-{field}">.*?</div>',
        html,
        re.S,
    )
    assert block is not None, f"no error block around {field}"
    assert message in page_text(block.group(0))
    assert 'aria-invalid="true"' in block.group(0)
    assert f'aria-describedby="f-{field}-hint f-{field}-error"' in block.group(0)
    assert f'value="{data["plate"]}"' in html  # what was typed stays
    with db.transaction(write=False) as session:
        assert passes.list_passes(session).total == 0


def test_valid_until_from_the_form_means_through_that_day(
    issuer: FlaskClient, db: Database
) -> None:
    data = {"plate": "D-AB 1234", "zone": "12", "valid_until": "2027-03-31"}
    response = post_form(issuer, "/console/issue/parking", "/console/issue/parking", data)
    assert response.status_code == 201
    with db.transaction(write=False) as session:
        row = passes.list_passes(session).items[0]
    assert row.valid_until == datetime.fromisoformat("2027-03-31T23:59:59+02:00")
    data["valid_until"] = "2027-11-24"  # the last possible day: up to the type's limit
    data["plate"] = "D-AB 1235"  # another car (one live permit per plate and zone)
    response = post_form(issuer, "/console/issue/parking", "/console/issue/parking", data)
    assert response.status_code == 201


# -- changing a pass ----------------------------------------------------------------------------


def act(client: FlaskClient, serial: str, action: str, **data: str) -> TestResponse:
    page = f"/console/passes/{serial}"
    return post_form(client, page, f"{page}/{action}", data)


def test_revoke_via_form_with_reason_and_confirmation(
    issuer: FlaskClient, db: Database, services: Services
) -> None:
    serial = issue(db, services, "library")
    detail = issuer.get(f"/console/passes/{serial}").get_data(as_text=True)
    assert f'action="/console/passes/{serial}/revoke"' in detail
    assert f'action="/console/passes/{serial}/suspend"' not in detail  # library: not suspendable
    response = act(issuer, serial, "revoke", reason="card reported stolen", confirm="yes")
    assert response.status_code == 302 and response.location == f"/console/passes/{serial}"
    assert state_of(db, serial) == "revoked"
    text = page_text(issuer.get(response.location).get_data(as_text=True))
    assert "Der Ausweis wurde widerrufen." in text
    assert "user:anna Widerrufen Grund: card reported stolen Zustand: Widerrufen" in text
    assert "test Ausgestellt Ausweisart: Bibliotheksausweis" in text
    with db.transaction(write=False) as session:
        entry = audit.trail(session, serial)[0]
    assert (entry.actor, entry.action) == ("user:anna", "pass.revoke")
    assert entry.details["reason"] == "card reported stolen"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"reason": "stolen"}, "Bitte bestätigen Sie mit dem Häkchen."),
        ({"reason": "  ", "confirm": "yes"}, "Bitte geben Sie einen Grund an"),
        ({"reason": "x" * 501, "confirm": "yes"}, "Bitte höchstens 500 Zeichen verwenden."),
    ],
)
def test_state_changes_need_a_reason_and_a_confirmation(
    issuer: FlaskClient, db: Database, services: Services, data: dict[str, str], error: str
) -> None:
    serial = issue(db, services)
    response = act(issuer, serial, "revoke", **data)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert error in page_text(html)
    assert '<details class="action action--revoke" open>' in html
    assert state_of(db, serial) == "valid"


def test_suspend_and_reinstate_via_forms(
    issuer: FlaskClient, db: Database, services: Services
) -> None:
    serial = issue(db, services, "parking")
    assert act(issuer, serial, "suspend", reason="fee unpaid", confirm="yes").status_code == 302
    assert state_of(db, serial) == "suspended"
    detail = issuer.get(f"/console/passes/{serial}").get_data(as_text=True)
    assert "Der Ausweis wurde vorübergehend gesperrt." in detail
    assert f'action="/console/passes/{serial}/reinstate"' in detail
    assert act(issuer, serial, "reinstate", reason="fee paid", confirm="yes").status_code == 302
    assert state_of(db, serial) == "valid"
    with db.transaction(write=False) as session:
        actions = [e.action for e in audit.trail(session, serial)]
    assert actions == ["pass.reinstate", "pass.suspend", "pass.issue"]


def test_actions_that_do_not_fit_the_state_are_refused(
    issuer: FlaskClient, db: Database, services: Services
) -> None:
    library = issue(db, services, "library")
    response = act(issuer, library, "suspend", reason="x", confirm="yes")
    assert response.status_code == 409
    assert "im aktuellen Zustand des Ausweises nicht möglich" in response.get_data(as_text=True)
    assert act(issuer, library, "reinstate", reason="x", confirm="yes").status_code == 409
    assert act(issuer, library, "revoke", reason="x", confirm="yes").status_code == 302
    assert act(issuer, library, "revoke", reason="x", confirm="yes").status_code == 409
    assert act(issuer, library, "explode", reason="x", confirm="yes").status_code == 404
    assert act(issuer, "no-such-serial", "revoke", reason="x", confirm="yes").status_code == 404


def test_renew_via_form_issues_the_successor_and_keeps_the_old_pass_until_claimed(
    issuer: FlaskClient, db: Database, services: Services
) -> None:
    serial = issue(db, services, "library")
    page = page_text(issuer.get(f"/console/passes/{serial}").get_data(as_text=True))
    assert "höchstens 28 Tage" in page  # the pass type's grace period, said before acting
    response = act(issuer, serial, "renew", reason="annual renewal", confirm="yes")
    assert response.status_code == 201
    html = response.get_data(as_text=True)
    assert "Verlängerter Ausweis ausgestellt" in html
    assert f"Der alte Ausweis {serial} bleibt gültig, bis der neue abgerufen wird" in page_text(
        html
    )
    assert re.search(rf'id="claim-url"[^>]*>{re.escape(ORIGIN)}/p/[A-Za-z0-9_-]+<', html)
    with db.transaction(write=False) as session:
        old = passes.get_pass(session, serial)
        assert old.state == "valid" and old.replaced_by is not None
        assert passes.get_pass(session, old.replaced_by).replaces == serial
        assert audit.trail(session, serial)[0].action == "pass.renew"
    # Renewed once: the page no longer offers it, and a forged form is refused.
    detail = issuer.get(f"/console/passes/{serial}").get_data(as_text=True)
    assert f'action="/console/passes/{serial}/renew"' not in detail
    assert f'action="/console/passes/{serial}/reissue"' not in detail  # the successor's now
    assert f'action="/console/passes/{serial}/new-link"' in detail
    again = act(issuer, serial, "renew", reason="twice", confirm="yes")
    assert again.status_code == 409


def test_reissue_via_form_revokes_the_old_pass_and_shows_the_new_link(
    issuer: FlaskClient, db: Database, services: Services
) -> None:
    serial = issue(db, services, "library")
    response = act(issuer, serial, "reissue", reason="phone lost", confirm="yes")
    assert response.status_code == 201
    html = response.get_data(as_text=True)
    assert "Ersatzausweis ausgestellt" in html
    assert f"Der bisherige Ausweis {serial} wurde widerrufen." in page_text(html)
    link = re.search(rf'id="claim-url"[^>]*>{re.escape(ORIGIN)}/p/([A-Za-z0-9_-]+)<', html)
    assert link is not None
    with db.transaction(write=False) as session:
        old = passes.get_pass(session, serial)
        assert old.state == "revoked" and old.replaced_by is not None
        new = passes.get_pass(session, old.replaced_by)
        assert new.state == "valid" and new.replaces == serial
        assert audit.trail(session, new.serial)[0].actor == "user:anna"
    assert new.serial in issuer.get(f"/p/{link.group(1)}").get_data(as_text=True)
    detail = page_text(issuer.get(f"/console/passes/{serial}").get_data(as_text=True))
    assert f"Ersetzt durch {new.serial}" in detail


# -- search -------------------------------------------------------------------------------------


def search(client: FlaskClient, query: str) -> str:
    response = client.get(f"/console/?{query}")
    assert response.status_code == 200, query
    return response.get_data(as_text=True)


def test_search_by_holder_serial_type_and_state(
    issuer: FlaskClient, db: Database, services: Services
) -> None:
    erika = issue(db, services, "library")
    max_ = issue(db, services, "library", card_number="555566667777", name="Max Muster")
    parking = issue(db, services, "parking")
    with db.transaction(write=True) as session:
        passes.change_state(
            session, services, parking, action="suspend", reason="x", actor="t", now=NOW
        )
    everything = search(issuer, "")
    assert all(s in everything for s in (erika, max_, parking))
    assert "3 Ausweise gefunden." in everything
    by_name = search(issuer, "q=mustermann")
    assert erika in by_name and max_ not in by_name and parking not in by_name
    by_serial = search(issuer, f"q={max_}")
    assert max_ in by_serial and erika not in by_serial
    by_type = search(issuer, "type=parking")
    assert parking in by_type and erika not in by_type
    by_state = search(issuer, "state=suspended")
    assert parking in by_state and erika not in by_state and "1 Ausweis gefunden." in by_state
    assert "Vorübergehend gesperrt" in by_state
    bad = issuer.get("/console/?state=lost&type=swimming")
    assert bad.status_code == 400
    assert "Wählen Sie einen der angebotenen Zustände." in bad.get_data(as_text=True)


def test_search_is_paginated(issuer: FlaskClient, db: Database, services: Services) -> None:
    serials = [
        issue(db, services, "library", card_number=f"1000000000{i:02d}", name=f"Person {i}")
        for i in range(27)
    ]
    first = search(issuer, "q=person")
    assert "27 Ausweise gefunden." in first and "Seite 1 von 2" in first
    assert serials[-1] in first and serials[0] not in first  # newest first
    assert 'href="/console/?page=2&amp;q=person"' in first
    second = search(issuer, "q=person&page=2")
    assert serials[0] in second and serials[1] in second and serials[-1] not in second
    assert 'rel="prev"' in second and 'rel="next"' not in second
    assert "Seite 1 von 2" in search(issuer, "q=person&page=nonsense")


# -- verify -------------------------------------------------------------------------------------


def verify(client: FlaskClient, text: str, lang: str = "") -> TestResponse:
    return post_form(client, f"/console/verify{lang}", f"/console/verify{lang}", {"text": text})


def test_verify_page_gives_the_verdict_with_claims(
    client: FlaskClient, db: Database, services: Services, make_user: Callable[..., str]
) -> None:
    with db.transaction(write=True) as session:
        issued = passes.issue_pass(
            session,
            services,
            type_id="parking",
            holder=dict(HOLDERS["parking"]),
            actor="t",
            now=NOW,
        )
    make_user("vera", "verifier")
    login(client, "vera")
    # scanners and copy-paste add line breaks: they are ignored
    wrapped = issued.qr_text[:40] + "\r\n" + issued.qr_text[40:] + "\n"
    response = verify(client, wrapped)
    assert response.status_code == 200
    text = page_text(response.get_data(as_text=True))
    assert "Ergebnis: Gültig" in text and "Ausweis gültig." in text
    assert "Kennzeichen D-AB 1234" in text and f"Seriennummer {issued.record.serial}" in text
    english = page_text(verify(client, issued.record.token, "?lang=en").get_data(as_text=True))
    assert "Result: Valid" in english and "Pass is valid." in english
    with db.transaction(write=True) as session:
        passes.change_state(
            session, services, issued.record.serial, action="revoke", reason="x", actor="t", now=NOW
        )
    revoked = page_text(verify(client, issued.qr_text, "?lang=de").get_data(as_text=True))
    assert "Ergebnis: Widerrufen" in revoked and "Ausweis wurde widerrufen." in revoked
    forged = page_text(verify(client, "WP1" + "7" * 300).get_data(as_text=True))
    assert "Ergebnis: Ungültig" in forged
    empty = verify(client, "  ")
    assert empty.status_code == 422
    assert "Fügen Sie den Text eines QR-Codes" in empty.get_data(as_text=True)


@pytest.mark.parametrize(("type_id", "admit"), [("library", True), ("parking", False)])
def test_missing_status_list_is_never_plain_valid_in_the_console(
    client: FlaskClient,
    db: Database,
    services: Services,
    make_user: Callable[..., str],
    type_id: str,
    admit: bool,
) -> None:
    issue(db, services, type_id)  # the type's real list is in the bundle
    token = genuine_token_without_a_published_list(services, type_id)
    make_user("vera", "verifier")
    login(client, "vera")
    html = verify(client, token, "?lang=de").get_data(as_text=True)
    assert 'class="verdict verdict--amber"' in html
    text = page_text(html)
    assert "Ergebnis: Status nicht geprüft" in text and "Ergebnis: Gültig" not in text
    reason = "status_list_unknown" if admit else "status_list_unknown_closed"
    assert f"Ergebniscode: {reason}" in text
    allowed = "darf der Ausweis trotzdem anerkannt werden"
    assert (allowed in text) == admit
    assert ("Nach den Regeln dieser Ausweisart: nicht anerkennen." in text) == (not admit)
    english = page_text(verify(client, token, "?lang=en").get_data(as_text=True))
    assert "Result: Status not checked" in english
    assert "status not checked" in english or "status cannot be checked" in english
    assert ("allow accepting it anyway" in english) == admit
    genuine = verify(client, _issued_qr(db, services, type_id), "?lang=de").get_data(as_text=True)
    assert "Ergebnis: Gültig" in page_text(genuine) and "verdict--ok" in genuine


def _issued_qr(db: Database, services: Services, type_id: str) -> str:
    with db.transaction(write=True) as session:
        issued = passes.issue_pass(
            session,
            services,
            type_id=type_id,
            holder=dict(HOLDERS[type_id]),
            actor="t",
            now=NOW,
        )
    return issued.qr_text


# -- headers and language -----------------------------------------------------------------------


def test_console_pages_are_private_and_switch_language(issuer: FlaskClient) -> None:
    response = issuer.get("/console/")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    html = response.get_data(as_text=True)
    assert '<a href="/console/?lang=en" lang="en" hreflang="en">English</a>' in html
    english = issuer.get("/console/?lang=en").get_data(as_text=True)
    assert '<html lang="en">' in english and "Issue a pass" in english
    assert '<html lang="en">' in issuer.get("/console/verify").get_data(as_text=True)
    assert not re.search(r"\sstyle\s*=", english)


def test_bidi_override_in_holder_name_is_refused_in_the_issue_form(
    issuer: FlaskClient, db: Database
) -> None:
    data = {"card_number": "100200300400", "name": "Erika \u202eanmretsuM"}
    response = post_form(issuer, "/console/issue/library", "/console/issue/library", data)
    assert response.status_code == 422
    assert "unsichtbare oder Steuerzeichen" in page_text(response.get_data(as_text=True))
    with db.transaction(write=False) as session:
        assert passes.list_passes(session).total == 0


def test_console_verify_builds_the_online_verifier_once_per_bundle(
    client: FlaskClient,
    db: Database,
    services: Services,
    make_user: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Building a Verifier checks every status list signature: once per published
    bundle, shared with the API, never once per scan."""
    from wallet.services import verification

    built: list[object] = []

    class Counting(verification.Verifier):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            built.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(verification, "Verifier", Counting)
    qr = _issued_qr(db, services, "library")
    make_user("vera", "verifier")
    login(client, "vera")
    for _ in range(3):
        assert 'class="verdict verdict--ok"' in verify(client, qr, "?lang=de").get_data(
            as_text=True
        )
    assert len(built) == 1
