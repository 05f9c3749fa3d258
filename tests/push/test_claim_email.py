"""Claim links by e-mail, through the outbox, to a real SMTP server on loopback.

The server (aiosmtpd) runs as its own process: one that accepts, one that refuses a
domain with 550, one that is down, and one that wants STARTTLS and a login.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.factories import HOLDERS, NOW
from tests.standins.smtp import SmtpServer, smtp_server
from wallet.config import Settings
from wallet.errors import ConfigError, InputError
from wallet.push.smtp import SmtpSender
from wallet.services import audit, claim_mail, outbox, passes
from wallet.services.context import Services
from wallet.store.db import Database
from wallet.store.models import OutboxRow

ADDRESS = "erika.mustermann@example.de"


def mail_services(services: Services, server: SmtpServer, **changes: Any) -> Services:
    settings = replace(
        services.settings,
        smtp_host="127.0.0.1",
        smtp_port=server.port,
        smtp_security="starttls" if server.ca_file else "none",
        smtp_ca_file=server.ca_file,
        smtp_from="Stadt Musterstadt <ausweise@musterstadt.example>",
        **changes,
    )
    return Services(settings=settings, keys=services.keys, pass_types=services.pass_types)


def issue(db: Database, services: Services) -> passes.IssuedPass:
    with db.transaction(write=True) as session:
        return passes.issue_pass(
            session, services, type_id="library", holder=dict(HOLDERS["library"]),
            actor="test", now=NOW,
        )  # fmt: skip


def send(
    db: Database, services: Services, serial: str, *, to: str = ADDRESS, lang: str = "de"
) -> None:
    with db.transaction(write=True) as session:
        claim_mail.email_claim_link(
            session, services, serial, email=to, lang=lang, reason="letter lost",
            actor="user:anna", now=NOW,
        )  # fmt: skip


def drain(db: Database, services: Services, *, at: datetime = NOW) -> outbox.DrainReport:
    deliverers = outbox.Deliverers(services=services, mail=SmtpSender(services.settings))
    return outbox.drain(lambda: db.transaction(write=True), deliverers, clock=lambda: at)


def email_rows(db: Database) -> list[OutboxRow]:
    with db.transaction(write=False) as session:
        rows = session.scalars(select(OutboxRow).where(OutboxRow.kind == "email")).all()
        session.expunge_all()
        return list(rows)


def test_the_holder_gets_a_bilingual_message_with_a_new_link_that_opens_the_pass(
    db: Database, services: Services, tmp_path: Path
) -> None:
    first = issue(db, services)
    with smtp_server(tmp_path) as server:
        mailing = mail_services(services, server)
        send(db, mailing, first.record.serial)
        assert drain(db, mailing).delivered == 1
        [message] = server.messages()
    assert message["To"] == ADDRESS
    subject = str(message["Subject"]).strip()
    assert subject.startswith("Ihr digitaler Ausweis")  # German first
    assert "Your digital pass" in subject
    text = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    assert text.index("Guten Tag") < text.index("Hello")
    link = next(word for word in text.split() if "/p/" in word)
    assert f'href="{link}"' in html
    secret = link.rsplit("/p/", 1)[1]
    with db.transaction(write=False) as session:
        assert passes.pass_by_claim_secret(session, secret, now=NOW).serial == first.record.serial
        with pytest.raises(passes.ClaimLinkReplacedError):
            passes.pass_by_claim_secret(session, first.claim_secret, now=NOW)
    assert "Erika" not in text and "100200300400" not in text  # no holder data in transit
    [row] = email_rows(db)
    assert (row.state, row.payload) == ("done", {})  # delivered: the link is gone from the row


def test_an_english_holder_reads_english_first(
    db: Database, services: Services, tmp_path: Path
) -> None:
    first = issue(db, services)
    with smtp_server(tmp_path) as server:
        mailing = mail_services(services, server)
        send(db, mailing, first.record.serial, lang="en")
        drain(db, mailing)
        [message] = server.messages()
    assert str(message["Subject"]).strip().startswith("Your digital pass")
    text = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert text.index("Hello") < text.index("Guten Tag")


def test_a_hard_bounce_is_recorded_on_the_pass_and_not_retried(
    db: Database, services: Services, tmp_path: Path
) -> None:
    first = issue(db, services)
    with smtp_server(tmp_path, refuse="nowhere.example") as server:
        mailing = mail_services(services, server)
        send(db, mailing, first.record.serial, to="someone@nowhere.example")
        report = drain(db, mailing)
        assert server.messages() == []
    assert (report.delivered, report.failed) == (0, 1)
    with db.transaction(write=False) as session:
        seen = outbox.deliveries_of(session, first.record.serial)
    assert seen.emails_failed == 1 and seen.email_error is not None and "550" in seen.email_error
    [row] = email_rows(db)
    assert (row.state, row.payload) == ("failed", {})


def test_a_mail_server_that_is_down_is_retried_later_and_then_delivers(
    db: Database, services: Services, tmp_path: Path
) -> None:
    first = issue(db, services)
    with smtp_server(tmp_path) as server:
        mailing = mail_services(services, server)
        send(db, mailing, first.record.serial)
        server.kill()
        report = drain(db, mailing)
    assert (report.delivered, report.retried) == (0, 1)
    [row] = email_rows(db)
    assert row.state == "pending" and row.next_attempt_at > NOW and "sealed" in row.payload
    assert "not reachable" in (row.last_error or "")
    with smtp_server(tmp_path) as server:
        later = mail_services(services, server)
        assert drain(db, later, at=NOW + timedelta(minutes=5)).delivered == 1
        assert len(server.messages()) == 1


def test_starttls_and_login_are_used_when_the_server_wants_them(
    db: Database, services: Services, tmp_path: Path
) -> None:
    password = tmp_path / "smtp-password"
    password.write_text("geheim-und-lang\n")
    first = issue(db, services)
    with smtp_server(tmp_path, tls=True, login=("wallet", password)) as server:
        mailing = mail_services(
            services, server, smtp_username="wallet", smtp_password_file=password
        )
        send(db, mailing, first.record.serial)
        assert drain(db, mailing).delivered == 1
        assert len(server.messages()) == 1
        wrong = tmp_path / "wrong-password"
        wrong.write_text("falsch")
        send(db, mailing, first.record.serial)
        bad_login = mail_services(
            services, server, smtp_username="wallet", smtp_password_file=wrong
        )
        report = drain(db, bad_login)
    assert report.retried == 1  # the city's credentials to fix: kept, not given up
    waiting = [row for row in email_rows(db) if row.state == "pending"]
    assert len(waiting) == 1 and "535" in (waiting[0].last_error or "")


def test_queued_mail_keeps_neither_the_address_nor_the_link_in_clear(
    db: Database, services: Services, tmp_path: Path
) -> None:
    first = issue(db, services)
    with smtp_server(tmp_path) as server:
        mailing = mail_services(services, server)
        send(db, mailing, first.record.serial)
    [row] = email_rows(db)
    assert set(row.payload) == {"sealed"}
    sealed = base64.b64decode(row.payload["sealed"])  # nonce and ciphertext: nothing in clear
    assert ADDRESS.encode() not in sealed and b"/p/" not in sealed
    with db.transaction(write=False) as session:
        trail = audit.trail(session, first.record.serial)
    entry = next(e for e in trail if e.action == "pass.claim_link_emailed")
    assert entry.details == {"lang": "de"}
    assert ADDRESS not in json.dumps([e.to_json() for e in trail])


def test_the_rate_the_mail_server_allows_is_kept(tmp_path: Path, services: Services) -> None:
    with smtp_server(tmp_path) as server:
        settings = mail_services(services, server, smtp_per_minute=2).settings
        waits: list[float] = []
        clock = iter(range(0, 1000, 1)).__next__  # one second passes per message
        sender = SmtpSender(settings, clock=lambda: float(clock()), sleep=waits.append)
        for _ in range(3):
            sender.send(_note(settings))
        assert len(server.messages()) == 3
    assert waits and all(wait > 25 for wait in waits)  # 30 s apart, minus the time passed


def _note(settings: Settings) -> Any:
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = settings.smtp_from, ADDRESS, "Test"
    message.set_content("Test")
    return message


@pytest.mark.parametrize("address", ["", "erika", "erika@", "a b@example.de", "x@y", 17, None])
def test_an_address_that_is_not_one_is_refused_naming_the_field(
    db: Database, services: Services, tmp_path: Path, address: object
) -> None:
    first = issue(db, services)
    no_server = SmtpServer(port=25, maildir=tmp_path, process=None)  # type: ignore[arg-type]
    mailing = mail_services(services, no_server)  # refused before anything is sent
    with pytest.raises(InputError) as caught:
        send(db, mailing, first.record.serial, to=address)  # type: ignore[arg-type]
    assert caught.value.field == "email"
    with db.transaction(write=False) as session:  # nothing half-done: the old link still works
        assert passes.pass_by_claim_secret(session, first.claim_secret, now=NOW)


def test_without_a_mail_server_configured_sending_says_what_to_set(
    db: Database, services: Services
) -> None:
    first = issue(db, services)
    with pytest.raises(ConfigError, match="WALLET_SMTP_HOST"):
        send(db, services, first.record.serial)


def test_an_import_sends_holders_with_an_address_their_link_by_e_mail(
    db: Database, services: Services, tmp_path: Path
) -> None:
    from wallet.formats.csvtable import read_table
    from wallet.services import imports

    export = (
        b"Ausweisnummer;Name;E-Mail;Sprache\r\n"
        b"100200300401;Erika Mustermann;erika@example.de;de\r\n"
        b"100200300402;John Doe;;en\r\n"
    )
    with smtp_server(tmp_path) as server:
        mailing = mail_services(services, server)
        with db.transaction(write=False) as session:
            report = imports.check(session, mailing, "library", read_table(export, max_rows=10))
        batches = imports.run(
            lambda: db.transaction(write=True), mailing, report, skip_invalid=False,
            send_email=True, actor="cli:admin", clock=lambda: NOW,
        )  # fmt: skip
        outcomes = [o for batch in batches for o in batch]
        assert drain(db, mailing).delivered == 1
        [message] = server.messages()
    assert [(o.row, o.channel, bool(o.claim_url)) for o in outcomes] == [
        (2, "email", False),  # sent: the link is in the e-mail only
        (3, "link", True),  # no address: the link goes into the result file
    ]
    assert message["To"] == "erika@example.de"
