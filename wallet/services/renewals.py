"""Renewing a pass: a successor with a new expiry that takes over the holder's wallets.

The successor keeps the holder's data (so the library's card number stays the
holder's number), the city's external key, the contact data and, in Apple and
Google Wallet, the old pass's identity: its wallet serial, its Apple secret and
its device registrations move over, and one push later the pass on the phone
shows the new token and expiry in place.

The old token is not revoked at once: a holder with a printed card or a phone
left at home would be stopped for nothing. It is revoked as soon as the
successor is claimed (a wallet fetched it, or the holder downloaded it through
its link) or when the pass type's grace period runs out (the worker's sweep),
whichever comes first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from wallet.domain import PassState
from wallet.errors import StateConflictError
from wallet.services import audit, claim_mail, outbox, passes
from wallet.services.context import Services
from wallet.store.models import AppleRegistrationRow, HolderContactRow, PassRow

RENEWAL_ACTOR = "system:renewal"
# The sweep's batch: retiring is a status change per pass, each in its own
# transaction, so a worker never holds a long write lock.
SWEEP_BATCH = 200


@dataclass(frozen=True)
class Renewal:
    """A renewed pass: the successor (with its claim link, shown once) and when the old retires."""

    issued: passes.IssuedPass
    renewed: str
    retire_at: datetime
    # The new claim link went to the holder's address (kept because they agreed to
    # reminders); otherwise it is for the letter or the desk.
    emailed: bool


def renew_pass(
    session: Session,
    services: Services,
    serial: object,
    *,
    valid_until: datetime | None = None,
    reason: str | None = None,
    actor: str,
    now: datetime,
) -> Renewal:
    """Issue the successor of a pass and hand it the holder's wallets, in one transaction.

    :raises StateConflictError: the pass is revoked, suspended or already renewed.
    """
    passes.check_reason(reason)
    old = passes.stored_pass(session, serial, for_update=True)
    if old.state == PassState.REVOKED:
        raise StateConflictError(f"pass {old.serial} is revoked; issue a new pass instead")
    if old.state == PassState.SUSPENDED:
        raise StateConflictError(
            f"pass {old.serial} is suspended; reinstate it first if it may be renewed"
        )
    if old.replaced_by is not None:
        raise StateConflictError(
            f"pass {old.serial} was already renewed or reissued as {old.replaced_by}; "
            f"renew {old.replaced_by} instead"
        )
    grace = timedelta(days=services.pass_type(old.pass_type).renewal_grace_days)
    # The city's key and every plate and zone are unique among live passes: the
    # successor takes them over, so the old pass lets go first. Its retire_at marks it
    # as leaving: its old token stays valid for the grace period, but the plates'
    # permit (online and in the offline index) is the successor from now on.
    external_key, old.external_key = old.external_key, None
    old.retire_at = now + grace
    session.flush()
    passes.release_plates(session, old.id)
    new = passes.issue_pass(
        session,
        services,
        type_id=old.pass_type,
        holder=old.holder,
        valid_until=valid_until,
        actor=actor,
        now=now,
        replaces=old.serial,
        external_key=external_key,
        renewal_of=old,
    )
    old.replaced_by = new.record.serial
    old.updated_at = now
    for table in (AppleRegistrationRow, HolderContactRow):
        session.execute(update(table).where(table.pass_id == old.id).values(pass_id=new.pass_id))
    audit.record(
        session,
        key=services.audit_key,
        actor=actor,
        action="pass.renew",
        target=old.serial,
        details={
            "successor": new.record.serial,
            "retire_at": old.retire_at.isoformat(),
            "reason": reason,
        },
        now=now,
    )
    successor = passes.stored_pass(session, new.record.serial)
    outbox.pass_changed(session, services, successor, now=now)  # wallets update in place
    emailed = _email_link(session, services, new, now=now)
    if grace <= timedelta(0):
        _retire(session, services, old, why="renewed; no grace period", now=now)
    session.flush()
    return Renewal(issued=new, renewed=old.serial, retire_at=old.retire_at, emailed=emailed)


def _email_link(
    session: Session, services: Services, new: passes.IssuedPass, *, now: datetime
) -> bool:
    contact = session.get(HolderContactRow, new.pass_id)
    if contact is None or contact.email is None or not services.settings.smtp_enabled:
        return False
    claim_mail.queue_claim_email(
        session, services, new, address=contact.email, lang=contact.lang, now=now
    )
    return True


def successor_claimed(session: Session, services: Services, serial: str, *, now: datetime) -> bool:
    """The holder took the pass ``serial``: retire the renewed pass it replaces, if pending.

    Two lookups by serial; callers call it only for a pass that replaces another.
    """
    new = session.scalars(select(PassRow).where(PassRow.serial == serial)).first()
    if new is None or new.replaces is None:
        return False
    old = session.scalars(
        select(PassRow).where(PassRow.serial == new.replaces).with_for_update(of=PassRow)
    ).first()
    if (
        old is None
        or old.replaced_by != serial
        or old.retire_at is None
        or old.state == PassState.REVOKED
    ):
        return False  # a reissue (revoked at once), or retired already
    _retire(session, services, old, why=f"renewed as {serial}; the new pass was claimed", now=now)
    return True


def retire_due(
    session: Session, services: Services, *, now: datetime, limit: int = SWEEP_BATCH
) -> int:
    """Revoke renewed passes whose grace period is over; how many were revoked."""
    due = session.scalars(
        select(PassRow)
        .where(
            PassRow.retire_at.is_not(None),
            PassRow.retire_at <= now,
            PassRow.state != PassState.REVOKED.value,
        )
        .order_by(PassRow.retire_at)
        .limit(limit)
        .with_for_update(of=PassRow, skip_locked=True)
    ).all()
    for old in due:
        _retire(
            session, services, old, why=f"renewed as {old.replaced_by}; grace period over", now=now
        )
    return len(due)


def _retire(session: Session, services: Services, old: PassRow, *, why: str, now: datetime) -> None:
    passes.change_state(
        session, services, old.serial, action="revoke", reason=why, actor=RENEWAL_ACTOR, now=now
    )
