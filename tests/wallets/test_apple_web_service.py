"""Apple's pass update web service: registrations, "what changed", the latest pass."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.http import http_date

from tests.factories import NOW
from tests.wallets.conftest import PASS_TYPE_ID, StoredPass
from wallet.services import passes
from wallet.store.db import Database
from wallet.store.models import AppleDeviceLogRow, AppleRegistrationRow

DEVICE = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
PUSH_TOKEN = "ab" * 32
BASE = "/apple/v1"

Issue = Callable[..., StoredPass]
Change = Callable[..., None]


def auth(row: passes.PassRow) -> dict[str, str]:
    return {"Authorization": f"ApplePass {row.apple_auth_token}"}


def register(client: FlaskClient, row: passes.PassRow, device: str = DEVICE, **kw: object) -> int:
    response = client.post(
        f"{BASE}/devices/{device}/registrations/{PASS_TYPE_ID}/{row.serial}",
        json={"pushToken": kw.get("push_token", PUSH_TOKEN)},
        headers=kw.get("headers", auth(row)),  # type: ignore[arg-type]
    )
    return response.status_code


def updates(
    client: FlaskClient, since: str | None = None, device: str = DEVICE
) -> tuple[int, dict]:
    query = "" if since is None else f"?passesUpdatedSince={since}"
    response = client.get(f"{BASE}/devices/{device}/registrations/{PASS_TYPE_ID}{query}")
    return response.status_code, (response.get_json(silent=True) or {})


def registrations(db: Database) -> list[tuple[str, str]]:
    with db.transaction(write=False) as session:
        rows = session.query(AppleRegistrationRow).all()
        return [(r.device_id, r.push_token) for r in rows]


def test_registering_a_device_answers_201_then_200(
    wallet_client: FlaskClient, issue: Issue, db: Database
) -> None:
    row = issue().row
    assert register(wallet_client, row) == 201
    assert register(wallet_client, row) == 200
    assert registrations(db) == [(DEVICE, PUSH_TOKEN)]


def test_push_tokens_are_stored_as_apns_wants_them(
    wallet_client: FlaskClient, issue: Issue, db: Database
) -> None:
    row = issue().row
    assert register(wallet_client, row, push_token="AB" * 32) == 201
    assert registrations(db) == [(DEVICE, "ab" * 32)]


def test_a_device_coming_back_with_a_new_push_token_keeps_one_registration(
    wallet_client: FlaskClient, issue: Issue, db: Database
) -> None:
    row = issue().row
    register(wallet_client, row)
    assert register(wallet_client, row, push_token="cd" * 32) == 200
    assert registrations(db) == [(DEVICE, "cd" * 32)]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "ApplePass "},
        {"Authorization": "ApplePass guessed-token-1234567890"},
        {"Authorization": "Bearer the-right-token-in-the-wrong-scheme"},
    ],
)
def test_forged_or_missing_authentication_token_is_refused_with_401(
    wallet_client: FlaskClient, issue: Issue, db: Database, headers: dict[str, str]
) -> None:
    row = issue().row
    assert register(wallet_client, row, headers=headers) == 401
    assert registrations(db) == []


def test_token_of_another_pass_is_refused(
    wallet_client: FlaskClient, issue: Issue, db: Database
) -> None:
    mine, other = issue().row, issue().row
    assert register(wallet_client, mine, headers=auth(other)) == 401
    assert registrations(db) == []


def test_serial_probing_gets_the_same_401_as_a_wrong_token(
    wallet_client: FlaskClient, issue: Issue
) -> None:
    row = issue().row
    unknown = wallet_client.post(
        f"{BASE}/devices/{DEVICE}/registrations/{PASS_TYPE_ID}/nosuchserial0000",
        json={"pushToken": PUSH_TOKEN},
        headers=auth(row),
    )
    wrong = wallet_client.post(
        f"{BASE}/devices/{DEVICE}/registrations/{PASS_TYPE_ID}/{row.serial}",
        json={"pushToken": PUSH_TOKEN},
        headers={"Authorization": "ApplePass wrong-token-wrong-token"},
    )
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.get_json() == wrong.get_json()


def test_another_pass_type_identifier_is_refused(wallet_client: FlaskClient, issue: Issue) -> None:
    row = issue().row
    response = wallet_client.post(
        f"{BASE}/devices/{DEVICE}/registrations/pass.com.example.other/{row.serial}",
        json={"pushToken": PUSH_TOKEN},
        headers=auth(row),
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    "push_token", ["", "not-hex", "ab" * 8, 42, None, "ab" * 120, "a" * 65, "ab" * 31 + "/x"]
)
def test_a_push_token_that_is_not_hex_is_refused_naming_the_field(
    wallet_client: FlaskClient, issue: Issue, db: Database, push_token: object
) -> None:
    row = issue().row
    response = wallet_client.post(
        f"{BASE}/devices/{DEVICE}/registrations/{PASS_TYPE_ID}/{row.serial}",
        json={"pushToken": push_token},
        headers=auth(row),
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "pushToken"
    assert registrations(db) == []


def test_a_hostile_device_identifier_is_refused(wallet_client: FlaskClient, issue: Issue) -> None:
    row = issue().row
    assert register(wallet_client, row, device="x" * 200) == 422
    assert register(wallet_client, row, device="a%00b") == 422


def test_updates_list_only_passes_changed_since_the_tag(
    wallet_client: FlaskClient, issue: Issue, change: Change
) -> None:
    first, second = issue("parking").row, issue("parking").row
    register(wallet_client, first)
    register(wallet_client, second)

    status, body = updates(wallet_client)  # no tag yet: everything the device has
    assert status == 200
    assert body["serialNumbers"] == sorted([first.serial, second.serial])
    tag = body["lastUpdated"]
    assert isinstance(tag, str)  # Apple requires a string, not a number
    assert updates(wallet_client, tag)[0] == 204

    change(first.serial, "suspend")
    status, body = updates(wallet_client, tag)
    assert (status, body["serialNumbers"]) == (200, [first.serial])
    newer = body["lastUpdated"]
    assert int(newer) > int(tag)
    assert updates(wallet_client, newer)[0] == 204

    change(second.serial, "revoke", "lost")
    change(first.serial, "reinstate")
    status, body = updates(wallet_client, newer)
    assert body["serialNumbers"] == sorted([first.serial, second.serial])


def test_updates_never_show_passes_of_other_devices(
    wallet_client: FlaskClient, issue: Issue, change: Change
) -> None:
    mine, theirs = issue().row, issue().row
    register(wallet_client, mine)
    register(wallet_client, theirs, device="f" * 32)
    change(theirs.serial, "revoke")
    status, body = updates(wallet_client, "0")
    assert status == 204 or theirs.serial not in body["serialNumbers"]


def test_a_malformed_tag_is_refused(wallet_client: FlaskClient, issue: Issue) -> None:
    register(wallet_client, issue().row)
    assert updates(wallet_client, "yesterday")[0] == 422


def test_an_unregistered_device_learns_of_no_changes(
    wallet_client: FlaskClient, issue: Issue, change: Change, db: Database
) -> None:
    row = issue().row
    register(wallet_client, row)
    url = f"{BASE}/devices/{DEVICE}/registrations/{PASS_TYPE_ID}/{row.serial}"
    assert wallet_client.delete(url, headers={"Authorization": "ApplePass nope"}).status_code == 401
    assert wallet_client.delete(url, headers=auth(row)).status_code == 200
    assert registrations(db) == []
    change(row.serial, "revoke")
    assert updates(wallet_client)[0] == 204


def pass_json(data: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return json.loads(archive.read("pass.json"))


def test_the_latest_pass_carries_last_modified_and_honours_if_modified_since(
    wallet_client: FlaskClient, issue: Issue, change: Change
) -> None:
    row = issue().row
    url = f"{BASE}/passes/{PASS_TYPE_ID}/{row.serial}"
    response = wallet_client.get(url, headers=auth(row))
    assert response.status_code == 200
    assert response.mimetype == "application/vnd.apple.pkpass"
    assert response.headers["Last-Modified"] == http_date(NOW)
    document = pass_json(response.data)
    assert document["serialNumber"] == row.serial and "voided" not in document

    again = wallet_client.get(url, headers={**auth(row), "If-Modified-Since": http_date(NOW)})
    assert again.status_code == 304 and again.data == b""
    assert wallet_client.get(url).status_code == 401


def test_the_latest_pass_of_a_revoked_pass_is_voided(
    wallet_client: FlaskClient, issue: Issue, change: Change
) -> None:
    row = issue().row
    change(row.serial, "revoke", "reported stolen")
    response = wallet_client.get(f"{BASE}/passes/{PASS_TYPE_ID}/{row.serial}", headers=auth(row))
    document = pass_json(response.data)
    assert document["voided"] is True
    assert "reported stolen" not in json.dumps(document)  # staff's reason stays internal


def test_device_logs_are_stored_cleaned(wallet_client: FlaskClient, db: Database) -> None:
    response = wallet_client.post(
        f"{BASE}/log", json={"logs": ["Pass update failed\x00 for serial X", "second"]}
    )
    assert response.status_code == 200
    with db.transaction(write=False) as session:
        messages = [r.message for r in session.query(AppleDeviceLogRow).order_by("id")]
    assert messages == ["Pass update failed  for serial X", "second"]


def test_device_logs_must_be_a_list_of_strings(wallet_client: FlaskClient, db: Database) -> None:
    for body in ({"logs": "text"}, {"logs": [1, 2]}, {}, None):
        response = wallet_client.post(f"{BASE}/log", json=body)
        assert response.status_code == 422, body
        assert response.get_json()["error"]["field"] == "logs"
    with db.transaction(write=False) as session:
        assert session.query(AppleDeviceLogRow).count() == 0


def test_log_flooding_is_rate_limited(db: Database, wallet_services: object) -> None:
    from wallet.web import create_app

    app = create_app(
        wallet_services.settings,  # type: ignore[attr-defined]
        services=wallet_services,  # type: ignore[arg-type]
        db=db,
        clock=lambda: NOW,
        config={"TESTING": True},
    )
    client = app.test_client()
    answers = [client.post(f"{BASE}/log", json={"logs": ["x"]}).status_code for _ in range(35)]
    assert answers[:30] == [200] * 30
    assert answers[30:] == [429] * 5


def test_staff_see_whether_a_change_reached_the_wallet_apps(
    wallet_app: object,
    wallet_client: FlaskClient,
    issue: Issue,
    change: Change,
    db: Database,
) -> None:
    """The console's pass page counts registered devices and queued deliveries."""
    import re

    from wallet.services import accounts

    with db.transaction(write=True) as session:
        accounts.add_user(session, username="anna", password="correct horse battery",
                          role="issuer", actor="test",
                          audit_key=wallet_client.application.extensions["wallet"].services.audit_key,
                          now=NOW)  # fmt: skip
    login_page = wallet_client.get("/console/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', login_page)
    assert token is not None
    wallet_client.post(
        "/console/login",
        data={"csrf_token": token.group(1), "username": "anna",
              "password": "correct horse battery"},
    )  # fmt: skip
    row = issue().row
    register(wallet_client, row)
    register(wallet_client, row, device="b" * 32)
    change(row.serial, "revoke", "lost")

    html = wallet_client.get(f"/console/passes/{row.serial}").get_data(as_text=True)
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    assert "Für Aktualisierungen angemeldete Apple-Geräte 2" in text
    assert "Wartende Aktualisierungen 3" in text  # two pushes and the Google update
    assert "Zugestellte Aktualisierungen 0" in text


SEGMENTS = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=80
).filter(lambda s: "/" not in s and s not in (".", ".."))
JSON_BODIES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=80),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=10,
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["GET", "POST", "DELETE"]),
    device=SEGMENTS,
    serial=SEGMENTS,
    # Header values a client can send at all (no line breaks or other controls).
    authorization=st.none()
    | st.text(alphabet=st.characters(codec="latin-1", exclude_categories=("Cc",)), max_size=60).map(
        lambda t: "ApplePass " + t
    ),
    body=JSON_BODIES,
    since=st.none() | st.text(max_size=30),
)
def test_hostile_requests_to_the_apple_web_service_never_get_a_500(
    wallet_client: FlaskClient,
    method: str,
    device: str,
    serial: str,
    authorization: str | None,
    body: object,
    since: str | None,
) -> None:
    from urllib.parse import quote

    headers = {} if authorization is None else {"Authorization": authorization}
    paths = [
        f"{BASE}/devices/{quote(device)}/registrations/{PASS_TYPE_ID}/{quote(serial)}",
        f"{BASE}/devices/{quote(device)}/registrations/{PASS_TYPE_ID}",
        f"{BASE}/passes/{PASS_TYPE_ID}/{quote(serial)}",
        f"{BASE}/log",
    ]
    for path in paths:
        query = {} if since is None else {"passesUpdatedSince": since}
        response = wallet_client.open(
            path, method=method, json=body, headers=headers, query_string=query
        )
        assert response.status_code in (200, 204, 401, 404, 405, 422, 429), (
            path,
            response.status_code,
            response.get_data(as_text=True)[:300],
        )
