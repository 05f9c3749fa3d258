"""The append-only audit log, a hash chain sealed in batches.

An entry is written in the transaction of the change it records, with only the
hash of its own content: no lock, no read, so concurrent issuers do not queue
behind each other's commits (on PostgreSQL the old design held a lock across
the WAL flush and capped issuance at about 150-300/s). The sealer (run by
``wallet worker`` every second and by ``wallet audit verify`` before checking)
then gives committed entries consecutive numbers and the hash that links each
to the one before. A sealed entry cannot be changed, removed or reordered
without ``verify_chain`` naming it; an entry not sealed yet is covered only by
its content hash, which is why sealing runs often.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from wallet.store.db import lock_audit_chain
from wallet.store.models import AuditEntryRow, Base

GENESIS = "0" * 64
_log = Base.metadata.tables["audit_log"]
INSERT_ENTRY = insert(_log).returning(_log.c.id)
_LAST_SEALED = (
    select(_log.c.seq, _log.c.hash).where(_log.c.seq.is_not(None)).order_by(_log.c.seq.desc())
).limit(1)
_UNSEALED = select(_log.c.id, _log.c.content_hash).where(_log.c.seq.is_(None)).order_by(_log.c.id)
_SEAL = (
    update(_log)
    .where(_log.c.id == bindparam("entry_id"), _log.c.seq.is_(None))
    .values(seq=bindparam("seq"), prev_hash=bindparam("prev"), hash=bindparam("link"))
)


def content_hash(
    *, at: datetime, actor: str, action: str, target: str | None, details: Mapping[str, Any]
) -> str:
    """SHA-256 over a canonical JSON of what the entry says."""
    body = json.dumps(
        {
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


def link_hash(*, prev_hash: str, seq: int, content: str) -> str:
    """The chain hash of entry number ``seq``: it covers the one before and its content."""
    return hashlib.sha256(f"{prev_hash}:{seq}:{content}".encode("ascii")).hexdigest()


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    target: str | None = None,
    details: Mapping[str, Any] | None = None,
    now: datetime,
) -> AuditEntryRow:
    """Write one entry in the caller's transaction: it commits or vanishes with it.

    No lock and no read: concurrent transactions append without waiting for
    each other. :func:`seal` links committed entries into the chain soon after.
    """
    values = entry_values(actor=actor, action=action, target=target, details=details, now=now)
    entry_id = session.connection().execute(INSERT_ENTRY, values).scalar_one()
    return AuditEntryRow(id=entry_id, seq=None, prev_hash=None, hash=None, **values)


def entry_values(
    *,
    actor: str,
    action: str,
    target: str | None = None,
    details: Mapping[str, Any] | None = None,
    now: datetime,
) -> dict[str, Any]:
    """The columns of a new entry, for a caller that inserts it within a larger statement."""
    data = dict(details or {})
    return {
        "at": now,
        "actor": actor,
        "action": action,
        "target": target,
        "details": data,
        "content_hash": content_hash(
            at=now, actor=actor, action=action, target=target, details=data
        ),
    }


def seal(session: Session, *, limit: int = 5000) -> int:
    """Link up to ``limit`` committed, not yet sealed entries into the chain.

    Entries are sealed in the order they are seen; a transaction that commits
    late is sealed in a later round, so the chain order is the sealing order.
    Concurrent sealers queue on a lock; issuers never wait for it. Returns how
    many entries were sealed (the caller commits).
    """
    lock_audit_chain(session)
    connection = session.connection()
    last = connection.execute(_LAST_SEALED).first()
    seq, prev = (int(last.seq), str(last.hash)) if last is not None else (0, GENESIS)
    rows = connection.execute(_UNSEALED.limit(limit)).all()
    if not rows:
        return 0
    params = []
    for row in rows:
        seq += 1
        link = link_hash(prev_hash=prev, seq=seq, content=row.content_hash)
        params.append({"entry_id": row.id, "seq": seq, "prev": prev, "link": link})
        prev = link
    connection.execute(_SEAL, params)
    return len(params)


def seal_all(session_factory: Callable[[], AbstractContextManager[Session]]) -> int:
    """Seal everything committed so far, one transaction per batch."""
    total = 0
    while True:
        with session_factory() as session:
            sealed = seal(session)
        total += sealed
        if sealed == 0:
            return total


@dataclass(frozen=True)
class ChainReport:
    entries: int
    first_broken: int | None
    problem: str = ""
    unsealed: int = 0

    @property
    def intact(self) -> bool:
        return self.first_broken is None


def _content_matches(row: AuditEntryRow) -> bool:
    expected = content_hash(
        at=row.at, actor=row.actor, action=row.action, target=row.target, details=row.details
    )
    return row.content_hash == expected


def verify_chain(session: Session, *, batch: int = 1000) -> ChainReport:
    """Walk the sealed chain in order, then the entries not sealed yet.

    Names the first entry (by id) whose content no longer matches its hash,
    whose link does not follow from the entry before, or where entries are
    missing from the chain.
    """
    prev_hash = GENESIS
    count = 0
    last_seq = 0
    while True:
        rows = session.scalars(
            select(AuditEntryRow)
            .where(AuditEntryRow.seq > last_seq)
            .order_by(AuditEntryRow.seq)
            .limit(batch)
        ).all()
        if not rows:
            break
        for row in rows:
            count += 1
            seq = int(row.seq or 0)  # the query selects sealed entries only
            if not _content_matches(row):
                return ChainReport(count, row.id, "its content does not match its hash")
            if seq != last_seq + 1:
                return ChainReport(
                    count, row.id, f"entries {last_seq + 1} to {seq - 1} of the chain are gone"
                )
            if row.prev_hash != prev_hash:
                return ChainReport(
                    count, row.id, "its prev_hash is not the hash of the entry before"
                )
            link = link_hash(prev_hash=prev_hash, seq=seq, content=row.content_hash)
            if row.hash != link:
                return ChainReport(count, row.id, "its chain hash does not match")
            prev_hash = link
            last_seq = seq
    unsealed = 0
    last_id = 0
    while True:
        loose = session.scalars(
            select(AuditEntryRow)
            .where(AuditEntryRow.seq.is_(None), AuditEntryRow.id > last_id)
            .order_by(AuditEntryRow.id)
            .limit(batch)
        ).all()
        if not loose:
            return ChainReport(entries=count + unsealed, first_broken=None, unsealed=unsealed)
        for row in loose:
            unsealed += 1
            if not _content_matches(row) or row.prev_hash is not None or row.hash is not None:
                problem = "its content does not match its hash"
                return ChainReport(count + unsealed, row.id, problem, unsealed=unsealed)
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
