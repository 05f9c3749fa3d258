"""Holder contact data: used to deliver a claim link and for reminders, and no longer.

The rules (the README's record of processing repeats them for the data-protection
officer): an address is kept after the claim link went out only if the holder
agreed to reminders; a revoked pass's contacts are deleted; a pass's contacts
are deleted when it ran out ``KEEP_AFTER_EXPIRY`` ago; and ``wallet holders purge``
clears every address without consent once it is ``older_than`` (the time a
letter or e-mail takes, by default 30 days), whatever happened to the delivery.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from wallet.auditkey import AuditKey
from wallet.domain import PassState
from wallet.services import audit
from wallet.store.models import HolderContactRow, PassRow

KEEP_AFTER_EXPIRY = timedelta(days=90)
_CLEARED = {"email": None, "street": None, "postcode": None, "city": None}


def forget_after_delivery(session: Session, pass_id: int) -> None:
    """The claim link reached the holder: drop the address unless reminders were agreed."""
    session.execute(
        update(HolderContactRow)
        .where(HolderContactRow.pass_id == pass_id, HolderContactRow.reminders.is_(False))
        .values(**_CLEARED)
    )


@dataclass(frozen=True)
class PurgeReport:
    deleted: int  # contact rows of revoked or long expired passes
    cleared: int  # addresses without consent, older than the delivery window


def purge(
    session: Session,
    *,
    older_than: timedelta,
    audit_key: AuditKey,
    actor: str,
    now: datetime,
    dry_run: bool = False,
) -> PurgeReport:
    """Apply the rules above to every contact row; ``dry_run`` counts only."""
    finished = select(PassRow.id).where(
        or_(
            PassRow.state == PassState.REVOKED.value,
            PassRow.valid_until < now - KEEP_AFTER_EXPIRY,
        )
    )
    stale = (
        HolderContactRow.reminders.is_(False),
        HolderContactRow.created_at < now - older_than,
        or_(
            HolderContactRow.email.is_not(None),
            HolderContactRow.street.is_not(None),
            HolderContactRow.postcode.is_not(None),
            HolderContactRow.city.is_not(None),
        ),
        HolderContactRow.pass_id.not_in(finished),
    )
    doomed = HolderContactRow.pass_id.in_(finished)
    count_deleted = len(session.scalars(select(HolderContactRow.pass_id).where(doomed)).all())
    count_cleared = len(session.scalars(select(HolderContactRow.pass_id).where(*stale)).all())
    if not dry_run:
        session.execute(delete(HolderContactRow).where(doomed))
        session.execute(update(HolderContactRow).where(*stale).values(**_CLEARED))
        audit.record(session, key=audit_key, actor=actor, action="holders.purge",
                     details={"deleted": count_deleted, "cleared": count_cleared},
                     now=now)  # fmt: skip
    return PurgeReport(deleted=count_deleted, cleared=count_cleared)
