"""The append-only audit log: every entry carries the hash of the one before it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from wallet.store.db import lock_audit_chain
from wallet.store.models import AuditEntryRow, Base

GENESIS = "0" * 64
_log = Base.metadata.tables["audit_log"]
_LAST_HASH = select(_log.c.hash).order_by(_log.c.id.desc()).limit(1)
_INSERT_ENTRY = insert(_log).returning(_log.c.id)


def entry_hash(
    *,
    prev_hash: str,
    at: datetime,
    actor: str,
    action: str,
    target: str | None,
    details: Mapping[str, Any],
) -> str:
    """SHA-256 over the previous hash and a canonical JSON of the entry."""
    body = json.dumps(
        {
            "prev": prev_hash,
            "at": at.isoformat(timespec="microseconds"),
            "actor": actor,
            "action": action,
            "target": target,
            "details": details,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    target: str | None = None,
    details: Mapping[str, Any] | None = None,
    now: datetime,
) -> AuditEntryRow:
    """Append one entry in the caller's transaction: it commits or vanishes with it."""
    lock_audit_chain(session)
    connection = session.connection()
    prev = connection.execute(_LAST_HASH).scalar()
    prev_hash = prev or GENESIS
    data = dict(details or {})
    digest = entry_hash(
        prev_hash=prev_hash, at=now, actor=actor, action=action, target=target, details=data
    )
    values = {
        "at": now,
        "actor": actor,
        "action": action,
        "target": target,
        "details": data,
        "prev_hash": prev_hash,
        "hash": digest,
    }
    entry_id = connection.execute(_INSERT_ENTRY, values).scalar_one()
    return AuditEntryRow(id=entry_id, **values)


@dataclass(frozen=True)
class ChainReport:
    entries: int
    first_broken: int | None
    problem: str = ""

    @property
    def intact(self) -> bool:
        return self.first_broken is None


def verify_chain(session: Session, *, batch: int = 1000) -> ChainReport:
    """Walk the whole chain and name the first entry that does not fit."""
    prev_hash = GENESIS
    count = 0
    last_id = 0
    while True:
        rows = session.scalars(
            select(AuditEntryRow)
            .where(AuditEntryRow.id > last_id)
            .order_by(AuditEntryRow.id)
            .limit(batch)
        ).all()
        if not rows:
            return ChainReport(entries=count, first_broken=None)
        for row in rows:
            count += 1
            if row.prev_hash != prev_hash:
                return ChainReport(
                    count, row.id, "its prev_hash is not the hash of the entry before"
                )
            expected = entry_hash(
                prev_hash=row.prev_hash,
                at=row.at,
                actor=row.actor,
                action=row.action,
                target=row.target,
                details=row.details,
            )
            if row.hash != expected:
                return ChainReport(count, row.id, "its content does not match its hash")
            prev_hash = row.hash
            last_id = row.id


def trail(session: Session, target: str, *, limit: int = 200) -> list[AuditEntryRow]:
    """The entries about one pass (or user, token …), newest first."""
    return list(
        session.scalars(
            select(AuditEntryRow)
            .where(AuditEntryRow.target == target)
            .order_by(AuditEntryRow.id.desc())
            .limit(limit)
        )
    )
