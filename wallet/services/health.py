"""Is this instance alive, and ready for traffic? (issue 12, section 3)

Liveness is the process answering at all. Readiness is what a load balancer and
the city's monitoring need before sending requests here: the database answers
and has the schema this code expects, the signing keys are loaded, an outbox
worker finished a round recently (else revocations reach no wallet), and the
outbox is not piling up. Each check says only ok or why not: no counts of
holders, no names.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from wallet.services.context import Services
from wallet.store.db import Database, head_revision
from wallet.store.models import OutboxRow, WorkerHeartbeatRow

BEAT_EVERY = timedelta(seconds=10)  # a worker writes its heartbeat at most this often
BEAT_FRESH = timedelta(seconds=60)  # older than this: no worker is running
OUTBOX_BACKLOG_LIMIT = 10_000  # due deliveries: more means the workers cannot keep up
OUTBOX_OLDEST_LIMIT = timedelta(minutes=15)  # a due delivery waiting this long: stuck


def worker_name() -> str:
    """This worker's name in the heartbeat table: host and process."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}"


def beat(session: Session, worker: str, *, now: datetime) -> None:
    """Record that ``worker`` finished a round at ``now`` (one upsert)."""
    table = WorkerHeartbeatRow.__table__
    dialect = postgresql if session.connection().dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(table)
        .values(worker=worker, beat_at=now)
        .on_conflict_do_update(index_elements=["worker"], set_={"beat_at": now})
    )
    session.execute(statement)


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, str] = field(default_factory=dict)  # name -> "ok" or why not

    @property
    def ready(self) -> bool:
        return all(result == "ok" for result in self.checks.values())

    def to_json(self) -> dict[str, object]:
        return {"status": "ready" if self.ready else "not_ready", "checks": self.checks}


def readiness(db: Database, services: Services, *, now: datetime) -> Readiness:
    """Every check, each on its own: one failing says which, the others still run."""
    checks = {"database": _schema(db), "keys": _keys(services, now)}
    if checks["database"] != "ok":
        return Readiness({**checks, "worker": "unknown: no database", "outbox": "unknown"})
    try:
        with db.transaction(write=False) as session:
            checks["worker"] = _worker(session, now)
            checks["outbox"] = _outbox(session, now)
    except SQLAlchemyError as exc:
        checks["worker"] = checks["outbox"] = f"database error ({type(exc).__name__})"
    return Readiness(checks)


def _schema(db: Database) -> str:
    try:
        revision = db.current_revision()
    except SQLAlchemyError as exc:
        return f"not reachable ({type(exc).__name__})"
    head = head_revision()
    if revision is None:
        return "not reachable or no schema: run `wallet db upgrade`"
    if revision != head:
        return f"schema at {revision}, this code needs {head}: run `wallet db upgrade`"
    return "ok"


def _keys(services: Services, now: datetime) -> str:
    try:
        services.keys.root_key(now=now)
        for type_id in services.pass_types:
            services.keys.current_signing_key(type_id, now=now)
    except Exception as exc:  # any failure to load a key makes the node unfit to issue
        return f"signing keys not usable ({type(exc).__name__})"
    return "ok"


def _worker(session: Session, now: datetime) -> str:
    newest = session.scalar(select(func.max(WorkerHeartbeatRow.beat_at)))
    if newest is None:
        return "no outbox worker has run: start `wallet worker`"
    if now - newest > BEAT_FRESH:
        return f"no outbox worker since {newest.isoformat(timespec='seconds')}"
    return "ok"


def _outbox(session: Session, now: datetime) -> str:
    due, oldest = session.execute(
        select(func.count(), func.min(OutboxRow.next_attempt_at)).where(
            OutboxRow.state == "pending", OutboxRow.next_attempt_at <= now
        )
    ).one()
    if due > OUTBOX_BACKLOG_LIMIT:
        return f"{due} deliveries due, more than {OUTBOX_BACKLOG_LIMIT}"
    if oldest is not None and now - oldest > OUTBOX_OLDEST_LIMIT:
        return f"a delivery has waited since {oldest.isoformat(timespec='seconds')}"
    return "ok"
