"""Checking a parked car by its plate, online, from a paired device (issue 11, section 2)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask.testing import FlaskClient

from tests.factories import NOW
from tests.integration.test_passes import change, issue
from tests.web.test_devices import pair, revoked_credential, start
from wallet.errors import InputError
from wallet.services import plate_checks
from wallet.services.context import Services
from wallet.store.db import Database

pytestmark = pytest.mark.usefixtures("quick_password_hashes")


def permit(db: Database, services: Services, plate: str, zone: str = "12", **kw: object) -> str:
    return issue(db, services, "parking", holder={"plate": plate, "zone": zone}, **kw).record.serial


def device(client: FlaskClient, db: Database, services: Services) -> dict[str, str]:
    credential = pair(client, start(db, services).code)[1]["credential"]
    return {"Authorization": f"Bearer {credential}"}


def check(client: FlaskClient, headers: dict[str, str], plate: object, zone: object = "12"):
    return client.post("/device/v1/plates/check", json={"plate": plate, "zone": zone},
                       headers=headers)  # fmt: skip


def test_a_permit_is_found_by_its_plate_in_every_spelling_with_zone_and_end_only(
    client: FlaskClient, db: Database, services: Services
) -> None:
    permit(db, services, "D-AB 1234")
    headers = device(client, db, services)
    for typed in ("dab1234", "D AB 1234", "D\u2013AB 1234", "d-ab 1234"):
        answer = check(client, headers, typed)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        body = answer.get_json()
        assert body["verdict"] == "valid" and body["zones"] == ["12"], typed
        assert set(body) == {"verdict", "plate", "zones", "valid_until"}  # nothing of the holder
    assert check(client, headers, "D-AB 1234", "13").get_json()["verdict"] == "wrong_zone"
    assert check(client, headers, "D-XY 99").get_json()["verdict"] == "unknown"


def test_a_revoked_or_suspended_permit_is_not_valid(
    client: FlaskClient, db: Database, services: Services
) -> None:
    revoked, suspended = permit(db, services, "D-AB 1"), permit(db, services, "D-AB 2")
    change(db, services, revoked, "revoke")
    change(db, services, suspended, "suspend")
    headers = device(client, db, services)
    assert check(client, headers, "D-AB 1").get_json()["verdict"] == "unknown"
    assert check(client, headers, "D-AB 2").get_json()["verdict"] == "suspended"


def test_an_expired_permit_says_so(db: Database, services: Services) -> None:
    permit(db, services, "D-AB 3", valid_until=NOW + timedelta(days=1))
    with db.transaction(write=False) as session:
        later = plate_checks.check_plate(
            session, services, "D-AB 3", "12", now=NOW + timedelta(days=2)
        )
    assert later.verdict is plate_checks.PlateVerdict.EXPIRED


def test_two_cars_that_fit_what_was_typed_give_ambiguous_not_a_guess(
    db: Database, services: Services
) -> None:
    permit(db, services, "D-AB 1234")  # Düsseldorf
    permit(db, services, "DA-B 1234")  # Darmstadt: another car
    with db.transaction(write=False) as session:
        typed = plate_checks.check_plate(session, services, "DAB1234", "12", now=NOW)
        written = plate_checks.check_plate(session, services, "DA B 1234", "12", now=NOW)
    assert typed.verdict is plate_checks.PlateVerdict.AMBIGUOUS and typed.zones == ()
    assert (written.verdict, written.plate) == (plate_checks.PlateVerdict.VALID, "DA-B 1234")


def test_a_renewed_permit_answers_for_its_successor(db: Database, services: Services) -> None:
    from wallet.services import renewals

    old = permit(db, services, "D-AB 4", valid_until=NOW + timedelta(days=10))
    with db.transaction(write=True) as session:
        new = renewals.renew_pass(session, services, old, actor="t", now=NOW).issued.record
    with db.transaction(write=False) as session:
        found = plate_checks.check_plate(session, services, "D-AB 4", "12", now=NOW)
    assert (found.verdict, found.valid_until) == (plate_checks.PlateVerdict.VALID, new.valid_until)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wpd_guessed"},
                                     {"Authorization": "Bearer wpt_an_api_token"}])  # fmt: skip
def test_plate_enumeration_without_an_enrolled_device_gets_401(
    client: FlaskClient, db: Database, services: Services, headers: dict[str, str]
) -> None:
    permit(db, services, "D-AB 1234")
    answer = check(client, headers, "D-AB 1234")
    assert answer.status_code == 401 and "verdict" not in answer.get_data(as_text=True)


def test_a_revoked_device_is_told_so_and_learns_nothing(
    client: FlaskClient, db: Database, services: Services
) -> None:
    credential = revoked_credential(client, db, services)
    answer = check(client, {"Authorization": f"Bearer {credential}"}, "D-AB 1234")
    assert answer.status_code == 401 and answer.get_json()["error"]["code"] == "device_revoked"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"plate": "not a plate", "zone": "12"}, "plate"),
        ({"plate": "D-AB 1234", "zone": ""}, "zone"),
        ({"plate": "D-AB 1234"}, "zone"),
        ({"plate": 1234, "zone": "12"}, "plate"),
        ({"plate": "D-AB 1234", "zone": "12", "holder": "x"}, "holder"),
    ],
)
def test_a_bad_lookup_names_the_field(
    client: FlaskClient, db: Database, services: Services, body: dict[str, object], field: str
) -> None:
    headers = device(client, db, services)
    answer = client.post("/device/v1/plates/check", json=body, headers=headers)
    assert answer.status_code == 422 and answer.get_json()["error"]["field"] == field


def test_the_service_refuses_a_plate_that_cannot_be_german(
    db: Database, services: Services
) -> None:
    with db.transaction(write=False) as session, pytest.raises(InputError) as refused:
        plate_checks.check_plate(session, services, "x" * 50, "12", now=NOW)
    assert refused.value.field == "plate"
