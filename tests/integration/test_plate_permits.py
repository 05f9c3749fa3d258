"""One live parking permit per plate and zone (issue 11, plates as the key)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from tests.concurrency import run_together
from tests.factories import NOW, stored_row
from tests.integration.test_passes import change, issue
from wallet.errors import HolderDataError, PermitExistsError, StateConflictError
from wallet.formats.csvtable import read_table
from wallet.services import imports, passes, renewals
from wallet.services.context import Services
from wallet.store.db import Database
from wallet.store.models import PassRow


def permit(db: Database, services: Services, plate: str, zone: str = "12") -> passes.IssuedPass:
    return issue(db, services, "parking", holder={"plate": plate, "zone": zone})


def live_count(db: Database) -> int:
    with db.transaction(write=False) as session:
        query = select(func.count()).select_from(PassRow).where(PassRow.state != "revoked")
        return int(session.scalar(query) or 0)


def test_a_second_permit_for_a_plate_and_zone_is_refused_in_any_spelling(
    db: Database, services: Services
) -> None:
    first = permit(db, services, "D-AB 1234")
    assert first.record.holder["plate"] == "D-AB 1234"
    for spelling in ("d ab 1234", "D\u2013AB 1234", "D-AB1234"):
        with pytest.raises(StateConflictError, match=first.record.serial):
            permit(db, services, spelling)
    assert permit(db, services, "D-AB 1234", zone="13").record.holder["zone"] == "13"
    assert live_count(db) == 2


def test_a_plate_that_cannot_be_german_is_refused_at_issuance_with_the_field_named(
    db: Database, services: Services
) -> None:
    with pytest.raises(HolderDataError) as refused:
        permit(db, services, "DAB1234")  # D-AB or DA-B? two different cars
    assert refused.value.field == "plate" and "D-AB 1234 or DA-B 1234" in refused.value.message
    assert live_count(db) == 0


def test_after_revocation_the_plate_may_get_a_new_permit(db: Database, services: Services) -> None:
    first = permit(db, services, "D-AB 1234")
    change(db, services, first.record.serial, "revoke")
    assert permit(db, services, "D-AB 1234").record.serial != first.record.serial


def test_a_suspended_permit_still_holds_its_plate(db: Database, services: Services) -> None:
    first = permit(db, services, "D-AB 1234")
    change(db, services, first.record.serial, "suspend")
    with pytest.raises(StateConflictError):
        permit(db, services, "D-AB 1234")


def test_renewal_and_reissue_hand_the_plate_on_without_a_conflict(
    db: Database, services: Services
) -> None:
    first = permit(db, services, "D-AB 1234")
    with db.transaction(write=True) as session:
        renewed = renewals.renew_pass(session, services, first.record.serial, actor="t", now=NOW)
    successor = renewed.issued.record.serial
    with db.transaction(write=True) as session:
        reissued = passes.reissue_pass(
            session, services, successor, reason="new phone", actor="t", now=NOW
        )
    assert reissued.record.holder["plate"] == "D-AB 1234"
    assert stored_row(db, successor).state == "revoked"
    with pytest.raises(StateConflictError, match=reissued.record.serial):
        permit(db, services, "D-AB 1234")


def desks_at_once(issue: Callable[[int], object]) -> list[str]:
    """Four desks issue at the same moment (``issue(desk)``): each one's outcome, sorted."""
    outcomes: list[str] = []
    lock = threading.Lock()
    desks = iter(range(4))

    def desk() -> None:
        with lock:
            number = next(desks)
        try:
            issue(number)
            result = "issued"
        except PermitExistsError as refused:
            assert refused.field == "holder.plate"
            result = "refused"
        with lock:
            outcomes.append(result)

    run_together(desk, threads=4)
    return sorted(outcomes)


def test_two_desks_issuing_the_same_plate_at_once_make_one_permit(
    db: Database, services: Services
) -> None:
    outcomes = desks_at_once(lambda _: permit(db, services, "D-AB 1234"))
    assert outcomes == ["issued", "refused", "refused", "refused"]
    assert live_count(db) == 1


def test_an_import_row_for_a_plate_with_a_live_permit_is_a_problem_not_a_second_permit(
    db: Database, services: Services
) -> None:
    desk = permit(db, services, "D-AB 1234")
    export = b"Kennzeichen;Zone\r\nd ab 1234;12\r\nD-CD 77;12\r\n"
    with db.transaction(write=False) as session:
        report = imports.check(session, services, "parking", read_table(export, max_rows=10))
    (problem,) = report.problems
    assert (problem.row, problem.code) == (2, "has_permit")
    assert desk.record.serial in problem.message.en and report.to_issue == 1


