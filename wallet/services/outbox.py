"""The durable outbox: pushes to Apple devices, Google Wallet state changes, e-mails.

A change that wallets must learn about (revoke, suspend, reinstate, reissue)
writes its outbox rows in its own transaction, so a committed revocation
always has its deliveries queued, whatever APNs or Google are doing. The
worker (``wallet worker``) claims due rows, delivers them outside any
transaction, and records the result: done, retry later with backoff, or
failed for good. On PostgreSQL several workers claim rows with
``FOR UPDATE SKIP LOCKED``; on SQLite the single-writer lock does the same.

A claim is a lease: the row's next attempt is pushed ``LEASE`` into the
future, so a worker that dies mid-delivery leaves the row to be retried by
another one. A delivery may therefore happen twice; both kinds are
idempotent (an empty push, a state PATCH); an e-mail may arrive twice.

An e-mail carries a claim link, a secret: its row holds the message sealed
(AES-GCM, a key derived from the instance's audit key) and loses it once the
message is delivered or given up, keeping only the outcome for staff.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, Protocol

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from wallet.errors import DeliveryError, WalletError
from wallet.services import contacts, metrics, wallets
from wallet.services.context import Services
from wallet.services.publishing import next_counter
from wallet.services.sealing import seal, unseal
from wallet.store.models import AppleRegistrationRow, Base, OutboxRow, PassRow

__all__ = [
    "LEASE",
    "MAX_ATTEMPTS",
    "Deliverers",
    "DrainReport",
    "PassDeliveries",
    "backoff",
    "deliveries_of",
    "drain",
    "pass_changed",
    "prune",
    "queue_email",
    "retry_failed",
    "rows_in_state",
]

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
# About two days of retries with the backoff below before a row is given up.
MAX_ATTEMPTS = 100
_FIRST_RETRY = 5.0  # seconds
_LONGEST_WAIT = 1800.0

APNS = "apns"
GOOGLE_STATE = "google_state"
EMAIL = "email"
_SEAL_AAD = b"wallet outbox email v1"

_outbox = Base.metadata.tables["outbox"]
_INSERT = insert(_outbox)
_REGISTRATIONS = select(AppleRegistrationRow.id, AppleRegistrationRow.push_token).where(
    AppleRegistrationRow.pass_id == bindparam("pass_id")
)


def pass_changed(session: Session, services: Services, row: PassRow, *, now: datetime) -> None:
    """Record that a pass changed: a new update tag, and deliveries to its wallets.

    The update tag comes from one counter whose row lock is held until commit,
    so tags grow in commit order and a device asking for changes "since" a tag
    never misses one that committed earlier.
    """
    row.update_tag = next_counter(session, "pass_updates")
    if row.retire_at is not None:
        # Renewed: the holder's wallets show the successor now (its registrations
        # moved to it), so the old token's state must not overwrite them.
        return
    rows: list[dict[str, Any]] = [
        _row(APNS, row.id, {"registration_id": reg_id, "push_token": token}, now)
        for reg_id, token in session.execute(_REGISTRATIONS, {"pass_id": row.id}).all()
    ]
    if services.settings.google_enabled:
        rows.append(_row(GOOGLE_STATE, row.id, {}, now))
    if rows:
        session.connection().execute(_INSERT, rows)


def queue_email(
    session: Session, services: Services, *, pass_id: int, message: EmailMessage, now: datetime
) -> None:
    """Queue one e-mail about a pass, sealed, in the caller's transaction."""
    payload = {"sealed": seal(services.audit_key, message.as_bytes(), aad=_SEAL_AAD)}
    session.connection().execute(_INSERT, [_row(EMAIL, pass_id, payload, now)])


def _unseal(services: Services, payload: dict[str, Any]) -> EmailMessage:
    data = unseal(
        services.audit_key, payload.get("sealed"), aad=_SEAL_AAD, what="the queued e-mail"
    )
    message = message_from_bytes(data, policy=policy.default)
    if not isinstance(message, EmailMessage):  # policy.default always makes one
        raise WalletError("the queued e-mail is not a message")
    return message


