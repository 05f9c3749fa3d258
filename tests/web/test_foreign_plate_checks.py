"""A car registered abroad, checked by its plate online (issue 11)."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from tests.web.test_plate_checks import check, device, permit
from wallet.services.context import Services
from wallet.store.db import Database

pytestmark = pytest.mark.usefixtures("quick_password_hashes")


def test_a_foreign_car_is_found_by_its_plate_with_the_country_sign(
    client: FlaskClient, db: Database, services: Services
) -> None:
    permit(db, services, "NL 12-ABC-3")
    headers = device(client, db, services)
    for typed in ("NL 12-ABC-3", "nl 12abc3", "NL: 12 ABC 3"):
        body = check(client, headers, typed).get_json()
        assert (body["verdict"], body["plate"]) == ("valid", "NL 12ABC3"), typed
    # Without its sign the plate could be any country's: the field is named, nothing guessed.
    answer = check(client, headers, "12-ABC-3")
    assert answer.status_code == 422 and answer.get_json()["error"]["field"] == "plate"


def test_a_plauen_plate_and_a_polish_plate_that_read_alike_give_ambiguous(
    client: FlaskClient, db: Database, services: Services
) -> None:
    permit(db, services, "PL-WA 1234")
    permit(db, services, "PL: WA 1234")
    headers = device(client, db, services)
    assert check(client, headers, "PL WA 1234").get_json()["verdict"] == "ambiguous"
    assert check(client, headers, "PL: WA 1234").get_json()["plate"] == "PL WA1234"
    assert check(client, headers, "PL-WA 1234").get_json()["plate"] == "PL-WA 1234"
