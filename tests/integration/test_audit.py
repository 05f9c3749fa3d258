"""The audit log: entries written without a lock, sealed into a hash chain later."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import select, text

from tests.concurrency import run_together
from tests.factories import NOW
from wallet.services import audit
from wallet.store.db import Database
from wallet.store.models import AuditEntryRow


def record(db: Database, n: int = 1, action: str = "test.thing") -> None:
    with db.transaction(write=True) as session:
        for i in range(n):
            audit.record(
                session, actor="admin:test", action=action, target=f"t{i}", details={"i": i},
                now=NOW,
            )  # fmt: skip


def seal(db: Database) -> int:
    return audit.seal_all(lambda: db.transaction(write=True))


def verify(db: Database) -> audit.ChainReport:
    with db.transaction(write=False) as session:
        return audit.verify_chain(session)


def ids(db: Database) -> list[int]:
    with db.transaction(write=False) as session:
        return list(session.scalars(select(AuditEntryRow.id).order_by(AuditEntryRow.id)))


def sql(db: Database, statement: str, **params: object) -> None:
    with db.engine.begin() as conn:
        conn.execute(text(statement), params)


def test_entries_are_sealed_once_in_order(db: Database) -> None:
    record(db, 3)
    before = verify(db)
    assert (before.intact, before.entries, before.unsealed) == (True, 3, 3)
    assert seal(db) == 3
    assert seal(db) == 0  # nothing is sealed twice
    record(db, 2)
    assert seal(db) == 2
    after = verify(db)
    assert (after.intact, after.entries, after.unsealed) == (True, 5, 0)
    with db.transaction(write=False) as session:
        rows = session.scalars(select(AuditEntryRow).order_by(AuditEntryRow.seq)).all()
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))


def test_sealing_works_in_batches(db: Database) -> None:
    record(db, 7)
    with db.transaction(write=True) as session:
        assert audit.seal(session, limit=3) == 3
    with db.transaction(write=True) as session:
        assert audit.seal(session, limit=3) == 3
    assert seal(db) == 1
    assert verify(db).intact


def test_rewriting_a_sealed_entry_is_named(db: Database) -> None:
    record(db, 3)
    seal(db)
    second = ids(db)[1]
    sql(db, "UPDATE audit_log SET actor = 'mallory' WHERE id = :id", id=second)
    report = verify(db)
    assert (report.intact, report.first_broken) == (False, second)
    assert "content" in report.problem


def test_rewriting_a_sealed_entry_with_a_fresh_content_hash_breaks_the_chain(
    db: Database,
) -> None:
    record(db, 3)
    seal(db)
    second = ids(db)[1]
    with db.transaction(write=False) as session:
        row = session.get(AuditEntryRow, second)
        assert row is not None
        forged = audit.content_hash(
            at=row.at, actor="mallory", action=row.action, target=row.target, details=row.details
        )
    sql(
        db, "UPDATE audit_log SET actor = 'mallory', content_hash = :h WHERE id = :id",
        h=forged, id=second,
    )  # fmt: skip
    report = verify(db)
    assert (report.intact, report.first_broken) == (False, second)
    assert "chain hash" in report.problem


def test_deleting_a_sealed_entry_is_named(db: Database) -> None:
    record(db, 4)
    seal(db)
    _, second, third, _ = ids(db)
    sql(db, "DELETE FROM audit_log WHERE id = :id", id=second)
    report = verify(db)
    assert (report.intact, report.first_broken) == (False, third)
    assert "gone" in report.problem


def test_swapping_the_order_of_sealed_entries_is_named(db: Database) -> None:
    record(db, 3)
    seal(db)
    first, second, _ = ids(db)
    sql(db, "UPDATE audit_log SET seq = -1 WHERE id = :id", id=first)
    sql(db, "UPDATE audit_log SET seq = 1 WHERE id = :id", id=second)
    sql(db, "UPDATE audit_log SET seq = 2 WHERE id = :id", id=first)
    report = verify(db)
    assert (report.intact, report.first_broken) == (False, second)


def test_rewriting_an_entry_not_yet_sealed_is_named(db: Database) -> None:
    record(db, 2)
    seal(db)
    record(db, 2)
    third = ids(db)[2]
    sql(db, "UPDATE audit_log SET details = :d WHERE id = :id", d='{"i": 99}', id=third)
    report = verify(db)
    assert (report.intact, report.first_broken, report.unsealed) == (False, third, 1)


def test_a_rolled_back_change_leaves_no_entry(db: Database) -> None:
    with pytest.raises(RuntimeError), db.transaction(write=True) as session:
        audit.record(session, actor="admin:test", action="test.thing", now=NOW)
        raise RuntimeError("the change failed")
    assert ids(db) == []


def test_an_entry_committed_after_a_seal_is_sealed_in_the_next_round(db: Database) -> None:
    if db.is_sqlite:
        pytest.skip("SQLite runs one writer at a time; the late commit cannot happen there")
    record(db, 1)
    with db.transaction(write=True) as slow:
        audit.record(slow, actor="admin:slow", action="test.late", now=NOW)
        record(db, 1)  # commits while the slow transaction is still open
        assert seal(db) == 2  # the slow entry is not visible yet
    assert seal(db) == 1
    report = verify(db)
    assert (report.intact, report.entries, report.unsealed) == (True, 3, 0)
    with db.transaction(write=False) as session:
        late = session.scalars(select(AuditEntryRow).where(AuditEntryRow.action == "test.late"))
        assert late.one().seq == 3  # the chain order is the sealing order


def test_concurrent_writers_and_sealers_never_fork_the_chain(db: Database) -> None:
    def work() -> None:
        for _ in range(5):
            record(db, 2)
            seal(db)

    run_together(work, threads=4)
    seal(db)
    report = verify(db)
    assert (report.intact, report.entries, report.unsealed) == (True, 40, 0)
