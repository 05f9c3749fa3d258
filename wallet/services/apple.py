"""Apple's pass update web service: device registrations and "what changed".

The protocol (PassKit's "web service" reference): a device that adds a pass
registers its push token for it, authenticating with the pass's
``authenticationToken``; after a push it asks which of its passes changed
since the ``lastUpdated`` tag it last saw, then fetches each one. Wrong
tokens and unknown serials look the same (401), so the endpoints reveal
nothing about which serials exist.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from wallet.domain import WalletPass
from wallet.errors import InputError, WalletError
from wallet.push.apns import validate_device_token
from wallet.services import wallets
from wallet.services.context import Services
from wallet.store.models import AppleDeviceLogRow, AppleRegistrationRow, PassRow
from wallet.tokens import (
    SERIAL_RE,
)

__all__ = [
    "AppleAuthError",
    "Updates",
    "authenticate",
    "prune_logs",
    "record_log",
    "register_device",
    "unregister_device",
    "updated_serials",
]

# deviceLibraryIdentifier: Apple sends a 32-character hex string; leave room.
_DEVICE_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")
_TAG_RE = re.compile(r"[0-9]{1,19}")
MAX_LOG_MESSAGES = 50
MAX_LOG_MESSAGE_LENGTH = 2000


class AppleAuthError(WalletError):
    """The pass's authentication token is missing or wrong (or the pass is unknown)."""

    code = "apple_auth_failed"


def _check_device(device_id: str) -> str:
    if not _DEVICE_RE.fullmatch(device_id):
        raise InputError("deviceLibraryIdentifier is not a valid identifier", field="device")
    return device_id


def _check_pass_type(services: Services, pass_type_id: str) -> None:
    if pass_type_id != services.settings.apple_pass_type_id:
        raise AppleAuthError("this service does not serve that pass type identifier")


def authenticate(
    session: Session,
    services: Services,
    *,
    pass_type_id: str,
    serial: str,
    authorization: str | None,
) -> PassRow:
    """The pass the request may act on; ``authorization`` is the whole header.

    The comparison takes the same time whatever the token (hmac.compare_digest),
    and an unknown serial is compared against a dummy, so timing tells nothing.
    """
    _check_pass_type(services, pass_type_id)
    given = ""
    if authorization is not None and authorization.startswith("ApplePass "):
        given = authorization[len("ApplePass ") :].strip()
    row = None
    if SERIAL_RE.fullmatch(serial):  # never send NUL or other junk to the database
        row = current_in_wallet(session, serial)
    expected = row.apple_auth_token if row is not None else "x" * 32
    matches = hmac.compare_digest(given.encode(), expected.encode())
    if row is None or not given or not matches:
        raise AppleAuthError("the pass's authentication token is missing or wrong")
    return row


def current_in_wallet(session: Session, wallet_serial: str) -> PassRow | None:
    """The pass a wallet's serial stands for now: the newest renewal under it, or itself."""
    return session.scalars(
        select(PassRow)
        .where(or_(PassRow.serial == wallet_serial, PassRow.wallet_serial == wallet_serial))
        .order_by(PassRow.id.desc())
        .limit(1)
    ).first()


def latest_pass(
    session: Session,
    services: Services,
    *,
    pass_type_id: str,
    serial: str,
    authorization: str | None,
) -> WalletPass:
    """The current version of a pass, for the device that holds its token."""
    row = authenticate(
        session,
        services,
        pass_type_id=pass_type_id,
        serial=serial,
        authorization=authorization,
    )
    return wallets.wallet_pass(services, row)


def register_device(
    session: Session,
    services: Services,
    *,
    device_id: str,
    pass_type_id: str,
    serial: str,
    authorization: str | None,
    push_token: object,
    now: datetime,
) -> bool:
    """Register a device for pushes about a pass; True if new, False if already there."""
    row = authenticate(
        session, services, pass_type_id=pass_type_id, serial=serial, authorization=authorization
    )
    _check_device(device_id)
    try:  # the same rule the APNs client applies, so a stored token can always be pushed to
        push_token = validate_device_token(push_token)  # type: ignore[arg-type]
    except InputError:
        raise InputError(
            "pushToken must be the device's hexadecimal push token", field="pushToken"
        ) from None
    existing = session.scalars(
        select(AppleRegistrationRow).where(
            AppleRegistrationRow.device_id == device_id, AppleRegistrationRow.pass_id == row.id
        )
    ).first()
    if existing is not None:
        existing.push_token = push_token  # a restored device may come back with a new token
        return False
    try:
        with session.begin_nested():
            session.add(
                AppleRegistrationRow(
                    device_id=device_id, push_token=push_token, pass_id=row.id, created_at=now
                )
            )
    except IntegrityError:  # the same device registered twice at once
        return False
    return True


def unregister_device(
    session: Session,
    services: Services,
    *,
    device_id: str,
    pass_type_id: str,
    serial: str,
    authorization: str | None,
) -> None:
    row = authenticate(
        session, services, pass_type_id=pass_type_id, serial=serial, authorization=authorization
    )
    session.execute(
        delete(AppleRegistrationRow).where(
            AppleRegistrationRow.device_id == _check_device(device_id),
            AppleRegistrationRow.pass_id == row.id,
        )
    )


@dataclass(frozen=True)
class Updates:
    serials: list[str]
    last_updated: str


def updated_serials(
    session: Session,
    services: Services,
    *,
    device_id: str,
    pass_type_id: str,
    since: str | None,
) -> Updates | None:
    """The device's passes that changed after tag ``since``; None if there are none.

    ``lastUpdated`` is a string, as Apple requires: the highest update tag
    among the device's passes (or the one given, if nothing is newer).
    """
    _check_device(device_id)
    if pass_type_id != services.settings.apple_pass_type_id:
        return None
    if since is not None and since != "" and not _TAG_RE.fullmatch(since):
        raise InputError("passesUpdatedSince must be a tag this service gave out", field="tag")
    after = int(since) if since else -1
    registered = (
        select(func.coalesce(PassRow.wallet_serial, PassRow.serial), PassRow.update_tag)
        .join(AppleRegistrationRow, AppleRegistrationRow.pass_id == PassRow.id)
        .where(AppleRegistrationRow.device_id == device_id)
    )
    changed = session.execute(registered.where(PassRow.update_tag > after)).all()
    if not changed:
        return None
    newest = max(tag for _, tag in changed)
    return Updates(serials=sorted(serial for serial, _ in changed), last_updated=str(newest))


def record_log(session: Session, messages: object, *, now: datetime) -> int:
    """Store what devices report about failed updates (capped and cleaned)."""
    if not isinstance(messages, list) or not all(isinstance(m, str) for m in messages):
        raise InputError("logs must be a list of strings", field="logs")
    kept = messages[:MAX_LOG_MESSAGES]
    for message in kept:
        text = "".join(c if c.isprintable() else " " for c in message[:MAX_LOG_MESSAGE_LENGTH])
        session.add(AppleDeviceLogRow(at=now, message=text))
    return len(kept)


KEEP_DEVICE_LOGS = timedelta(days=30)


def prune_logs(session: Session, *, now: datetime) -> int:
    """Device logs help debugging for a while; then they go."""
    old = delete(AppleDeviceLogRow).where(AppleDeviceLogRow.at < now - KEEP_DEVICE_LOGS)
    return session.execute(old).rowcount or 0  # type: ignore[attr-defined]
