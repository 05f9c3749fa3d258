"""Sending a holder their claim link by e-mail, through the outbox.

A claim link's secret is stored only hashed, so "send it again" means: make a
new link (every older one then says "replaced") and queue it, sealed, for the
worker to deliver. The address is used for this one message: it is not kept on
the pass nor written to the audit log (which records only that a link went out
by e-mail, and in which language).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from wallet.domain import PassRecord, check_email_address, check_language
from wallet.errors import ConfigError
from wallet.formats.claim_email import claim_email
from wallet.push.smtp import SmtpSender
from wallet.services import audit, outbox, passes
from wallet.services.context import Services


def email_claim_link(
    session: Session,
    services: Services,
    serial: object,
    *,
    email: object,
    lang: object = "de",
    reason: str | None = None,
    actor: str,
    now: datetime,
) -> PassRecord:
    """Make a new claim link and queue it for the holder's address, in one transaction.

    :raises ConfigError: e-mail is not set up (WALLET_SMTP_*).
    :raises InputError: the address or language is not usable (field named).
    """
    address = check_email_address(email)
    language = check_language(lang)
    settings = services.settings
    if not settings.smtp_enabled:
        raise ConfigError("e-mail is not set up on this service: set WALLET_SMTP_HOST and friends")
    issued = passes.replace_claim_link(
        session, services, serial, reason=reason, actor=actor, now=now
    )
    record = issued.record
    queue_claim_email(session, services, issued, address=address, lang=language, now=now)
    audit.record(
        session,
        key=services.audit_key,
        actor=actor,
        action="pass.claim_link_emailed",
        target=record.serial,
        details={"lang": language},
        now=now,
    )
    return record


def queue_claim_email(
    session: Session,
    services: Services,
    issued: passes.IssuedPass,
    *,
    address: str,
    lang: str,
    now: datetime,
) -> None:
    """Queue the message that brings ``issued``'s claim link to a checked address."""
    settings = services.settings
    message = claim_email(
        sender=settings.smtp_from,
        recipient=address,
        lang=lang,
        label=services.pass_type(issued.record.pass_type).label,
        claim_url=issued.claim_url(settings.public_url),
        link_valid_until=now + timedelta(seconds=settings.claim_link_lifetime),
        now=now,
    )
    pass_id = issued.pass_id or passes.stored_pass(session, issued.record.serial).id
    outbox.queue_email(session, services, pass_id=pass_id, message=message, now=now)


def mail_sender(services: Services) -> SmtpSender:
    """The worker's SMTP client for the configured server.

    :raises ConfigError: e-mail is not set up, or its password file cannot be read.
    """
    return SmtpSender(services.settings)
