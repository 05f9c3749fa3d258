"""A permit for a second car (issue 11): either plate is the permit's, online and offline,
and neither may be another live permit's car in the zone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.factories import NOW
from tests.integration.test_passes import change
from tests.web.test_api import bearer, error
from tests.web.test_console import csrf_token, page_text
from tests.web.test_devices import signed_in
from tests.web.test_plate_checks import check, device, download_index
from wallet.plateindex import PlateVerdict
from wallet.services import renewals
from wallet.services.context import Services
from wallet.store.db import Database

pytestmark = pytest.mark.usefixtures("quick_password_hashes")

TWO_CARS = "D-AB 1234, D-CD 56"


@pytest.fixture
def desk(make_token: Callable[[str], str]) -> dict[str, str]:
    """An issuer's API credentials (a desk of the road traffic office)."""
    return bearer(make_token("issuer"))


def apply(client: FlaskClient, headers: dict[str, str], plates: str, zone: str = "12") -> Any:
    body = {"type": "parking", "holder": {"plate": plates, "zone": zone}}
    return client.post("/api/v1/passes", json=body, headers=headers)


def issued(client: FlaskClient, headers: dict[str, str], plates: str, zone: str = "12") -> str:
    answer = apply(client, headers, plates, zone)
    assert answer.status_code == 201, answer.get_data(as_text=True)
    return str(answer.get_json()["serial"])


def test_a_permit_with_two_plates_is_valid_by_either_plate_online_and_offline(
    client: FlaskClient, db: Database, services: Services, desk: dict[str, str]
) -> None:
    typed = apply(client, desk, "d ab 1234; d-cd56")  # any spelling, either separator
    assert typed.get_json()["holder"]["plate"] == TWO_CARS  # stored and signed as shown
    officer = device(client, db, services)
    index, key = download_index(client, officer, services.keys.root_public_key(now=NOW))
    for plate in ("D-AB 1234", "D-CD 56"):
        online = check(client, officer, plate).get_json()
        assert (online["verdict"], online["plate"], online["zones"]) == ("valid", plate, ["12"])
        offline = index.check(key, plate, "12", now=NOW)
        assert (offline.verdict, offline.plate) == (PlateVerdict.VALID, plate)
        assert check(client, officer, plate, "13").get_json()["verdict"] == "wrong_zone"
    assert len(index) == 2  # one entry per plate


def test_the_second_car_of_a_live_permit_gets_no_permit_of_its_own_in_that_zone(
    client: FlaskClient, desk: dict[str, str]
) -> None:
    household = issued(client, desk, TWO_CARS)
    for plates in ("D-CD 56", "D-XY 9, d cd 56"):  # alone, or as someone's second car
        message = error(apply(client, desk, plates), 409, "permit_exists", "holder.plate")
        assert "D-CD 56 in zone 12" in message and household in message
    assert apply(client, desk, "D-CD 56", zone="13").status_code == 201  # another zone


def test_more_plates_than_the_type_allows_are_refused_naming_the_field_and_the_limit(
    client: FlaskClient, desk: dict[str, str]
) -> None:
    message = error(apply(client, desk, "D-AB 1, D-AB 2, D-AB 3"), 422,
                    "holder_data_invalid", "holder.plate")  # fmt: skip
    assert "at most 2 plates" in message
    twice = error(apply(client, desk, "D-AB 1, d ab 1"), 422, "holder_data_invalid",
                  "holder.plate")  # fmt: skip
    assert "D-AB 1 twice" in twice


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("D-AB 1, D-AB 2, D-AB 3", "Bitte höchstens 2 Kennzeichen angeben, durch Komma getrennt."),
        ("D-AB 1; d ab 1", "Bitte jedes Kennzeichen nur einmal angeben."),
    ],
)
def test_the_console_says_what_is_wrong_with_a_list_of_plates(
    app: Flask, make_user: Callable[..., str], typed: str, words: str
) -> None:
    """Not "at most 12 characters": two plates are longer than one, and that is fine."""
    staff = signed_in(app, make_user, "ida", "issuer")
    page = staff.get("/console/issue/parking").get_data(as_text=True)
    form = {"csrf_token": csrf_token(page), "plate": typed, "zone": "12"}
    refused = staff.post("/console/issue/parking", data=form)
    assert refused.status_code == 422
    assert words in page_text(refused.get_data(as_text=True))
    form = {**form, "csrf_token": csrf_token(refused.get_data(as_text=True)), "plate": TWO_CARS}
    issued = staff.post("/console/issue/parking", data=form)
    assert issued.status_code == 201  # two cars, one permit


def test_revoking_a_two_car_permit_frees_both_plates_and_both_leave_the_index(
    client: FlaskClient, db: Database, services: Services, desk: dict[str, str]
) -> None:
    root = services.keys.root_public_key(now=NOW)
    household = issued(client, desk, TWO_CARS)
    officer = device(client, db, services)
    before, _ = download_index(client, officer, root)
    change(db, services, household, "revoke")
    after, key = download_index(client, officer, root)
    assert after.version > before.version and len(after) == 0
    assert after.lookup(key, "D-AB 1234") == [] and after.lookup(key, "D-CD 56") == []
    assert check(client, officer, "D-CD 56").get_json()["verdict"] == "unknown"
    issued(client, desk, "D-AB 1234")  # either car may have a permit again at once
    issued(client, desk, "D-CD 56")


def test_a_renewal_hands_both_plates_to_its_successor(
    client: FlaskClient, db: Database, services: Services, desk: dict[str, str]
) -> None:
    old = issued(client, desk, TWO_CARS)
    with db.transaction(write=True) as session:
        new = renewals.renew_pass(session, services, old, actor="t", now=NOW).issued.record
    assert new.holder["plate"] == TWO_CARS
    officer = device(client, db, services)
    index, key = download_index(client, officer, services.keys.root_public_key(now=NOW))
    for plate in ("D-AB 1234", "D-CD 56"):
        online = check(client, officer, plate).get_json()
        assert (online["verdict"], online["valid_until"]) == ("valid", new.valid_until.isoformat())
        assert [f.valid_until for f in index.lookup(key, plate)] == [new.valid_until]
        message = error(apply(client, desk, plate), 409, "permit_exists", "holder.plate")
        assert new.serial in message  # the successor holds the plate, not the renewed pass
