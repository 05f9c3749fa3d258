"""Serving the offline plate index (wallet.plateindex) to paired devices.

The index is built from the live permits of the types checked by plate, kept
signed in the database with its HMAC key sealed (AES-GCM under the audit seal
key: a database dump alone does not hold it), and rebuilt with a new key when
permits changed or it is half its lifetime old. A new key each time means an
index on a lost or revoked phone is worth nothing once it expires, and no older
key is ever handed out again.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, func, select
from sqlalchemy.orm import Session

from wallet.passtypes import split_enforcement_value
from wallet.plateindex import Permit, sign_index
from wallet.services.context import Services
from wallet.services.publishing import next_counter
from wallet.services.sealing import seal, unseal
from wallet.store.db import Serialised, serialise
from wallet.store.models import EnforcementKeyRow, PassRow, PlateIndexRow

INDEX_LIFETIME = timedelta(hours=24)  # a device offline longer is told its data is stale
_SEAL_AAD = b"wallet plate index key v1"


@dataclass(frozen=True)
class ServedIndex:
    token: str
    key: bytes
    version: int
    expires_at: datetime


def current_index(
    session: Session, services: Services, *, zones: tuple[str, ...] = (), now: datetime
) -> ServedIndex:
    """The index of ``zones`` (every zone if none) to hand out now, rebuilt with a new
    key if permits changed or it aged."""
    scope = ",".join(zones)
    # One builder at a time, before any row lock: one that found no row of its scope
    # and took the counter, then met the row another had made and a third had locked
    # while waiting for the counter, deadlocked (as the first bundle did).
    serialise(session, Serialised.PLATE_INDEX)
    fingerprint = _fingerprint(session, services)
    row = session.scalars(
        select(PlateIndexRow)
        .where(PlateIndexRow.scope == scope)
        .execution_options(populate_existing=True)
    ).first()
    if (
        row is not None
        and row.fingerprint == fingerprint
        and now < row.issued_at + INDEX_LIFETIME / 2
    ):
        key = unseal(services.audit_key, row.sealed_key, aad=_SEAL_AAD, what="the plate index key")
        return ServedIndex(row.token, key, row.version, row.expires_at)
    key = os.urandom(32)
    version = next_counter(session, "plate_index")
    expires_at = now + INDEX_LIFETIME
    permits = _permits(session, services)
    token = sign_index(
        [p for p in permits if not zones or p.zone in zones],
        key=key,
        issuer=services.settings.issuer,
        version=version,
        issued_at=now,
        expires_at=expires_at,
        root=services.keys.root_key(now=now),
    )
    sealed = seal(services.audit_key, key, aad=_SEAL_AAD)
    values = {
        "version": version, "fingerprint": fingerprint, "token": token,
        "sealed_key": sealed, "issued_at": now, "expires_at": expires_at,
    }  # fmt: skip
    if row is None:
        session.add(PlateIndexRow(scope=scope, **values))
    else:
        for name, value in values.items():
            setattr(row, name, value)
    session.flush()
    return ServedIndex(token, key, version, expires_at)


def retire_keys(session: Session) -> None:
    """Forget every index and its key (a device was revoked): the next sync of any
    device builds a new index under a new key, so no key a lost phone holds is handed
    out again."""
    session.execute(delete(PlateIndexRow))


def _enforced(services: Services) -> list[str]:
    return [t.id for t in services.pass_types.values() if t.enforcement_plate]


def _live(services: Services) -> Select[Any]:
    """The live permits' plates: a key row exists exactly while its permit is live, one
    per plate (models.EnforcementKeyRow)."""
    return (
        select(EnforcementKeyRow.value)
        .join_from(EnforcementKeyRow, PassRow, EnforcementKeyRow.pass_id == PassRow.id)
        .where(PassRow.pass_type.in_(_enforced(services)))
    )


def _fingerprint(session: Session, services: Services) -> str:
    """Changes whenever a permit is issued (a pass id above all before), changes state
    (its update tag, from a counter that only grows) or lets go of its plates (revoked
    or renewed: fewer keys, or a successor's higher id)."""
    live = _live(services).with_only_columns(
        func.count(EnforcementKeyRow.id), func.max(PassRow.id), func.max(PassRow.update_tag)
    )
    count, newest, tag = session.execute(live).one()
    return hashlib.sha256(f"{count}:{newest}:{tag}".encode()).hexdigest()


def _permits(session: Session, services: Services) -> list[Permit]:
    """One entry per plate: a permit with two plates is found by either, offline too."""
    rows = session.execute(
        _live(services).add_columns(PassRow.state, PassRow.valid_until, PassRow.valid_from)
    ).all()
    return [
        Permit(*split_enforcement_value(key), state=state, valid_until=until, valid_from=start)
        for key, state, until, start in rows
    ]
