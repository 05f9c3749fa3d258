"""A new car is a reissue with the new plate (issue 11): the old plate is free at once,
online and in the next offline index, and a bad new plate changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.factories import NOW
from tests.web import test_console, test_second_car
from tests.web.test_api import error
from tests.web.test_console import act
from tests.web.test_console import issue as console_issue
from tests.web.test_plate_checks import check, device, download_index
from tests.web.test_second_car import issued
from wallet.services import passes
from wallet.services.context import Services
from wallet.store.db import Database

pytestmark = pytest.mark.usefixtures("quick_password_hashes")
# Fixtures of the console's and the second car's tests: an issuer signed in, an API desk.
issuer, desk = test_console.issuer, test_second_car.desk


def reissue(client: FlaskClient, headers: dict[str, str], serial: str, **body: Any) -> Any:
    return client.post(f"/api/v1/passes/{serial}/reissue", json=body, headers=headers)


def test_a_new_car_is_a_reissue_and_the_old_plate_is_invalid_after_the_next_sync(
    client: FlaskClient,
    db: Database,
    services: Services,
    desk: dict[str, str],
) -> None:
    old = issued(client, desk, "D-AB 1234")
    answer = reissue(client, desk, old, reason="new car", holder={"plate": "d xy 7"})
    assert answer.status_code == 201, answer.get_data(as_text=True)
    new = answer.get_json()
    assert new["holder"] == {"plate": "D-XY 7", "zone": "12"}  # the zone stays
    officer = device(client, db, services)
    assert check(client, officer, "D-AB 1234").get_json()["verdict"] == "unknown"
    assert check(client, officer, "D-XY 7").get_json()["verdict"] == "valid"
    index, key = download_index(client, officer, services.keys.root_public_key(now=NOW))
    assert index.lookup(key, "D-AB 1234") == [] and len(index.lookup(key, "D-XY 7")) == 1
    assert issued(client, desk, "D-AB 1234")  # the old car is free for another permit


def test_a_second_car_changes_on_reissue_while_the_first_stays_the_permits(
    client: FlaskClient,
    db: Database,
    services: Services,
    desk: dict[str, str],
) -> None:
    old = issued(client, desk, "D-AB 1234, D-CD 56")
    answer = reissue(client, desk, old, holder={"plate": "D-AB 1234, D-EF 9"})
    assert answer.status_code == 201, answer.get_data(as_text=True)
    officer = device(client, db, services)
    verdicts = {p: check(client, officer, p).get_json()["verdict"]
                for p in ("D-AB 1234", "D-CD 56", "D-EF 9")}  # fmt: skip
    assert verdicts == {"D-AB 1234": "valid", "D-CD 56": "unknown", "D-EF 9": "valid"}


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"plate": "not a plate"}, "holder_data_invalid", "holder.plate"),
        ({"colour": "red"}, "holder_data_invalid", "holder.colour"),
        ({"plate": 7}, "invalid_input", "holder.plate"),
        ("D-XY 7", "invalid_input", "holder"),
    ],
)
def test_a_reissue_with_a_bad_new_plate_names_the_field_and_changes_nothing(
    client: FlaskClient,
    db: Database,
    services: Services,
    desk: dict[str, str],
    changes: Any,
    code: str,
    field: str,
) -> None:
    old = issued(client, desk, "D-AB 1234")
    error(reissue(client, desk, old, holder=changes), 422, code, field)
    officer = device(client, db, services)
    assert check(client, officer, "D-AB 1234").get_json()["verdict"] == "valid"  # still live
    shown = client.get(f"/api/v1/passes/{old}", headers=desk).get_json()
    assert shown["state"] == "valid" and shown["replaced_by"] is None


def test_a_new_car_that_is_another_permits_car_is_refused_and_the_old_permit_stays(
    client: FlaskClient,
    db: Database,
    services: Services,
    desk: dict[str, str],
) -> None:
    issued(client, desk, "D-XY 7")  # a neighbour's car
    old = issued(client, desk, "D-AB 1234")
    error(reissue(client, desk, old, holder={"plate": "D-XY 7"}), 409, "permit_exists",
          "holder.plate")  # fmt: skip
    officer = device(client, db, services)
    assert check(client, officer, "D-AB 1234").get_json()["verdict"] == "valid"


def test_staff_reissue_a_permit_for_a_new_car_in_the_console(
    issuer: FlaskClient,
    db: Database,
    services: Services,
) -> None:
    serial = console_issue(db, services, "parking", plate="D-AB 1234", zone="12")
    page = issuer.get(f"/console/passes/{serial}").get_data(as_text=True)
    assert 'id="plate-reissue"' in page
    wrong = act(issuer, serial, "reissue", reason="new car", confirm="yes", plate="12345")
    assert wrong.status_code == 422
    assert 'id="plate-reissue-error"' in wrong.get_data(as_text=True)
    done = act(issuer, serial, "reissue", reason="new car", confirm="yes", plate="d xy 7")
    assert done.status_code == 201
    with db.transaction(write=False) as session:
        old = passes.get_pass(session, serial)
        assert old.state == "revoked" and old.replaced_by is not None
        assert passes.get_pass(session, old.replaced_by).holder["plate"] == "D-XY 7"


def test_a_library_card_has_no_new_plate_field(
    issuer: FlaskClient,
    db: Database,
    services: Services,
) -> None:
    serial = console_issue(db, services, "library")
    assert 'id="plate-reissue"' not in issuer.get(f"/console/passes/{serial}").get_data(
        as_text=True)  # fmt: skip
