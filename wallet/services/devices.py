"""Staff devices: a phone running the scanner, paired once from the console.

Pairing: a signed-in member of staff names the phone; the console shows a
one-time pairing code as a QR for ``PAIRING_LIFETIME``. The app sends the code
back once and receives its device credential, which it alone keeps. Both
secrets are stored only as SHA-256, like API tokens. A revoked device's
credential is refused from then on, so it can no longer sync.

Whoever pairs a device can give it no role above their own.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from wallet.auditkey import AuditKey
from wallet.domain import (
    MAX_DEVICE_NAME_LENGTH,
    PAIRING_LIFETIME,
    Device,
    DeviceState,
    Role,
    device_zones,
)
from wallet.errors import InputError, NotFoundError, StateConflictError
from wallet.services import audit, plate_index
from wallet.store.models import DeviceRow

PAIRING_PREFIX = "wpp_"
CREDENTIAL_PREFIX = "wpd_"
MAX_SECRET_LENGTH = 200
LAST_SYNC_STEP = timedelta(minutes=1)
_RANK = {Role.VERIFIER: 0, Role.ISSUER: 1, Role.ADMIN: 2}
_DEVICE_ID_RE = re.compile(r"dev_[A-Za-z0-9_-]{8,12}")
# Names are shown in the console and the audit log: printable text, no controls.
_NAME_BAD_RE = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


@dataclass(frozen=True)
class NewPairing:
    """A device waiting for its phone, and the one-time code the console shows."""

    device: Device
    code: str  # shown once as a QR, never stored


@dataclass(frozen=True)
class PairedDevice:
    """A device that has just been paired, and the credential only the phone keeps."""

    device: Device
    credential: str  # handed to the device once, never stored


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _device(row: DeviceRow) -> Device:
    return Device(
        device_id=row.device_id,
        name=row.name,
        role=Role(row.role),
        state=DeviceState(row.state),
        created_by=row.created_by,
        created_at=row.created_at,
        pairing_expires_at=row.pairing_expires_at,
        paired_at=row.paired_at,
        last_sync_at=row.last_sync_at,
        revoked_at=row.revoked_at,
        zones=tuple(z for z in row.zones.split(",") if z),
    )


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InputError("give the device a name, e.g. 'Handy Außendienst 3'", field="name")
    name = name.strip()
    if len(name) > MAX_DEVICE_NAME_LENGTH or _NAME_BAD_RE.search(name):
        raise InputError(
            f"the device name must be one line of at most {MAX_DEVICE_NAME_LENGTH} characters",
            field="name",
        )
    return name


def _check_role(role: object, actor_role: Role) -> Role:
    try:
        chosen = Role(str(role))
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise InputError(f"role must be one of {roles}", field="role") from None
    if _RANK[chosen] > _RANK[actor_role]:
        raise InputError(
            f"a {actor_role.value} can pair devices with their own role or a lower one",
            field="role",
        )
    return chosen


def start_pairing(
    session: Session,
    *,
    name: object,
    role: object,
    actor: str,
    actor_role: Role,
    audit_key: AuditKey,
    now: datetime,
    zones: object = "",
) -> NewPairing:
    """A pending device and its pairing code, valid once for ``PAIRING_LIFETIME``.

    ``zones`` (``"12, 13"``) limits its offline plate index to the zones its officer
    works in, so a lost phone holds a district's permits, not the city's.
    """
    code = PAIRING_PREFIX + secrets.token_urlsafe(24)
    row = DeviceRow(
        device_id="dev_" + secrets.token_urlsafe(8),
        name=_check_name(name),
        role=_check_role(role, actor_role).value,
        state=DeviceState.PENDING.value,
        created_by=actor,
        created_at=now,
        pairing_hash=_hash(code),
        pairing_expires_at=now + PAIRING_LIFETIME,
        zones=",".join(device_zones(zones)),
    )
    session.add(row)
    session.flush()
    details = {"role": row.role, "zones": row.zones}
    audit.record(session, key=audit_key, actor=actor, action="device.pairing_started",
                 target=f"device:{row.device_id}", details=details, now=now)  # fmt: skip
    return NewPairing(device=_device(row), code=code)


def complete_pairing(
    session: Session, *, code: object, audit_key: AuditKey, now: datetime
) -> PairedDevice:
    """Exchange a pairing code for the device credential; the code works once.

    Unknown, used and expired codes get the same answer, so a guess learns nothing.
    """
    refused = InputError(
        "this pairing code is unknown, used or expired; show a new pairing QR in the console",
        field="code",
    )
    if not isinstance(code, str) or not code.startswith(PAIRING_PREFIX):
        raise refused
    if len(code) > MAX_SECRET_LENGTH:
        raise refused
    row = session.scalars(select(DeviceRow).where(DeviceRow.pairing_hash == _hash(code))).first()
    if row is None or row.state != DeviceState.PENDING.value:
        raise refused
    if row.pairing_expires_at is None or now >= row.pairing_expires_at:
        raise refused
    credential = CREDENTIAL_PREFIX + secrets.token_urlsafe(32)
    row.pairing_hash = None  # single use: the code is gone with this transaction
    row.credential_hash = _hash(credential)
    row.state = DeviceState.ACTIVE.value
    row.paired_at = row.last_sync_at = now
    audit.record(session, key=audit_key, actor=f"device:{row.device_id}", action="device.paired",
                 target=f"device:{row.device_id}", now=now)  # fmt: skip
    return PairedDevice(device=_device(row), credential=credential)


def authenticate_device(session: Session, credential: object, *, now: datetime) -> Device | None:
    """The active device holding ``credential`` (its last sync set to now), or None.

    The last sync is written at most once a minute: a device checking plates asks many
    times a minute, and the console shows minutes.
    """
    if not isinstance(credential, str) or not credential.startswith(CREDENTIAL_PREFIX):
        return None
    if len(credential) > MAX_SECRET_LENGTH:
        return None
    row = session.scalars(
        select(DeviceRow).where(DeviceRow.credential_hash == _hash(credential))
    ).first()
    if row is None or row.state != DeviceState.ACTIVE.value:
        return None
    if row.last_sync_at is None or abs(now - row.last_sync_at) >= LAST_SYNC_STEP:
        row.last_sync_at = now
    return _device(row)


def device_state_for(session: Session, credential: object) -> DeviceState | None:
    """Why a credential failed: revoked (tell the officer) or unknown (None)."""
    if not isinstance(credential, str) or len(credential) > MAX_SECRET_LENGTH:
        return None
    row = session.scalars(
        select(DeviceRow).where(DeviceRow.credential_hash == _hash(credential))
    ).first()
    return None if row is None else DeviceState(row.state)


def list_devices(session: Session) -> list[Device]:
    rows = session.scalars(select(DeviceRow).order_by(DeviceRow.created_at.desc(), DeviceRow.id))
    return [_device(row) for row in rows]


def get_device(session: Session, device_id: str) -> Device:
    return _device(_row(session, device_id))


def _row(session: Session, device_id: str) -> DeviceRow:
    row = None
    if isinstance(device_id, str) and _DEVICE_ID_RE.fullmatch(device_id):
        row = session.scalars(select(DeviceRow).where(DeviceRow.device_id == device_id)).first()
    if row is None:
        raise NotFoundError(f"no device with the id {device_id[:20]!r}")
    return row


def revoke_device(
    session: Session,
    *,
    device_id: str,
    actor: str,
    audit_key: AuditKey,
    now: datetime,
) -> Device:
    """Revoke a device (or cancel a pairing): its credential and code stop working at once."""
    row = _row(session, device_id)
    if row.state == DeviceState.REVOKED.value:
        raise StateConflictError(f"device {device_id} is revoked already")
    row.state = DeviceState.REVOKED.value
    row.revoked_at = now
    row.pairing_hash = None
    plate_index.retire_keys(session)
    audit.record(session, key=audit_key, actor=actor, action="device.revoke",
                 target=f"device:{device_id}", now=now)  # fmt: skip
    return _device(row)