def _row(kind: str, pass_id: int, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "kind": kind,
        "pass_id": pass_id,
        "payload": payload,
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def backoff(attempts: int, *, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with jitter: 5 s, 10 s, 20 s … capped at 30 minutes."""
    base = min(_FIRST_RETRY * 2 ** max(attempts - 1, 0), _LONGEST_WAIT)
    jitter = (rng or random).uniform(0.8, 1.2)
    return timedelta(seconds=base * jitter)


class ApplePusher(Protocol):
    def send(self, device_token: str, *, topic: str) -> Any: ...


class GooglePatcher(Protocol):
    def patch_object(self, object_id: str, body: dict[str, Any]) -> bool: ...


class MailSender(Protocol):
    def send(self, message: EmailMessage) -> None: ...


@dataclass(frozen=True)
class Deliverers:
    """The clients the worker delivers through; None where a platform is not set up.

    ``services`` builds a Google object's PATCH from the pass's current state
    when it is delivered, so the newest state wins even when deliveries overlap.
    """

    apns: ApplePusher | None = None
    apple_topic: str = ""
    google: GooglePatcher | None = None
    services: Services | None = None
    mail: MailSender | None = None


@dataclass
class DrainReport:
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return self.delivered + self.retried + self.failed


@dataclass(frozen=True)
class _Claimed:
    id: int
    kind: str
    pass_id: int | None
    payload: dict[str, Any]
    attempts: int


Transaction = Callable[[], AbstractContextManager[Session]]


def _claim(session: Session, *, now: datetime, limit: int) -> list[_Claimed]:
    query = (
        select(OutboxRow)
        .where(OutboxRow.state == "pending", OutboxRow.next_attempt_at <= now)
        .order_by(OutboxRow.next_attempt_at, OutboxRow.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    claimed = []
    for row in session.scalars(query):
        row.attempts += 1
        row.next_attempt_at = now + LEASE
        claimed.append(_Claimed(row.id, row.kind, row.pass_id, dict(row.payload), row.attempts))
    session.flush()
    return claimed


def drain(
    transaction: Transaction,
    deliverers: Deliverers,
    *,
    clock: Callable[[], datetime],
    limit: int = 100,
) -> DrainReport:
    """Deliver what is due, one round; returns what happened."""
    report = DrainReport()
    with transaction() as session:
        claimed = _claim(session, now=clock(), limit=limit)
    for item in claimed:
        outcome = _deliver(transaction, deliverers, item)
        with transaction() as session:
            _record(session, item, outcome, now=clock(), report=report)
    return report


@dataclass(frozen=True)
class PassDeliveries:
    """What staff see of a pass's wallet copies: did the last change reach them?"""

    apple_devices: int
    pending: int
    delivered: int
    failed: int
    last_error: str | None
    emails_sent: int = 0
    emails_waiting: int = 0
    emails_failed: int = 0
    email_error: str | None = None  # the mail server's last refusal, for staff


def deliveries_of(session: Session, serial: str) -> PassDeliveries:
    """Wallet devices and deliveries of one pass (by serial), for staff."""
    pass_id = session.scalar(select(PassRow.id).where(PassRow.serial == serial))
    devices = session.scalar(
        select(func.count())
        .select_from(AppleRegistrationRow)
        .where(AppleRegistrationRow.pass_id == pass_id)
    )
    counts: dict[tuple[bool, str], int] = {}
    for kind, state, n in session.execute(
        select(OutboxRow.kind, OutboxRow.state, func.count())
        .where(OutboxRow.pass_id == pass_id)
        .group_by(OutboxRow.kind, OutboxRow.state)
    ).all():
        counts[kind == EMAIL, state] = counts.get((kind == EMAIL, state), 0) + int(n)

    def last_error(email: bool) -> str | None:
        kinds = [EMAIL] if email else [APNS, GOOGLE_STATE]
        return session.scalar(
            select(OutboxRow.last_error)
            .where(
                OutboxRow.pass_id == pass_id,
                OutboxRow.kind.in_(kinds),
                OutboxRow.last_error.is_not(None),
            )
            .order_by(OutboxRow.id.desc())
            .limit(1)
        )

    def count(email: bool, state: str) -> int:
        return counts.get((email, state), 0)

    return PassDeliveries(
        apple_devices=int(devices or 0),
        pending=count(False, "pending"),
        delivered=count(False, "done"),
        failed=count(False, "failed"),
        last_error=last_error(False),
        emails_sent=count(True, "done"),
        emails_waiting=count(True, "pending"),
        emails_failed=count(True, "failed"),
        email_error=last_error(True),
    )


KEEP_DELIVERED = timedelta(days=30)
KEEP_FAILED = timedelta(days=90)  # long enough for `wallet doctor` and staff to notice


def prune(session: Session, *, now: datetime) -> int:
    """Forget finished deliveries after a while; the table would grow with every change."""
    done = delete(OutboxRow).where(
        OutboxRow.state == "done", OutboxRow.done_at < now - KEEP_DELIVERED
    )
    failed = delete(OutboxRow).where(
        OutboxRow.state == "failed", OutboxRow.done_at < now - KEEP_FAILED
    )
    removed = 0
    for statement in (done, failed):
        removed += session.execute(statement).rowcount or 0  # type: ignore[attr-defined]
    return removed


def rows_in_state(session: Session, state: str, *, limit: int) -> list[dict[str, Any]]:
    """Deliveries in one state, oldest first, as plain data for the CLI."""
    query = (
        select(OutboxRow, PassRow.serial)
        .outerjoin(PassRow, PassRow.id == OutboxRow.pass_id)
        .where(OutboxRow.state == state)
        .order_by(OutboxRow.id)
        .limit(limit)
    )
    return [
        {
            "id": row.id,
            "kind": row.kind,
            "serial": serial,
            "state": row.state,
            "attempts": row.attempts,
            "created_at": row.created_at.isoformat(),
            "last_error": row.last_error,
        }
        for row, serial in session.execute(query).all()
    ]


def retry_failed(session: Session, *, now: datetime) -> int:
    """Give every failed delivery a fresh start (attempts from zero, due now)."""
    result = session.execute(
        update(OutboxRow)
        .where(OutboxRow.state == "failed")
        .values(state="pending", attempts=0, next_attempt_at=now, done_at=None)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class _Outcome:
    ok: bool
    retry: bool = False
    error: str = ""
    forget_registration: bool = False


def _deliver(transaction: Transaction, deliverers: Deliverers, item: _Claimed) -> _Outcome:
    try:
        if item.kind == APNS:
            return _push_apple(deliverers, item)
        if item.kind == GOOGLE_STATE:
            return _patch_google(transaction, deliverers, item)
        if item.kind == EMAIL:
            return _send_email(deliverers, item)
        return _Outcome(ok=False, error=f"unknown outbox kind {item.kind!r}")
    except DeliveryError as exc:
        return _Outcome(ok=False, retry=exc.retry, error=exc.message)
    except WalletError as exc:  # bad data in the row: retrying cannot help
        return _Outcome(ok=False, error=exc.message)
    except Exception as exc:  # a bug or a library surprise: keep the row, keep the worker
        log.exception("outbox %s (%s): unexpected error", item.id, item.kind)
        return _Outcome(ok=False, retry=True, error=f"unexpected {type(exc).__name__}; logged")


def _push_apple(deliverers: Deliverers, item: _Claimed) -> _Outcome:
    if deliverers.apns is None:
        return _Outcome(ok=False, retry=True, error="APNs is not configured on this worker")
    result = deliverers.apns.send(str(item.payload["push_token"]), topic=deliverers.apple_topic)
    return _Outcome(ok=True, forget_registration=bool(getattr(result, "unregistered", False)))


def _patch_google(transaction: Transaction, deliverers: Deliverers, item: _Claimed) -> _Outcome:
    if deliverers.google is None or deliverers.services is None:
        return _Outcome(
            ok=False, retry=True, error="Google Wallet is not configured on this worker"
        )
    with transaction() as session:
        row = session.get(PassRow, item.pass_id)
        if row is None:
            return _Outcome(ok=False, error="the pass no longer exists")
        object_id, body = wallets.google_state_patch(
            deliverers.services, wallets.wallet_pass(deliverers.services, row)
        )
    # False: the holder never saved the pass to Google Wallet; nothing to update.
    deliverers.google.patch_object(object_id, body)
    return _Outcome(ok=True)


def _send_email(deliverers: Deliverers, item: _Claimed) -> _Outcome:
    if deliverers.mail is None or deliverers.services is None:
        return _Outcome(ok=False, retry=True, error="e-mail is not configured on this worker")
    deliverers.mail.send(_unseal(deliverers.services, item.payload))
    return _Outcome(ok=True)


def _record(
    session: Session, item: _Claimed, outcome: _Outcome, *, now: datetime, report: DrainReport
) -> None:
    values: dict[str, Any]
    if outcome.ok:
        values = {"state": "done", "done_at": now, "last_error": None}
        report.delivered += 1
        if outcome.forget_registration:
            session.execute(
                delete(AppleRegistrationRow).where(
                    AppleRegistrationRow.id == item.payload.get("registration_id"),
                    AppleRegistrationRow.push_token == item.payload.get("push_token"),
                )
            )
    elif outcome.retry and item.attempts < MAX_ATTEMPTS:
        values = {"next_attempt_at": now + backoff(item.attempts), "last_error": outcome.error}
        report.retried += 1
        metrics.delivery_failed(item.kind, retry=True)
        log.warning("outbox %s (%s) will be retried: %s", item.id, item.kind, outcome.error)
    else:
        values = {"state": "failed", "done_at": now, "last_error": outcome.error}
        report.failed += 1
        metrics.delivery_failed(item.kind, retry=False)
        report.errors.append(f"#{item.id} {item.kind}: {outcome.error}")
        log.error("outbox %s (%s) failed for good: %s", item.id, item.kind, outcome.error)
    if item.kind == EMAIL and "state" in values:
        values["payload"] = {}  # delivered or given up: the claim link goes with it
        if outcome.ok and item.pass_id is not None:
            contacts.forget_after_delivery(session, item.pass_id)
    session.execute(update(OutboxRow).where(OutboxRow.id == item.id).values(**values))
