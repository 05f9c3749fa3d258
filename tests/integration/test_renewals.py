"""Renewing passes (issue 10): successor, grace period, card number and contacts kept."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.factories import NOW, stored_row
from tests.integration.test_contacts import EXPORT, import_rows
from tests.integration.test_passes import LIBRARY, PARKING, change, issue, offline_verifier
from tests.push.test_claim_email import drain, mail_services
from tests.standins.smtp import smtp_server
from wallet.errors import InputError, NotFoundError, StateConflictError
from wallet.formats.csvtable import read_table
from wallet.services import imports, passes, renewals
from wallet.services.context import Services
from wallet.store.db import Database
from wallet.store.models import AuditEntryRow, HolderContactRow, OutboxRow, PassRow


def renew(db: Database, services: Services, serial: str, **kw: object) -> renewals.Renewal:
    at = kw.pop("now", NOW)
    with db.transaction(write=True) as session:
        return renewals.renew_pass(session, services, serial, actor="admin:test", now=at, **kw)  # type: ignore[arg-type]


def state(db: Database, serial: str) -> str:
    return str(stored_row(db, serial).state)


def test_a_renewal_keeps_the_card_number_and_adds_a_period_to_the_old_end(
    db: Database, services: Services
) -> None:
    old = issue(db, services, valid_until=NOW + timedelta(days=20))
    renewal = renew(db, services, old.record.serial)
    new = renewal.issued.record
    library = services.pass_type("library")
    assert new.holder == LIBRARY  # the library system knows the holder by this number
    assert new.serial != old.record.serial and new.replaces == old.record.serial
    assert new.valid_from == NOW  # usable at once, so the old one can retire when claimed
    assert new.valid_until == library.valid_until(NOW + timedelta(days=20))
    assert renewal.retire_at == NOW + timedelta(days=library.renewal_grace_days)
    # Until then both verify: nobody is stopped while the new pass is on its way.
    verifier = offline_verifier(db, services)
    assert verifier.check(old.qr_text, now=NOW).state == "valid"
    assert verifier.check(new.qr_text, now=NOW).state == "valid"
    stored_old = stored_row(db, old.record.serial)
    assert (stored_old.replaced_by, stored_old.retire_at) == (new.serial, renewal.retire_at)
    assert stored_row(db, new.serial).wallet_serial == old.record.serial
    with db.transaction(write=False) as session:
        entry = session.scalars(
            select(AuditEntryRow).where(AuditEntryRow.action == "pass.renew")
        ).one()
    assert (entry.target, entry.details["successor"]) == (old.record.serial, new.serial)


def test_the_old_token_retires_when_the_successor_is_claimed(
    db: Database, services: Services
) -> None:
    old = issue(db, services)
    new = renew(db, services, old.record.serial).issued
    with db.transaction(write=True) as session:
        assert renewals.successor_claimed(session, services, new.record.serial, now=NOW)
    with db.transaction(write=True) as session:  # claimed again: nothing more to do
        assert not renewals.successor_claimed(session, services, new.record.serial, now=NOW)
    verifier = offline_verifier(db, services)
    assert verifier.check(old.qr_text, now=NOW).state == "revoked"
    assert verifier.check(new.qr_text, now=NOW).state == "valid"
    assert "claimed" in str(stored_row(db, old.record.serial).reason)


def test_the_old_token_retires_after_the_grace_period_if_never_claimed(
    db: Database, services: Services
) -> None:
    old = issue(db, services, "parking")
    renewal = renew(db, services, old.record.serial)
    grace = timedelta(days=services.pass_type("parking").renewal_grace_days)
    with db.transaction(write=True) as session:
        assert renewals.retire_due(session, services, now=NOW + grace - timedelta(minutes=1)) == 0
    assert state(db, old.record.serial) == "valid"
    with db.transaction(write=True) as session:
        assert renewals.retire_due(session, services, now=renewal.retire_at) == 1
    with db.transaction(write=True) as session:
        assert renewals.retire_due(session, services, now=renewal.retire_at) == 0
    assert state(db, old.record.serial) == "revoked"
    assert state(db, renewal.issued.record.serial) == "valid"
    assert "grace period over" in str(stored_row(db, old.record.serial).reason)


def test_renewing_a_revoked_suspended_or_already_renewed_pass_is_refused(
    db: Database, services: Services
) -> None:
    revoked, suspended, renewed = (issue(db, services, "parking") for _ in range(3))
    change(db, services, revoked.record.serial, "revoke")
    change(db, services, suspended.record.serial, "suspend")
    successor = renew(db, services, renewed.record.serial).issued.record.serial
    with pytest.raises(StateConflictError, match="issue a new pass instead"):
        renew(db, services, revoked.record.serial)
    with pytest.raises(StateConflictError, match="reinstate it first"):
        renew(db, services, suspended.record.serial)
    with pytest.raises(StateConflictError, match=f"renew {successor} instead"):
        renew(db, services, renewed.record.serial)
    with pytest.raises(NotFoundError):
        renew(db, services, "NOPE0123456789ab")
    with (
        db.transaction(write=True) as session,
        pytest.raises(StateConflictError, match=f"renewed as {successor}; reissue that one"),
    ):
        passes.reissue_pass(session, services, renewed.record.serial, reason=None,
                            actor="admin:test", now=NOW)  # fmt: skip
    with db.transaction(write=False) as session:
        assert session.scalar(select(func.count()).select_from(PassRow)) == 4


def test_a_successor_beyond_the_types_longest_validity_is_refused_and_nothing_written(
    db: Database, services: Services
) -> None:
    old = issue(db, services)
    with pytest.raises(InputError) as refused:
        renew(db, services, old.record.serial, valid_until=NOW + timedelta(days=2000))
    assert refused.value.field == "valid_until"
    with pytest.raises(InputError) as refused:
        renew(db, services, old.record.serial, reason="x\x00y")
    assert refused.value.field == "reason"
    with db.transaction(write=False) as session:
        assert session.scalar(select(func.count()).select_from(PassRow)) == 1
    stored = stored_row(db, old.record.serial)
    assert (stored.replaced_by, stored.retire_at, stored.state) == (None, None, "valid")


def test_no_grace_period_retires_the_old_token_at_once(db: Database, services: Services) -> None:
    from dataclasses import replace

    parking = replace(services.pass_type("parking"), renewal_grace_days=0)
    strict = Services(
        settings=services.settings, keys=services.keys,
        pass_types={**services.pass_types, "parking": parking},
    )  # fmt: skip
    old = issue(db, strict, "parking", holder=PARKING)
    renew(db, strict, old.record.serial)
    assert state(db, old.record.serial) == "revoked"


def test_an_imported_holder_keeps_key_and_contacts_and_gets_the_new_link_by_email(
    db: Database, services: Services, tmp_path: Path
) -> None:
    with smtp_server(tmp_path) as server:
        mailing = mail_services(services, server)
        outcomes = import_rows(db, mailing, send_email=True)
        assert drain(db, mailing).delivered == 2
        erika = outcomes[0].serial  # agreed to reminders: her address is kept
        renewal = renew(db, mailing, erika)
        assert renewal.emailed
        assert drain(db, mailing).delivered == 1
        (message,) = server.messages()[2:]
    assert message["To"] == "erika@example.de"
    assert (
        renewal.issued.claim_url(services.settings.public_url)
        in message.get_body(("plain",)).get_content()
    )  # type: ignore[union-attr]
    new_id = stored_row(db, renewal.issued.record.serial).id
    with db.transaction(write=False) as session:
        contact = session.get(HolderContactRow, new_id)
        assert contact is not None and contact.email == "erika@example.de"
        assert session.scalars(select(OutboxRow.pass_id).where(OutboxRow.kind == "email")).all()
    # The city's export runs again: the renewed holder is known by the successor.
    with db.transaction(write=False) as session:
        report = imports.check(session, services, "library", read_table(EXPORT, max_rows=10))
    assert report.problems == [] and (report.to_issue, report.issued_before) == (0, 3)
    again = import_rows(db, services, send_email=False)
    assert {o.status for o in again} == {"issued_before"}
    assert again[0].serial == renewal.issued.record.serial


def test_without_kept_address_the_link_is_for_the_letter(db: Database, services: Services) -> None:
    outcomes = import_rows(db, services, send_email=False)
    renewal = renew(db, services, outcomes[1].serial)
    assert not renewal.emailed
    with db.transaction(write=False) as session:
        assert session.scalars(select(OutboxRow).where(OutboxRow.kind == "email")).all() == []
