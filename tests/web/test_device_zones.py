"""A device holds the plate index of its officer's zones only (issue 11, section 2).

The zones are chosen when the phone is paired; a lost phone then exposes the
permits of a district, not of the city. A device paired for no zone in
particular (a supervisor's) gets every zone.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.factories import NOW
from tests.integration.test_passes import issue
from tests.web.test_console import csrf_token, page_text
from tests.web.test_devices import pair, signed_in
from wallet.codec import b64url_decode
from wallet.domain import MAX_DEVICE_ZONES, Role
from wallet.errors import InputError
from wallet.plateindex import PlateIndex, verify_index
from wallet.services import devices
from wallet.services.context import Services
from wallet.store.db import Database

pytestmark = pytest.mark.usefixtures("quick_password_hashes")


def permit(db: Database, services: Services, plate: str, zone: str) -> None:
    issue(db, services, "parking", holder={"plate": plate, "zone": zone})


def paired(client: FlaskClient, db: Database, services: Services, zones: str) -> dict[str, str]:
    with db.transaction(write=True) as session:
        pairing = devices.start_pairing(
            session, name="Handy", role="verifier", actor="user:vera",
            actor_role=Role.VERIFIER, audit_key=services.audit_key, now=NOW, zones=zones,
        )  # fmt: skip
    credential = pair(client, pairing.code)[1]["credential"]
    return {"Authorization": f"Bearer {credential}"}


def index_of(
    client: FlaskClient, services: Services, headers: dict[str, str]
) -> tuple[PlateIndex, bytes, list[str]]:
    answer = client.get("/device/v1/plates/index", headers=headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    root = services.keys.root_public_key(now=NOW)
    index = verify_index(body["index"], root, now=NOW)
    return index, b64url_decode(body["key"], what="key"), body["zones"]


def test_a_lost_phone_holds_only_the_permits_of_its_officers_zones(
    client: FlaskClient, db: Database, services: Services
) -> None:
    permit(db, services, "D-AB 1", "12")
    permit(db, services, "D-AB 2", "13")
    permit(db, services, "D-AB 3", "40")
    index, key, zones = index_of(client, services, paired(client, db, services, " 12 ,13"))
    assert zones == ["12", "13"] and index.zones == ("12", "13") and len(index) == 2
    assert [f.zone for f in index.lookup(key, "D-AB 2")] == ["13"]
    assert index.lookup(key, "D-AB 3") == []  # zone 40 is not on this phone


def test_a_device_paired_for_no_zone_gets_every_zone(
    client: FlaskClient, db: Database, services: Services
) -> None:
    permit(db, services, "D-AB 1", "12")
    permit(db, services, "D-AB 3", "40")
    index, _, zones = index_of(client, services, paired(client, db, services, ""))
    assert zones == [] and index.zones == ("12", "40") and len(index) == 2


def test_devices_of_other_zones_get_indexes_under_keys_of_their_own(
    client: FlaskClient, db: Database, services: Services
) -> None:
    permit(db, services, "D-AB 1", "12")
    first, first_key, _ = index_of(client, services, paired(client, db, services, "12"))
    other, other_key, _ = index_of(client, services, paired(client, db, services, "40"))
    again, again_key, _ = index_of(client, services, paired(client, db, services, "12"))
    assert first_key != other_key and len(other) == 0
    assert (again.version, again_key) == (first.version, first_key)  # one index per zone set


def test_revoking_a_device_retires_every_index_key_it_may_hold(
    client: FlaskClient, db: Database, services: Services
) -> None:
    permit(db, services, "D-AB 1", "12")
    lost = paired(client, db, services, "12")
    _, lost_key, _ = index_of(client, services, lost)
    colleague = paired(client, db, services, "12")
    with db.transaction(write=False) as session:
        lost_id = next(d.device_id for d in devices.list_devices(session) if d.paired_at)
    with db.transaction(write=True) as session:
        devices.revoke_device(session, device_id=lost_id, actor="user:admin",
                              audit_key=services.audit_key, now=NOW)  # fmt: skip
    _, key_now, _ = index_of(client, services, colleague)
    assert key_now != lost_key
    assert client.get("/device/v1/plates/index", headers=lost).status_code == 401


@pytest.mark.parametrize(
    "zones",
    ["12, <script>", "1234567890ABCDEFG", ", ".join(str(z) for z in range(MAX_DEVICE_ZONES + 1))],
)
def test_a_device_with_zones_that_are_no_zones_is_refused_naming_the_field(
    db: Database, services: Services, zones: str
) -> None:
    with db.transaction(write=True) as session, pytest.raises(InputError) as refused:
        devices.start_pairing(
            session, name="Handy", role="verifier", actor="user:vera",
            actor_role=Role.VERIFIER, audit_key=services.audit_key, now=NOW, zones=zones,
        )  # fmt: skip
    assert refused.value.field == "zones"


def test_staff_choose_the_zones_when_pairing_in_the_console(
    app: Flask, make_user: Callable[..., str]
) -> None:
    staff = signed_in(app, make_user, "vera", "verifier")
    page = staff.get("/console/devices").get_data(as_text=True)
    wrong = staff.post(
        "/console/devices",
        data={"csrf_token": csrf_token(page), "name": "Handy 3", "zones": "12; ?!"},
    )
    assert wrong.status_code == 422
    html = wrong.get_data(as_text=True)
    assert 'id="zones-error"' in html and 'value="12; ?!"' in html and 'value="Handy 3"' in html
    answer = staff.post(
        "/console/devices",
        data={"csrf_token": csrf_token(html), "name": "Handy 3", "zones": "13 12"},
    )
    assert answer.status_code == 201
    found = re.search(r"/scan/#pair=(wpp_[A-Za-z0-9_-]+)", answer.get_data(as_text=True))
    assert found is not None
    status, body = pair(app.test_client(), found.group(1))
    assert status == 201 and body["device"]["zones"] == ["12", "13"]
    listing = page_text(staff.get("/console/devices").get_data(as_text=True))
    assert "12, 13" in listing


def test_a_device_holding_the_current_index_gets_a_bare_304_and_a_new_one_comes_gzipped(
    client: FlaskClient, db: Database, services: Services
) -> None:
    permit(db, services, "D-AB 1", "12")
    headers = paired(client, db, services, "12")
    first = client.get("/device/v1/plates/index", headers=headers)
    tag = first.headers["ETag"]
    again = client.get("/device/v1/plates/index", headers={**headers, "If-None-Match": tag})
    assert again.status_code == 304 and again.get_data() == b""  # no key in a 304
    zipped = client.get("/device/v1/plates/index", headers={**headers, "Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    body = json.loads(gzip.decompress(zipped.get_data()))
    assert body["index"] == first.get_json()["index"]
    assert len(zipped.get_data()) < len(first.get_data())
    stranger = client.get("/device/v1/plates/index", headers={"If-None-Match": tag})
    assert stranger.status_code == 401  # the ETag is no credential
