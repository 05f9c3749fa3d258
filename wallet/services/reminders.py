"""Renewal reminders: the worker e-mails each consenting holder before their pass runs out.

At each lead time the pass type names (``[renewal] reminder_days``), once per pass
and lead time (a row in ``reminders_sent`` written in the transaction that queues
the e-mail), pointing to the renewal path the type names. Only holders who agreed
to reminders and whose address is still kept get one; a revoked pass gets none.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from wallet.domain import PassState
from wallet.formats.claim_email import reminder_email
from wallet.services import audit, outbox
from wallet.services.context import Services
from wallet.store.models import HolderContactRow, PassRow, ReminderRow

BATCH = 200  # reminders queued per round; the rest follow in the next rounds


def queue_due(session: Session, services: Services, *, now: datetime) -> int:
    """Queue the reminders due now; returns how many."""
    if not services.settings.smtp_enabled:
        return 0
    queued = 0
    for pass_type in services.pass_types.values():
        # Shortest lead first: a pass found late gets the nearest reminder, then counts
        # as reminded for the longer leads too (one message, not a burst).
        for days in sorted(pass_type.reminder_days):
            sent = select(ReminderRow.pass_id).where(ReminderRow.days_before == days)
            due = session.execute(
                select(PassRow, HolderContactRow)
                .join(HolderContactRow, HolderContactRow.pass_id == PassRow.id)
                .where(
                    PassRow.pass_type == pass_type.id,
                    PassRow.state != PassState.REVOKED.value,
                    PassRow.valid_until > now,
                    PassRow.valid_until <= now + timedelta(days=days),
                    HolderContactRow.reminders.is_(True),
                    HolderContactRow.email.is_not(None),
                    PassRow.id.not_in(sent),
                )
                .limit(BATCH - queued)
            ).all()
            for row, contact in due:
                _queue(session, services, row, contact, days=days, now=now)
                queued += 1
            if queued >= BATCH:
                return queued
    return queued


def _queue(
    session: Session,
    services: Services,
    row: PassRow,
    contact: HolderContactRow,
    *,
    days: int,
    now: datetime,
) -> None:
    pass_type = services.pass_type(row.pass_type)
    message = reminder_email(
        sender=services.settings.smtp_from,
        recipient=str(contact.email),
        lang=contact.lang,
        label=pass_type.label,
        valid_until=row.valid_until,
        renewal_url=pass_type.renewal_url,
        renewal_desk=pass_type.renewal_desk,
        now=now,
    )
    for lead in pass_type.reminder_days:
        if lead >= days:
            session.merge(ReminderRow(pass_id=row.id, days_before=lead, sent_at=now))
    outbox.queue_email(session, services, pass_id=row.id, message=message, now=now)
    audit.record(session, key=services.audit_key, actor="worker", action="pass.reminder",
                 target=row.serial, details={"days_before": days}, now=now)  # fmt: skip
