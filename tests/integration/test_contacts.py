"""Holder contact data is kept only as long as the holder agreed (issue 10, data protection)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from tests.factories import NOW
from tests.push.test_claim_email import drain, mail_services
from tests.standins.smtp import smtp_server
from wallet.formats.csvtable import read_table
from wallet.services import audit, contacts, imports, passes, reminders
from wallet.services.context import Services
from wallet.store.db import Database
from wallet.store.models import HolderContactRow, PassRow

EXPORT = (
    "Ausweisnummer;Name;E-Mail;Straße;PLZ;Ort;Erinnerungen\r\n"
    "100200300401;Erika Mustermann;erika@example.de;Am Markt 1;40213;Düsseldorf;ja\r\n"
    "100200300402;Max Muster;max@example.de;Am Markt 2;40213;Düsseldorf;nein\r\n"
    "100200300403;Eva Beispiel;;Am Markt 3;40213;Düsseldorf;\r\n"
).encode()


def import_rows(db: Database, services: Services, *, send_email: bool) -> list[imports.Outcome]:
    with db.transaction(write=False) as session:
        report = imports.check(session, services, "library", read_table(EXPORT, max_rows=10))
    assert report.problems == []
    batches = imports.run(
        lambda: db.transaction(write=True), services, report, skip_invalid=False,
        send_email=send_email, actor="cli:admin", clock=lambda: NOW,
    )  # fmt: skip
    return [o for batch in batches for o in batch]


def stored_contacts(db: Database) -> dict[str, tuple[str | None, str | None, bool]]:
    with db.transaction(write=False) as session:
        rows = session.execute(
            select(HolderContactRow.email, HolderContactRow.street, HolderContactRow.reminders,
                   HolderContactRow.city)
        ).all()  # fmt: skip
    return {str(city) + str(i): (email, street, reminders)
            for i, (email, street, reminders, city) in enumerate(rows)}  # fmt: skip


def test_an_address_without_consent_is_gone_once_the_link_was_delivered(
    db: Database, services: Services, tmp_path: Path
) -> None:
    with smtp_server(tmp_path) as server:
        mailing = mail_services(services, server)
        import_rows(db, mailing, send_email=True)
        assert drain(db, mailing).delivered == 2
    kept = sorted(stored_contacts(db).values(), key=lambda v: str(v))
    assert (None, None, False) in kept  # Max said no: nothing of his address is left
    assert ("erika@example.de", "Am Markt 1", True) in kept  # Erika agreed to reminders
    assert (None, "Am Markt 3", False) in kept  # Eva's letter has not gone out yet


def test_purge_deletes_revoked_holders_and_clears_old_addresses_without_consent(
    db: Database, services: Services
) -> None:
    outcomes = import_rows(db, services, send_email=False)
    revoked = outcomes[0].serial  # Erika's pass, revoked: her contacts go whatever she agreed
    with db.transaction(write=True) as session:
        passes.change_state(session, services, revoked, action="revoke", reason="moved",
                            actor="t", now=NOW)  # fmt: skip
    later = NOW + timedelta(days=31)
    with db.transaction(write=False) as session:
        counted = contacts.purge(session, older_than=timedelta(days=30), dry_run=True,
                                 audit_key=services.audit_key, actor="t", now=later)  # fmt: skip
    assert (counted.deleted, counted.cleared) == (1, 2)
    assert len(stored_contacts(db)) == 3  # a dry run changes nothing
    with db.transaction(write=True) as session:
        done = contacts.purge(session, older_than=timedelta(days=30),
                              audit_key=services.audit_key, actor="cli:dpo", now=later)  # fmt: skip
    assert done == counted
    assert sorted(stored_contacts(db).values(), key=str) == [(None, None, False)] * 2
    with db.transaction(write=False) as session:
        entry = audit.newest(session, limit=1)[0]
    assert (entry.action, entry.details) == ("holders.purge", {"deleted": 1, "cleared": 2})


def test_a_fresh_address_is_kept_for_its_delivery(db: Database, services: Services) -> None:
    import_rows(db, services, send_email=False)
    with db.transaction(write=True) as session:
        report = contacts.purge(session, older_than=timedelta(days=30),
                                audit_key=services.audit_key, actor="t", now=NOW)  # fmt: skip
    assert (report.deleted, report.cleared) == (0, 0)


def test_a_consent_value_that_is_neither_yes_nor_no_is_a_problem_in_the_check(
    db: Database, services: Services
) -> None:
    export = b"Ausweisnummer;Name;Erinnerungen\r\n100200300401;Erika;vielleicht\r\n"
    with db.transaction(write=False) as session:
        report = imports.check(session, services, "library", read_table(export, max_rows=10))
    assert [(p.row, p.code) for p in report.problems] == [(2, "reminders")]


def _expiring_in(db: Database, days: int) -> None:
    with db.transaction(write=True) as session:
        for row in session.scalars(select(PassRow)):
            row.valid_until = NOW + timedelta(days=days)


def test_a_consenting_holder_gets_one_renewal_reminder_with_the_renewal_path(
    db: Database, services: Services, tmp_path: Path
) -> None:
    with smtp_server(tmp_path) as server:
        mailing = mail_services(services, server)
        import_rows(db, mailing, send_email=False)
        _expiring_in(db, 20)  # inside the library's 30-day lead, outside its 7-day one
        with db.transaction(write=True) as session:
            assert reminders.queue_due(session, mailing, now=NOW) == 1  # Erika agreed; Max not
        with db.transaction(write=True) as session:
            assert reminders.queue_due(session, mailing, now=NOW) == 0  # once
        assert drain(db, mailing).delivered == 1
        [message] = server.messages()
        _expiring_in(db, 5)
        with db.transaction(write=True) as session:
            assert reminders.queue_due(session, mailing, now=NOW) == 1  # the 7-day one
            assert reminders.queue_due(session, mailing, now=NOW) == 0
    assert message["To"] == "erika@example.de"
    assert str(message["Subject"]).strip().startswith("Ihr Ausweis läuft bald ab")
    text = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "https://www.musterstadt.example/buecherei/verlaengern" in text


def test_a_pass_found_late_gets_one_reminder_not_one_per_lead_time(
    db: Database, services: Services, tmp_path: Path
) -> None:
    with smtp_server(tmp_path) as server:
        mailing = mail_services(services, server)
        import_rows(db, mailing, send_email=False)
        _expiring_in(db, 3)  # within both leads at once
        with db.transaction(write=True) as session:
            assert reminders.queue_due(session, mailing, now=NOW) == 1
            assert reminders.queue_due(session, mailing, now=NOW) == 0


def test_no_reminder_for_a_revoked_pass_or_without_a_mail_server(
    db: Database, services: Services, tmp_path: Path
) -> None:
    outcomes = import_rows(db, services, send_email=False)
    _expiring_in(db, 5)
    with db.transaction(write=True) as session:
        assert reminders.queue_due(session, services, now=NOW) == 0  # no WALLET_SMTP_*
        passes.change_state(session, services, outcomes[0].serial, action="revoke",
                            reason="moved", actor="t", now=NOW)  # fmt: skip
    with smtp_server(tmp_path) as server, db.transaction(write=True) as session:
        assert reminders.queue_due(session, mail_services(services, server), now=NOW) == 0