def test_a_permit_issued_at_the_desk_between_check_and_import_stops_the_batch_whole(
    db: Database, services: Services
) -> None:
    export = b"Kennzeichen;Zone\r\nD-AB 1234;12\r\nD-CD 77;12\r\n"
    with db.transaction(write=False) as session:
        report = imports.check(session, services, "parking", read_table(export, max_rows=10))
    assert report.to_issue == 2
    permit(db, services, "D-AB 1234")  # meanwhile, at the desk
    batches = imports.run(lambda: db.transaction(write=True), services, report,
                          skip_invalid=False, send_email=False, actor="cli:import",
                          clock=lambda: NOW)  # fmt: skip
    with pytest.raises(PermitExistsError, match="run the import again, its check names the row"):
        list(batches)
    assert live_count(db) == 1  # the batch rolled back: no D-CD 77 without its row's result


# -- a second car on one permit ----------------------------------------------------------


def test_two_desks_giving_the_same_second_car_at_once_make_one_permit(
    db: Database, services: Services
) -> None:
    """Each desk's own car differs, the second car is the same: one desk wins the plate."""
    first_cars = ["D-AA 1", "D-BB 2", "D-CC 3", "D-EE 4"]
    outcomes = desks_at_once(lambda desk: permit(db, services, f"{first_cars[desk]}, D-CD 56"))
    assert outcomes == ["issued", "refused", "refused", "refused"]
    assert live_count(db) == 1


def test_a_new_car_is_a_revocation_and_a_new_permit_and_the_old_plate_is_free_at_once(
    db: Database, services: Services
) -> None:
    old = permit(db, services, "D-AB 1234, D-CD 56")
    with pytest.raises(PermitExistsError, match="reissue it with the new plate"):
        permit(db, services, "D-AB 1234, D-XY 7")  # the new car while the old permit lives
    change(db, services, old.record.serial, "revoke")
    new = permit(db, services, "D-AB 1234, D-XY 7")
    assert new.record.holder["plate"] == "D-AB 1234, D-XY 7"
    assert permit(db, services, "D-CD 56").record.holder["plate"] == "D-CD 56"  # sold on


def test_an_import_row_whose_second_car_has_a_live_permit_is_a_problem_naming_the_row(
    db: Database, services: Services
) -> None:
    desk = permit(db, services, "D-CD 56")
    export = (b"Kennzeichen;Zone\r\nD-EF 9;12\r\n\"D-AB 1234, d cd 56\";12\r\n"
              b"D-GH 1; 12\r\n\"D-IJ 2; d-gh 1\";12\r\n")  # fmt: skip
    with db.transaction(write=False) as session:
        report = imports.check(session, services, "parking", read_table(export, max_rows=10))
    found = {problem.row: problem for problem in report.problems}
    assert sorted(found) == [3, 5] and report.to_issue == 2
    assert found[3].code == "has_permit" and "D-CD 56" in found[3].message.en
    assert desk.record.serial in found[3].message.en
    # Two rows of one file sharing a car: the database would refuse the batch, the check
    # names the row instead.
    assert found[5].code == "duplicate_plate" and "row 4" in found[5].message.en


def test_an_imported_permit_holds_both_its_plates(db: Database, services: Services) -> None:
    export = b'Kennzeichen;Zone\r\n"D-AB 1234, D-CD 56";12\r\n'
    with db.transaction(write=False) as session:
        report = imports.check(session, services, "parking", read_table(export, max_rows=10))
    batches = imports.run(lambda: db.transaction(write=True), services, report,
                          skip_invalid=False, send_email=False, actor="cli:import",
                          clock=lambda: NOW)  # fmt: skip
    ((outcome,),) = list(batches)
    for plate in ("D-AB 1234", "D-CD 56"):
        with pytest.raises(PermitExistsError, match=outcome.serial):
            permit(db, services, plate)


def test_a_letter_to_the_keeper_of_two_cars_names_both_on_a_line_of_their_own() -> None:
    from wallet.services.letters import _recipient
    from wallet.store.models import HolderContactRow

    row = PassRow(holder={"plate": "SÜW-AB 123E, SÜW-CD 456H", "zone": "12"})
    contact = HolderContactRow(street="Marktplatz 1", postcode="40213", city="Düsseldorf")
    assert _recipient(row, contact) == (
        "Halterin/Halter der Fahrzeuge", "SÜW-AB 123E, SÜW-CD 456H", "Marktplatz 1",
        "40213 Düsseldorf",
    )  # fmt: skip
