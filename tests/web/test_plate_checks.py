"""Checking a parked car by its plate, online, from a paired device (issue 11, section 2)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from tests.factories import NOW
from tests.integration.test_passes import change, issue
from tests.web.test_console import csrf_token, limited_app, page_text
from tests.web.test_devices import pair, revoked_credential, signed_in, start
from wallet.codec import b64url_decode
from wallet.errors import BundleError, InputError
from wallet.keys import PublicKey
from wallet.plateindex import PlateIndex, PlateVerdict, verify_index
from wallet.services import plate_checks
from wallet.services.context import Services
from wallet.store.db import Database
from wallet.store.models import PlateIndexRow, PlateLookupRow

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
    assert later.verdict is PlateVerdict.EXPIRED


def test_two_cars_that_fit_what_was_typed_give_ambiguous_not_a_guess(
    db: Database, services: Services
) -> None:
    permit(db, services, "D-AB 1234")  # Düsseldorf
    permit(db, services, "DA-B 1234")  # Darmstadt: another car
    with db.transaction(write=False) as session:
        typed = plate_checks.check_plate(session, services, "DAB1234", "12", now=NOW)
        written = plate_checks.check_plate(session, services, "DA B 1234", "12", now=NOW)
    assert typed.verdict is PlateVerdict.AMBIGUOUS and typed.zones == ()
    assert (written.verdict, written.plate) == (PlateVerdict.VALID, "DA-B 1234")


def test_a_renewed_permit_answers_for_its_successor(db: Database, services: Services) -> None:
    from wallet.services import renewals

    old = permit(db, services, "D-AB 4", valid_until=NOW + timedelta(days=10))
    with db.transaction(write=True) as session:
        new = renewals.renew_pass(session, services, old, actor="t", now=NOW).issued.record
    with db.transaction(write=False) as session:
        found = plate_checks.check_plate(session, services, "D-AB 4", "12", now=NOW)
    assert (found.verdict, found.valid_until) == (PlateVerdict.VALID, new.valid_until)


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


def test_a_lookup_leaves_only_a_count_per_device_and_day(
    client: FlaskClient, db: Database, services: Services
) -> None:
    headers = device(client, db, services)
    for typed in ("D-AB 1234", "D-CD 5678"):
        assert check(client, headers, typed).status_code == 200
    with db.transaction(write=False) as session:
        rows = session.execute(select(PlateLookupRow.__table__)).all()
        counts = plate_checks.lookups_on(session, now=NOW)
    assert [tuple(r)[1:] for r in rows] == [(NOW.date().isoformat(), 2)]
    assert list(counts.values()) == [2]
    assert "AB" not in repr(rows) and "1234" not in repr(rows)  # no plate, in any form


def test_plate_enumeration_is_stopped_per_device_by_the_minute_and_by_the_day(
    db: Database, services: Services
) -> None:
    limited = limited_app(db, services).test_client()
    headers = device(limited, db, services)
    answers = [check(limited, headers, f"D-AB {n}").status_code for n in range(1, 33)]
    assert answers[:30] == [200] * 30 and answers[30:] == [429, 429]
    other = device(limited, db, services)  # another officer's phone is not slowed down
    assert check(limited, other, "D-AB 1").status_code == 200
    with db.transaction(write=True) as session:
        session.execute(update(PlateLookupRow).values(count=plate_checks.LIMIT_PER_DAY))
    over = check(client_for(db, services), other, "D-AB 1")
    assert over.status_code == 429 and "ask the office" in over.get_json()["error"]["message"]


def client_for(db: Database, services: Services) -> FlaskClient:
    return limited_app(db, services, RATELIMIT_ENABLED=False).test_client()


def test_the_console_warns_of_a_device_with_unusually_many_plate_checks(
    app: Flask, client: FlaskClient, db: Database, services: Services,
    make_user: Callable[..., str],
) -> None:  # fmt: skip
    headers = device(client, db, services)
    assert check(client, headers, "D-AB 1234").status_code == 200
    admin = signed_in(app, make_user, "ada", "admin")
    quiet = page_text(admin.get("/console/devices").get_data(as_text=True))
    assert "Kennzeichenabfragen heute" in quiet and "Auffällig viele" not in quiet
    with db.transaction(write=True) as session:
        session.execute(update(PlateLookupRow).values(count=plate_checks.ALERT_PER_DAY))
    busy = page_text(admin.get("/console/devices").get_data(as_text=True))
    assert "Auffällig viele Kennzeichenabfragen heute: Handy 1." in busy


def test_staff_check_a_plate_in_the_console_and_see_zone_and_end_only(
    app: Flask, db: Database, services: Services, make_user: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    permit(db, services, "D-AB 1234", zone="12")
    vera = signed_in(app, make_user, "vera", "verifier")
    page = vera.get("/console/plates").get_data(as_text=True)
    assert "Kennzeichen prüfen" in page_text(page)
    form = {"csrf_token": csrf_token(page), "plate": "dab1234", "zone": "12"}
    found = vera.post("/console/plates", data=form)
    text = page_text(found.get_data(as_text=True))
    assert found.status_code == 200 and "Ergebnis: Gültiger Ausweis für diese Zone" in text
    assert "D-AB 1234" in text and "Ausweis für Zone 12" in text
    for typed in ("D AB 1234", "D\u2013AB 1234"):
        answer = vera.post("/console/plates", data={**form, "plate": typed})
        assert "Gültiger Ausweis für diese Zone" in page_text(answer.get_data(as_text=True))
    elsewhere = page_text(vera.post("/console/plates", data={**form, "zone": "7"}).get_data(
        as_text=True))  # fmt: skip
    assert "Ergebnis: Kein Ausweis für diese Zone" in elsewhere
    bad = vera.post("/console/plates", data={**form, "plate": "not a plate"})
    assert bad.status_code == 422
    assert "so ein, wie es am Fahrzeug steht" in page_text(bad.get_data(as_text=True))
    assert "1234" not in caplog.text and "dab" not in caplog.text.lower()  # no plate in a log


# -- the offline index, as a device downloads it ---------------------------------------


def download_index(
    client: FlaskClient, headers: dict[str, str], root: PublicKey
) -> tuple[PlateIndex, bytes]:
    answer = client.get("/device/v1/plates/index", headers=headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.headers["Cache-Control"] == "no-store"
    body = answer.get_json()
    return verify_index(body["index"], root, now=NOW), b64url_decode(body["key"], what="key")


def test_a_paired_device_checks_plates_offline_with_the_index_and_its_key(
    client: FlaskClient, db: Database, services: Services
) -> None:
    root = services.keys.root_public_key(now=NOW)
    permit(db, services, "D-AB 1234")
    suspended = permit(db, services, "D-CD 56", zone="7")
    change(db, services, suspended, "suspend")
    headers = device(client, db, services)
    index, key = download_index(client, headers, root)
    assert [(f.zone, f.state) for f in index.lookup(key, "D-AB 1234")] == [("12", "valid")]
    assert [(f.zone, f.state) for f in index.lookup(key, "D-CD 56")] == [("7", "suspended")]
    assert index.lookup(key, "D-XY 1") == []
    assert "D-AB" not in client.get("/device/v1/plates/index", headers=headers).get_data(
        as_text=True)  # fmt: skip


def test_a_revoked_permit_leaves_the_next_index_and_the_key_changes_with_it(
    client: FlaskClient, db: Database, services: Services
) -> None:
    root = services.keys.root_public_key(now=NOW)
    gone = permit(db, services, "D-AB 1234")
    headers = device(client, db, services)
    before, old_key = download_index(client, headers, root)
    again, same_key = download_index(client, headers, root)
    assert (again.version, same_key) == (before.version, old_key)  # nothing changed: cached
    change(db, services, gone, "revoke")
    after, new_key = download_index(client, headers, root)
    assert after.version > before.version and new_key != old_key
    assert after.lookup(new_key, "D-AB 1234") == []
    with pytest.raises(BundleError, match="does not belong"):
        after.lookup(old_key, "D-AB 1234")  # the old key opens nothing new


def test_the_index_key_is_sealed_in_the_database(
    client: FlaskClient, db: Database, services: Services
) -> None:
    permit(db, services, "D-AB 1234")
    headers = device(client, db, services)
    key = b64url_decode(
        client.get("/device/v1/plates/index", headers=headers).get_json()["key"], what="key"
    )
    with db.transaction(write=False) as session:
        stored = session.scalars(select(PlateIndexRow.sealed_key)).one()
    assert key not in base64.b64decode(stored) and key.hex() not in stored


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wpd_guessed"}])
def test_the_plate_index_is_not_for_unpaired_clients(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    answer = client.get("/device/v1/plates/index", headers=headers)
    assert answer.status_code == 401 and "key" not in (answer.get_json() or {})
