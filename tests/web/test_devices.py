"""Staff devices: pairing a phone from the console, syncing with its credential, revoking it."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.factories import NOW
from tests.web.test_console import csrf_token, login, page_text
from wallet.domain import PAIRING_LIFETIME, DeviceState, Role
from wallet.errors import InputError
from wallet.services import audit, devices
from wallet.services.context import Services
from wallet.store.db import Database
from wallet.store.models import DeviceRow

pytestmark = pytest.mark.usefixtures("quick_password_hashes")


def start(
    db: Database, services: Services, *, name: str = "Handy 1", at: datetime = NOW
) -> devices.NewPairing:
    with db.transaction(write=True) as session:
        return devices.start_pairing(
            session, name=name, role="verifier", actor="user:vera", actor_role=Role.VERIFIER,
            audit_key=services.audit_key, now=at,
        )  # fmt: skip


def pair(client: FlaskClient, code: object) -> tuple[int, Any]:
    response = client.post("/device/v1/pair", json={"code": code})
    return response.status_code, response.get_json()


def sync(client: FlaskClient, credential: str) -> tuple[int, object]:
    response = client.get("/device/v1/bundle", headers={"Authorization": f"Bearer {credential}"})
    body = response.get_json() if response.is_json else response.get_data(as_text=True)
    return response.status_code, body


def test_a_paired_device_syncs_the_signed_bundle_and_staff_see_its_last_sync(
    client: FlaskClient, db: Database, services: Services
) -> None:
    pairing = start(db, services)
    status, body = pair(client, pairing.code)
    assert status == 201
    credential = body["credential"]
    assert credential.startswith("wpd_") and body["device"]["state"] == "active"
    status, bundle = sync(client, credential)
    assert status == 200
    assert bundle == client.get("/verifier/bundle").get_data(as_text=True)
    with db.transaction(write=False) as session:
        listed = devices.get_device(session, pairing.device.device_id)
    assert listed.state is DeviceState.ACTIVE and listed.last_sync_at == NOW


def test_a_pairing_code_cannot_be_replayed(
    client: FlaskClient, db: Database, services: Services
) -> None:
    pairing = start(db, services)
    assert pair(client, pairing.code)[0] == 201
    status, body = pair(client, pairing.code)
    assert status == 422
    assert body["error"]["field"] == "code"
    assert "new pairing QR" in body["error"]["message"]


def test_an_expired_pairing_code_is_refused(app: Flask, db: Database, services: Services) -> None:
    pairing = start(db, services, at=NOW - PAIRING_LIFETIME - timedelta(seconds=1))
    status, body = pair(app.test_client(), pairing.code)
    assert (status, body["error"]["field"]) == (422, "code")


@pytest.mark.parametrize("code", ["", "wpp_guess", "wpp_" + "x" * 300, 17, None, ["wpp_a"]])
def test_guessed_or_malformed_pairing_codes_get_one_answer(
    client: FlaskClient, code: object
) -> None:
    status, body = pair(client, code)
    assert status == 422
    assert body["error"] == {
        "code": "invalid_input",
        "field": "code",
        "message": "this pairing code is unknown, used or expired; "
        "show a new pairing QR in the console",
    }


def test_the_pairing_body_is_read_strictly(client: FlaskClient) -> None:
    duplicate = client.post(
        "/device/v1/pair", data='{"code":"a","code":"b"}', content_type="application/json"
    )
    assert duplicate.status_code == 400
    assert duplicate.get_json()["error"]["field"] == "body"
    extra = client.post("/device/v1/pair", json={"code": "wpp_x", "name": "evil"})
    assert (extra.status_code, extra.get_json()["error"]["field"]) == (422, "name")
    huge = client.post("/device/v1/pair", json={"code": "wpp_" + "x" * 4000})
    assert huge.status_code == 413


def revoked_credential(client: FlaskClient, db: Database, services: Services) -> str:
    """The credential of a device paired and then revoked by an admin."""
    pairing = start(db, services)
    credential: str = pair(client, pairing.code)[1]["credential"]
    with db.transaction(write=True) as session:
        devices.revoke_device(
            session, device_id=pairing.device.device_id, actor="user:admin",
            audit_key=services.audit_key, now=NOW,
        )  # fmt: skip
    return credential


def test_a_revoked_device_can_no_longer_sync(
    client: FlaskClient, db: Database, services: Services
) -> None:
    credential = revoked_credential(client, db, services)
    status, body = sync(client, credential)
    assert status == 401
    assert isinstance(body, dict) and body["error"]["code"] == "device_revoked"


@pytest.mark.parametrize(
    "header", ["", "Bearer", "Bearer wpd_guessed", "Basic d3BkXzE6", "Bearer wpt_apitoken"]
)
def test_sync_without_a_live_device_credential_is_refused(client: FlaskClient, header: str) -> None:
    response = client.get("/device/v1/bundle", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="wallet-device"')
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_a_cancelled_pairing_code_stops_working(
    client: FlaskClient, db: Database, services: Services
) -> None:
    pairing = start(db, services)
    with db.transaction(write=True) as session:
        devices.revoke_device(
            session, device_id=pairing.device.device_id, actor="user:vera",
            audit_key=services.audit_key, now=NOW,
        )  # fmt: skip
    assert pair(client, pairing.code)[0] == 422


def test_device_secrets_are_stored_only_as_hashes(
    client: FlaskClient, db: Database, services: Services
) -> None:
    pairing = start(db, services)
    credential = pair(client, pairing.code)[1]["credential"]
    with db.transaction(write=False) as session:
        row = session.scalars(select(DeviceRow)).one()
        stored = " ".join(str(v) for v in vars(row).values())
    assert pairing.code not in stored and credential not in stored
    assert row.pairing_hash is None  # single use: nothing left to match
    assert row.credential_hash is not None and len(row.credential_hash) == 64


def test_pairing_and_revoking_are_in_the_audit_log(
    client: FlaskClient, db: Database, services: Services
) -> None:
    pairing = start(db, services)
    pair(client, pairing.code)
    device_id = pairing.device.device_id
    with db.transaction(write=True) as session:
        devices.revoke_device(
            session, device_id=device_id, actor="user:admin", audit_key=services.audit_key,
            now=NOW,
        )  # fmt: skip
    with db.transaction(write=False) as session:
        trail = audit.trail(session, f"device:{device_id}")
    assert [(e.action, e.actor) for e in reversed(trail)] == [  # newest first
        ("device.pairing_started", "user:vera"),
        ("device.paired", f"device:{device_id}"),
        ("device.revoke", "user:admin"),
    ]


@pytest.mark.parametrize(
    ("name", "role", "field"),
    [("", "verifier", "name"), ("a\nb", "verifier", "name"), ("x" * 65, "verifier", "name"),
     ("Handy", "admin", "role"), ("Handy", "root", "role")],
)  # fmt: skip
def test_a_verifier_cannot_pair_a_device_above_their_role_or_without_a_name(
    db: Database, services: Services, name: str, role: str, field: str
) -> None:
    with db.transaction(write=True) as session, pytest.raises(InputError) as caught:
        devices.start_pairing(
            session, name=name, role=role, actor="user:vera", actor_role=Role.VERIFIER,
            audit_key=services.audit_key, now=NOW,
        )  # fmt: skip
    assert caught.value.field == field


# -- the console ---------------------------------------------------------------------------


def signed_in(app: Flask, make_user: Callable[..., str], username: str, role: str) -> FlaskClient:
    client = app.test_client()
    make_user(username, role)
    assert login(client, username).status_code == 302
    return client


def test_a_verifier_pairs_a_phone_in_the_console_and_the_app_completes_it(
    app: Flask, make_user: Callable[..., str]
) -> None:
    staff = signed_in(app, make_user, "vera", "verifier")
    page = staff.get("/console/devices").get_data(as_text=True)
    answer = staff.post(
        "/console/devices", data={"csrf_token": csrf_token(page), "name": "Handy Außendienst 3"}
    )
    assert answer.status_code == 201
    html = answer.get_data(as_text=True)
    found = re.search(r"/scan/#pair=(wpp_[A-Za-z0-9_-]+)", html)
    assert found is not None, "the pairing page shows the pairing link"
    assert "<svg" in html  # and its QR code
    phone = app.test_client()
    assert pair(phone, found.group(1))[0] == 201
    listing = page_text(staff.get("/console/devices").get_data(as_text=True))
    assert "Handy Außendienst 3" in listing and "aktiv" in listing


def test_staff_see_and_revoke_only_their_own_devices_admins_all(
    app: Flask, db: Database, services: Services, make_user: Callable[..., str]
) -> None:
    foreign = start(db, services, name="Handy von Vera")  # paired by user:vera
    other = signed_in(app, make_user, "otto", "verifier")
    listing = other.get("/console/devices").get_data(as_text=True)
    assert "Handy von Vera" not in listing
    refused = other.post(
        f"/console/devices/{foreign.device.device_id}/revoke",
        data={"csrf_token": csrf_token(listing)},
    )
    assert refused.status_code == 403
    admin = signed_in(app, make_user, "root", "admin")
    listing = admin.get("/console/devices").get_data(as_text=True)
    assert "Handy von Vera" in listing
    done = admin.post(
        f"/console/devices/{foreign.device.device_id}/revoke",
        data={"csrf_token": csrf_token(listing)},
    )
    assert done.status_code == 302
    with db.transaction(write=False) as session:
        assert devices.get_device(session, foreign.device.device_id).state is DeviceState.REVOKED


def test_revoking_a_device_needs_the_form_token(
    app: Flask, db: Database, services: Services, make_user: Callable[..., str]
) -> None:
    pairing = start(db, services)
    admin = signed_in(app, make_user, "root", "admin")
    forged = admin.post(f"/console/devices/{pairing.device.device_id}/revoke")
    assert forged.status_code == 400
    with db.transaction(write=False) as session:
        assert devices.get_device(session, pairing.device.device_id).state is DeviceState.PENDING


def test_a_device_name_that_is_too_long_is_explained_on_the_page(
    app: Flask, make_user: Callable[..., str]
) -> None:
    staff = signed_in(app, make_user, "vera", "verifier")
    page = staff.get("/console/devices").get_data(as_text=True)
    answer = staff.post("/console/devices", data={"csrf_token": csrf_token(page), "name": "x" * 80})
    assert answer.status_code == 422
    assert "höchstens 64 Zeichen" in page_text(answer.get_data(as_text=True))


def test_the_devices_page_is_in_english_on_request(
    app: Flask, make_user: Callable[..., str]
) -> None:
    staff = signed_in(app, make_user, "vera", "verifier")
    text = page_text(staff.get("/console/devices?lang=en").get_data(as_text=True))
    assert "Pair a phone" in text and "Scanner devices" in text


def test_the_devices_page_shows_the_root_fingerprint_the_scanner_app_shows(
    app: Flask, services: Services, make_user: Callable[..., str]
) -> None:
    from tests.web.test_scanner import spki_fingerprint

    staff = signed_in(app, make_user, "vera", "verifier")
    text = page_text(staff.get("/console/devices").get_data(as_text=True))
    expected = spki_fingerprint(services.keys.root_public_key(now=NOW).pem())
    assert expected in text and len(expected) == 79  # 16 groups of 4 hex digits
