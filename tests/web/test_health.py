"""/healthz and /readyz, as HAProxy and the city's monitoring ask them (issue 12, section 3)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

from tests.database import head_revision
from tests.factories import NOW
from wallet.services import health
from wallet.store.db import Database
from wallet.store.models import OutboxRow


def beat(db: Database, at: object = NOW) -> None:
    with db.transaction(write=True) as session:
        health.beat(session, "node-a:4711", now=at)  # type: ignore[arg-type]


def ready(client: FlaskClient) -> tuple[int, dict[str, str]]:
    answer = client.get("/readyz")
    assert answer.headers["Cache-Control"] == "no-store"
    return answer.status_code, answer.get_json()["checks"]


def test_a_live_process_answers_healthz(client: FlaskClient) -> None:
    answer = client.get("/healthz")
    assert answer.status_code == 200 and answer.get_json() == {"status": "alive"}


def test_a_node_with_a_fresh_worker_heartbeat_is_ready(client: FlaskClient, db: Database) -> None:
    beat(db, NOW - timedelta(seconds=5))
    status, checks = ready(client)
    assert status == 200
    assert checks == {"database": "ok", "keys": "ok", "worker": "ok", "outbox": "ok"}


@pytest.mark.parametrize("age", [None, health.BEAT_FRESH + timedelta(seconds=1)])
def test_without_a_running_outbox_worker_the_node_is_not_ready_and_says_why(
    client: FlaskClient, db: Database, age: timedelta | None
) -> None:
    if age is not None:
        beat(db, NOW - age)
    status, checks = ready(client)
    assert status == 503 and "worker" in checks["worker"]
    assert checks["database"] == "ok"  # the other checks still ran


def test_a_stuck_outbox_makes_the_node_not_ready(client: FlaskClient, db: Database) -> None:
    beat(db)
    waiting = NOW - health.OUTBOX_OLDEST_LIMIT - timedelta(minutes=1)
    with db.transaction(write=True) as session:
        session.add(OutboxRow(kind="apns", payload={}, next_attempt_at=waiting, created_at=waiting))
    status, checks = ready(client)
    assert status == 503 and checks["outbox"].startswith("a delivery has waited since")


def test_a_database_behind_this_codes_schema_is_not_ready(
    client: FlaskClient, db: Database
) -> None:
    beat(db)
    set_revision(db, "0001")
    try:
        status, checks = ready(client)
    finally:  # PostgreSQL's test database is shared by the session's later tests
        set_revision(db, head_revision())
    assert status == 503 and "run `wallet db upgrade`" in checks["database"]
    assert checks["worker"].startswith("unknown")


def set_revision(db: Database, revision: str) -> None:
    with db.transaction(write=True) as session:
        session.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})


def test_the_worker_leaves_a_heartbeat_each_round(db: Database) -> None:
    with db.transaction(write=True) as session:
        health.beat(session, health.worker_name(), now=NOW)
        health.beat(session, health.worker_name(), now=NOW + timedelta(seconds=10))
    with db.transaction(write=False) as session:
        rows = session.execute(text("SELECT worker, beat_at FROM worker_heartbeats")).all()
    assert len(rows) == 1 and rows[0][0] == health.worker_name()


def test_a_node_whose_database_stops_answering_is_not_ready(
    client: FlaskClient, db: Database
) -> None:
    """PostgreSQL refuses this database's connections (as when it is stopped)."""
    if db.is_sqlite:
        pytest.skip("an embedded SQLite file cannot stop answering on its own")
    beat(db)
    assert ready(client)[0] == 200
    name = db.engine.url.database
    admin = create_engine(db.engine.url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
        status, checks = ready(client)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()
        db.engine.dispose()  # the pool's connections were ended
    assert status == 503 and checks["database"] != "ok"
    assert checks["worker"].startswith("unknown")
