"""One live parking permit per plate and zone (issue 11, plates as the key)."""

from __future__ import annotations

import threading

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


def test_two_desks_issuing_the_same_plate_at_once_make_one_permit(
    db: Database, services: Services
) -> None:
    outcomes: list[str] = []
    lock = threading.Lock()

    def desk() -> None:
        try:
            permit(db, services, "D-AB 1234")
            result = "issued"
        except StateConflictError:
            result = "refused"
        with lock:
            outcomes.append(result)

    run_together(desk, threads=4)
    assert sorted(outcomes) == ["issued", "refused", "refused", "refused"]
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
