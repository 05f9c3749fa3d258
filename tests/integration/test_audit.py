"""The audit log: authenticated entries, sealed into a keyed chain, with signed checkpoints.

Each attack test plays someone who can write to the database but has not the
audit key, and checks that ``verify_chain`` names what they did.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

from tests.concurrency import run_together
from tests.factories import NOW
from wallet.auditkey import AuditKey, Checkpoint
from wallet.services import audit
from wallet.services.audit import Tampering
from wallet.store.db import Database
from wallet.store.models import AuditCheckpointRow, AuditEntryRow


@pytest.fixture(scope="module")
def key() -> AuditKey:
    return AuditKey.generate()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """The instance folder's checkpoint file."""
    return audit.checkpoint_path(tmp_path / "instance")


def record(db: Database, key: AuditKey, n: int = 1, action: str = "test.thing") -> None:
    with db.transaction(write=True) as session:
        for i in range(n):
            audit.record(
                session, key=key, actor="admin:test", action=action, target=f"t{i}",
                details={"i": i}, now=NOW,
            )  # fmt: skip


def seal(db: Database, key: AuditKey, outside: Path | None = None) -> int:
    report = audit.seal_all(
        lambda: db.transaction(write=True), key=key, checkpoint_file=outside, clock=lambda: NOW
    )
    return report.sealed


def verify(db: Database, key: AuditKey, outside: Path | None = None) -> audit.ChainReport:
    document = audit.read_checkpoint_file(outside) if outside is not None else None
    with db.transaction(write=False) as session:
        return audit.verify_chain(session, key=key, outside=document)


def entries(db: Database) -> list[AuditEntryRow]:
    with db.transaction(write=False) as session:
        return list(session.scalars(select(AuditEntryRow).order_by(AuditEntryRow.id)))


def ids(db: Database) -> list[int]:
    return [e.id for e in entries(db)]


def sql(db: Database, statement: str, **params: object) -> None:
    with db.engine.begin() as conn:
        conn.execute(text(statement), params)


def insert_row(db: Database, **values: object) -> int:
    """An audit row written straight into the database, as an attacker would."""
    content = {"at": NOW, "actor": "admin:mallory", "action": "pass.revoke", "target": "x"}
    content_hash = audit.content_hash(**content, details={})  # type: ignore[arg-type]
    row = {**content, "details": {}, "content_hash": content_hash, "mac": None, **values}
    with db.transaction(write=True) as session:
        entry = AuditEntryRow(**row)
        session.add(entry)
        session.flush()
        return entry.id


def test_entries_are_sealed_once_in_order(db: Database, key: AuditKey) -> None:
    record(db, key, 3)
    before = verify(db, key)
    assert (before.intact, before.entries, before.unsealed) == (True, 3, 3)
    assert seal(db, key) == 3
    assert seal(db, key) == 0  # nothing is sealed twice
    record(db, key, 2)
    assert seal(db, key) == 2
    after = verify(db, key)
    assert (after.intact, after.entries, after.unsealed) == (True, 5, 0)
    rows = sorted(entries(db), key=lambda r: r.seq or 0)
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
    assert all(r.mac == key.mac(r.content_hash) for r in rows)


def test_sealing_works_in_batches(db: Database, key: AuditKey) -> None:
    record(db, key, 7)
    with db.transaction(write=True) as session:
        assert audit.seal(session, key=key, now=NOW, limit=3).sealed == 3
    with db.transaction(write=True) as session:
        assert audit.seal(session, key=key, now=NOW, limit=3).sealed == 3
    assert seal(db, key) == 1
    assert verify(db, key).intact


def test_each_seal_leaves_a_signed_checkpoint_in_the_database_and_outside(
    db: Database, key: AuditKey, outside: Path
) -> None:
    record(db, key, 3)
    seal(db, key, outside)
    record(db, key, 2)
    seal(db, key, outside)
    head = max(entries(db), key=lambda r: r.seq or 0).hash
    kept = key.public.verify_checkpoint(json.loads(outside.read_text()))
    assert (kept.seq, kept.head, kept.at, kept.legacy) == (5, head, NOW, 0)
    with db.transaction(write=False) as session:
        rows = session.scalars(select(AuditCheckpointRow).order_by(AuditCheckpointRow.id)).all()
        assert [(r.seq, r.head) for r in rows][-1] == (5, head)
        assert [r.seq for r in rows] == [3, 5]
        assert audit.latest_checkpoint(session) == json.loads(outside.read_text())
    assert verify(db, key, outside).intact


def test_an_older_checkpoint_never_replaces_a_newer_one_outside(
    key: AuditKey, outside: Path
) -> None:
    newer = key.sign_checkpoint(Checkpoint(seq=9, head="a" * 64, at=NOW))
    older = key.sign_checkpoint(Checkpoint(seq=4, head="b" * 64, at=NOW))
    assert audit.write_checkpoint_file(outside, newer)
    assert not audit.write_checkpoint_file(outside, older)  # a slower sealer finishing late
    assert json.loads(outside.read_text())["seq"] == 9


def test_a_fresh_instance_without_an_outside_checkpoint_is_intact(
    db: Database, key: AuditKey, outside: Path
) -> None:
    assert not outside.exists()
    assert verify(db, key, outside).intact
    record(db, key, 1)
    assert verify(db, key, outside).intact


# -- changed ------------------------------------------------------------------


def test_rewriting_a_sealed_entry_is_named_changed(db: Database, key: AuditKey) -> None:
    record(db, key, 3)
    seal(db, key)
    second = ids(db)[1]
    sql(db, "UPDATE audit_log SET actor = 'mallory' WHERE id = :id", id=second)
    report = verify(db, key)
    assert (report.intact, report.first_broken) == (False, second)
    assert report.kinds == {Tampering.CHANGED}
    assert "content" in report.problem


def test_rewriting_a_sealed_entry_with_a_fresh_content_hash_is_named_changed(
    db: Database, key: AuditKey
) -> None:
    record(db, key, 3)
    seal(db, key)
    second = entries(db)[1]
    forged = audit.content_hash(
        at=second.at, actor="mallory", action=second.action, target=second.target,
        details=second.details,
    )  # fmt: skip
    sql(
        db, "UPDATE audit_log SET actor = 'mallory', content_hash = :h WHERE id = :id",
        h=forged, id=second.id,
    )  # fmt: skip
    report = verify(db, key)
    assert (report.intact, report.first_broken) == (False, second.id)
    assert report.kinds == {Tampering.CHANGED}
    assert "chain hash" in report.problem


def test_rewriting_an_entry_not_yet_sealed_is_named_and_never_sealed(
    db: Database, key: AuditKey
) -> None:
    record(db, key, 2)
    seal(db, key)
    record(db, key, 2)
    third, fourth = ids(db)[2:]
    sql(db, "UPDATE audit_log SET details = :d WHERE id = :id", d='{"i": 99}', id=third)
    report = verify(db, key)
    assert (report.intact, report.first_broken, report.unsealed) == (False, third, 2)
    assert report.kinds == {Tampering.CHANGED}
    assert seal(db, key) == 1  # the genuine fourth entry; the changed one is refused
    sealed = {e.id: e.seq for e in entries(db)}
    assert (sealed[third], sealed[fourth]) == (None, 3)


# -- forged -------------------------------------------------------------------


def test_row_inserted_straight_into_the_database_is_named_forged(
    db: Database, key: AuditKey, outside: Path
) -> None:
    record(db, key, 2)
    seal(db, key, outside)
    forged = insert_row(db)
    guessed = insert_row(db, mac=AuditKey.generate().mac("0" * 64))  # a MAC, but not ours
    record(db, key, 1)
    report = audit.seal_all(
        lambda: db.transaction(write=True), key=key, checkpoint_file=outside, clock=lambda: NOW
    )
    assert (report.sealed, report.refused) == (1, (forged, guessed))  # never sealed as genuine
    result = verify(db, key, outside)
    assert not result.intact
    assert [(p.kind, p.entry) for p in result.problems] == [
        (Tampering.FORGED, forged),
        (Tampering.FORGED, guessed),
    ]
    assert {e.id: e.seq for e in entries(db)}[forged] is None


def test_row_inserted_and_sealed_straight_into_the_database_is_named_forged(
    db: Database, key: AuditKey, outside: Path
) -> None:
    record(db, key, 2)
    seal(db, key, outside)
    last = max(entries(db), key=lambda r: r.seq or 0)
    content = audit.content_hash(
        at=NOW, actor="admin:mallory", action="pass.revoke", target="x", details={}
    )
    link = audit.link_hash(prev_hash=str(last.hash), seq=3, content=content)
    forged = insert_row(db, seq=3, prev_hash=last.hash, hash=link, mac="f" * 64)
    report = verify(db, key, outside)
    assert [(p.kind, p.entry) for p in report.problems] == [(Tampering.FORGED, forged)]


def test_a_checkpoint_signed_by_another_key_is_named_forged_and_stops_sealing(
    db: Database, key: AuditKey, outside: Path
) -> None:
    record(db, key, 2)
    seal(db, key, outside)
    mallory = AuditKey.generate()
    outside.write_text(json.dumps(mallory.sign_checkpoint(Checkpoint(seq=2, head="0", at=NOW))))
    record(db, key, 1)
    with pytest.raises(audit.AuditTamperedError) as raised:
        seal(db, key, outside)
    assert raised.value.kind is Tampering.FORGED
    report = verify(db, key, outside)
    assert report.kinds == {Tampering.FORGED}
    assert "kept outside the database" in report.problem


def test_a_checkpoint_row_rewritten_in_the_database_is_named_forged(
    db: Database, key: AuditKey
) -> None:
    record(db, key, 2)
    seal(db, key)
    sql(db, "UPDATE audit_checkpoints SET signed = :s", s="{not json")
    report = verify(db, key)
    assert report.kinds == {Tampering.FORGED} and "in the database is forged" in report.problem
    with pytest.raises(audit.AuditTamperedError):
        seal(db, key)


# -- removed ------------------------------------------------------------------


def test_deleting_a_sealed_entry_is_named_removed_in_the_middle(
    db: Database, key: AuditKey
) -> None:
    record(db, key, 4)
    seal(db, key)
    _, second, third, _ = ids(db)
    sql(db, "DELETE FROM audit_log WHERE id = :id", id=second)
    report = verify(db, key)
    assert (report.intact, report.first_broken) == (False, third)
    assert report.kinds == {Tampering.REMOVED_IN_THE_MIDDLE}
    assert "gone" in report.problem


def test_deleting_an_entry_and_renumbering_the_rest_is_named_removed_in_the_middle(
    db: Database, key: AuditKey
) -> None:
    record(db, key, 4)
    seal(db, key)
    _, second, third, fourth = ids(db)
    sql(db, "DELETE FROM audit_log WHERE id = :id", id=second)
    sql(db, "UPDATE audit_log SET seq = 2 WHERE id = :id", id=third)
    sql(db, "UPDATE audit_log SET seq = 3 WHERE id = :id", id=fourth)
    report = verify(db, key)
    assert (report.first_broken, report.kinds) == (third, {Tampering.REMOVED_IN_THE_MIDDLE})


def test_deleting_an_entry_and_recomputing_the_chain_after_it_is_named(
    db: Database, key: AuditKey, outside: Path
) -> None:
    record(db, key, 5)
    seal(db, key, outside)
    second, third = ids(db)[1:3]
    sql(db, "DELETE FROM audit_log WHERE id = :id", id=second)
    for seq in (3, 4, 5):  # one by one, upwards: seq is unique at every step
        sql(db, "UPDATE audit_log SET seq = :new WHERE seq = :old", new=seq - 1, old=seq)
    sql(db, "DELETE FROM audit_checkpoints")
    _recompute_from(db, 2, lambda p, s, c: audit.link_hash(prev_hash=p, seq=s, content=c))
    report = verify(db, key, outside)
    assert report.first_broken == third
    # Renumbered, the gap looks like a cut tail; the message says it may be either.
    assert report.kinds == {Tampering.RECOMPUTED_CHAIN, Tampering.REMOVED_AT_THE_TAIL}
    assert "vouches for 5 entries; only 4 of them are left" in report.problems[1].message


@pytest.mark.parametrize("removed", [1, 5])
def test_truncating_the_tail_is_detected_against_the_checkpoint(
    db: Database, key: AuditKey, outside: Path, removed: int
) -> None:
    record(db, key, 8)
    seal(db, key, outside)
    # The attacker removes the newest entries and every checkpoint the database holds.
    sql(db, "DELETE FROM audit_log WHERE seq > :keep", keep=8 - removed)
    sql(db, "DELETE FROM audit_checkpoints")
    assert verify(db, key).intact  # the database alone cannot tell
    report = verify(db, key, outside)
    assert [(p.kind, p.entry) for p in report.problems] == [(Tampering.REMOVED_AT_THE_TAIL, None)]
    gone = {1: "entry 8 was", 5: "entries 4 to 8 were"}[removed]
    assert f"vouches for 8: {gone} removed at the tail" in report.problem
    # New entries are not sealed over the gap: that would bury the evidence.
    record(db, key, 1)
    with pytest.raises(audit.AuditTamperedError) as raised:
        seal(db, key, outside)
    assert raised.value.kind is Tampering.REMOVED_AT_THE_TAIL
    assert verify(db, key, outside).kinds == {Tampering.REMOVED_AT_THE_TAIL}


def test_truncating_the_tail_is_detected_against_the_checkpoints_in_the_database(
    db: Database, key: AuditKey
) -> None:
    record(db, key, 4)
    seal(db, key)
    sql(db, "DELETE FROM audit_log WHERE seq = 4")
    report = verify(db, key)
    assert report.kinds == {Tampering.REMOVED_AT_THE_TAIL}


# -- reordered ----------------------------------------------------------------


def test_swapping_the_order_of_sealed_entries_is_named_reordered(
    db: Database, key: AuditKey
) -> None:
    record(db, key, 3)
    seal(db, key)
    first, second, _ = ids(db)
    sql(db, "UPDATE audit_log SET seq = -1 WHERE id = :id", id=first)
    sql(db, "UPDATE audit_log SET seq = 1 WHERE id = :id", id=second)
    sql(db, "UPDATE audit_log SET seq = 2 WHERE id = :id", id=first)
    report = verify(db, key)
    assert (report.intact, report.first_broken) == (False, second)
    assert report.kinds == {Tampering.REORDERED}


# -- recomputed chain ---------------------------------------------------------


def _recompute_from(db: Database, start_seq: int, link: object) -> None:
    """Rewrite the links from ``start_seq`` on, as an attacker without the key can."""
    rows = sorted((e for e in entries(db) if e.seq is not None), key=lambda e: e.seq or 0)
    prev = audit.GENESIS if start_seq == 1 else str(rows[start_seq - 2].hash)
    for row in rows[start_seq - 1 :]:
        new = link(prev, row.seq, row.content_hash)  # type: ignore[operator]
        sql(
            db, "UPDATE audit_log SET prev_hash = :p, hash = :h WHERE id = :id",
            p=prev, h=new, id=row.id,
        )  # fmt: skip
        prev = new


@pytest.mark.parametrize("how", ["plain sha-256", "another key"])
def test_recomputed_chain_after_a_change_is_detected(
    db: Database, key: AuditKey, outside: Path, how: str
) -> None:
    record(db, key, 6)
    seal(db, key, outside)
    second = entries(db)[1]
    fresh = audit.content_hash(
        at=second.at, actor="mallory", action=second.action, target=second.target,
        details=second.details,
    )  # fmt: skip
    sql(
        db, "UPDATE audit_log SET actor = 'mallory', content_hash = :h WHERE id = :id",
        h=fresh, id=second.id,
    )  # fmt: skip
    other = AuditKey.generate()
    links = {
        "plain sha-256": lambda p, s, c: audit.link_hash(prev_hash=p, seq=s, content=c),
        "another key": lambda p, s, c: other.link(prev_hash=p, seq=s, content_hash=c),
    }
    _recompute_from(db, 2, links[how])
    sql(db, "DELETE FROM audit_checkpoints")  # and hide what the database vouched for
    report = verify(db, key, outside)
    assert (report.first_broken, report.kinds) == (second.id, {Tampering.RECOMPUTED_CHAIN})


def test_a_chain_recomputed_after_the_last_checkpoint_cannot_be_sealed_on(
    db: Database, key: AuditKey, outside: Path
) -> None:
    record(db, key, 3)
    seal(db, key, outside)
    _recompute_from(db, 1, lambda p, s, c: audit.link_hash(prev_hash=p, seq=s, content=c))
    record(db, key, 1)
    with pytest.raises(audit.AuditTamperedError) as raised:
        seal(db, key, outside)
    assert raised.value.kind is Tampering.RECOMPUTED_CHAIN


# -- entries sealed before they carried a MAC ---------------------------------


def _legacy_chain(db: Database, n: int) -> None:
    """Entries as the service wrote and sealed them before entries were authenticated."""
    prev = audit.GENESIS
    for seq in range(1, n + 1):
        at = NOW - timedelta(days=1, seconds=-seq)
        content = audit.content_hash(
            at=at, actor="admin:old", action="pass.issue", target=f"o{seq}", details={}
        )
        link = audit.link_hash(prev_hash=prev, seq=seq, content=content)
        insert_row(
            db, at=at, actor="admin:old", action="pass.issue", target=f"o{seq}",
            content_hash=content, seq=seq, prev_hash=prev, hash=link,
        )  # fmt: skip
        prev = link


def test_a_chain_sealed_before_entries_had_macs_is_vouched_for_by_the_first_checkpoint(
    db: Database, key: AuditKey, outside: Path
) -> None:
    _legacy_chain(db, 3)
    seal(db, key, outside)  # nothing new, but the old chain gets its first checkpoint
    kept = key.public.verify_checkpoint(json.loads(outside.read_text()))
    assert (kept.seq, kept.legacy) == (3, 3)
    record(db, key, 2)
    assert seal(db, key, outside) == 2
    assert verify(db, key, outside).intact
    # An old entry is still protected by the checkpoint's head ...
    first = ids(db)[0]
    sql(db, "UPDATE audit_log SET actor = 'mallory' WHERE id = :id", id=first)
    assert verify(db, key, outside).kinds == {Tampering.CHANGED}


def test_stripping_the_mac_of_a_new_entry_does_not_pass_it_off_as_old(
    db: Database, key: AuditKey, outside: Path
) -> None:
    _legacy_chain(db, 2)
    record(db, key, 2)
    seal(db, key, outside)
    third = ids(db)[2]
    sql(db, "UPDATE audit_log SET mac = NULL, actor = 'mallory' WHERE id = :id", id=third)
    row = next(e for e in entries(db) if e.id == third)
    fresh = audit.content_hash(
        at=row.at, actor=row.actor, action=row.action, target=row.target, details=row.details
    )
    sql(db, "UPDATE audit_log SET content_hash = :h WHERE id = :id", h=fresh, id=third)
    _recompute_from(db, 3, lambda p, s, c: audit.link_hash(prev_hash=p, seq=s, content=c))
    report = verify(db, key, outside)
    assert report.first_broken == third and not report.intact


# -- the service's own behaviour ----------------------------------------------


def test_a_rolled_back_change_leaves_no_entry(db: Database, key: AuditKey) -> None:
    with pytest.raises(RuntimeError), db.transaction(write=True) as session:
        audit.record(session, key=key, actor="admin:test", action="test.thing", now=NOW)
        raise RuntimeError("the change failed")
    assert ids(db) == []


def test_an_entry_committed_after_a_seal_is_sealed_in_the_next_round(
    db: Database, key: AuditKey
) -> None:
    if db.is_sqlite:
        pytest.skip("SQLite runs one writer at a time; the late commit cannot happen there")
    record(db, key, 1)
    with db.transaction(write=True) as slow:
        audit.record(slow, key=key, actor="admin:slow", action="test.late", now=NOW)
        record(db, key, 1)  # commits while the slow transaction is still open
        assert seal(db, key) == 2  # the slow entry is not visible yet
    assert seal(db, key) == 1
    report = verify(db, key)
    assert (report.intact, report.entries, report.unsealed) == (True, 3, 0)
    with db.transaction(write=False) as session:
        late = session.scalars(select(AuditEntryRow).where(AuditEntryRow.action == "test.late"))
        assert late.one().seq == 3  # the chain order is the sealing order


def test_concurrent_writers_and_sealers_never_fork_the_chain(
    db: Database, key: AuditKey, outside: Path
) -> None:
    def work() -> None:
        for _ in range(5):
            record(db, key, 2)
            seal(db, key, outside)

    run_together(work, threads=4)
    seal(db, key, outside)
    report = verify(db, key, outside)
    assert (report.intact, report.entries, report.unsealed) == (True, 40, 0)
    assert json.loads(outside.read_text())["seq"] == 40


def test_sealing_in_small_batches_lets_other_writers_in_between(
    db: Database, key: AuditKey, outside: Path
) -> None:
    """SQLite has one writer: the worker seals a few hundred entries a transaction,
    never thousands at once, so an issuance waits for one small batch at most."""
    record(db, key, n=7)
    transactions = 0

    @contextmanager
    def counted() -> Iterator[Session]:
        nonlocal transactions
        transactions += 1
        with db.transaction(write=True) as session:
            yield session

    report = audit.seal_all(counted, key=key, checkpoint_file=outside, clock=lambda: NOW, batch=3)
    assert report.sealed == 7 and transactions == 3  # 3 + 3 + 1: a short batch found the end
    assert verify(db, key, outside).intact


def test_sealing_stops_when_it_has_caught_up_while_issuers_keep_writing(
    db: Database, key: AuditKey, outside: Path
) -> None:
    """Under load issuers add entries as fast as the sealer links them. Sealing on
    until a batch came back empty never ended: it took every third turn at
    SQLite's write lock, each with a checkpoint, and issuance halved."""
    record(db, key, n=5)
    transactions = 0

    @contextmanager
    def busy_issuers() -> Iterator[Session]:
        nonlocal transactions
        transactions += 1
        assert transactions <= 5, "the sealer did not stop while issuers kept writing"
        record(db, key, n=2)  # committed just before each sealing transaction starts
        with db.transaction(write=True) as session:
            yield session

    report = audit.seal_all(
        busy_issuers, key=key, checkpoint_file=outside, clock=lambda: NOW, batch=10
    )
    assert (report.sealed, transactions) == (7, 1)
    assert verify(db, key, outside).intact


def _sealing_in_two_steps(
    db: Database, key: AuditKey, outside: Path, between: Callable[[], None]
) -> audit.SealResult:
    """seal_all as the worker runs it: each batch read and checked in a read
    transaction, written in a write transaction; ``between`` runs in the gap once."""
    gaps = 0

    @contextmanager
    def reading() -> Iterator[Session]:
        nonlocal gaps
        with db.transaction(write=False) as session:
            yield session
        gaps += 1
        if gaps == 1:
            between()

    return audit.seal_all(
        lambda: db.transaction(write=True), read_factory=reading, key=key,
        checkpoint_file=outside, clock=lambda: NOW,
    )  # fmt: skip


def test_a_second_sealer_overtaking_the_first_between_its_steps_makes_it_plan_again(
    db: Database, key: AuditKey, outside: Path
) -> None:
    """Two workers seal at once: the one whose chain end moved while it checked
    entries must not link them onto the old end (two entries with one number)."""
    record(db, key, n=4)

    def other_worker() -> None:
        record(db, key, n=2)
        assert seal(db, key, outside) == 6

    report = _sealing_in_two_steps(db, key, outside, other_worker)
    assert report.sealed == 0  # it planned again and found everything sealed
    record(db, key, n=3)
    assert _sealing_in_two_steps(db, key, outside, lambda: None).sealed == 3
    chain = verify(db, key, outside)
    assert (chain.intact, chain.entries, chain.unsealed) == (True, 9, 0)
    assert sorted(e.seq for e in entries(db)) == list(range(1, 10))


def test_an_entry_deleted_while_the_sealer_checks_it_is_named_not_buried(
    db: Database, key: AuditKey, outside: Path
) -> None:
    """Someone with database access deletes an entry in the gap between the
    sealer's read and its write: the chain it writes then lacks that entry, and
    verification names it, as for any entry removed from the middle."""
    record(db, key, n=4)
    second = ids(db)[1]
    report = _sealing_in_two_steps(
        db, key, outside, lambda: sql(db, "DELETE FROM audit_log WHERE id = :id", id=second)
    )
    assert report.sealed == 4
    chain = verify(db, key, outside)
    assert not chain.intact
    assert chain.kinds == {Tampering.REMOVED_IN_THE_MIDDLE}


def test_a_sealing_batch_on_postgresql_is_one_statement_not_one_per_entry(
    db: Database, key: AuditKey, outside: Path
) -> None:
    """On PostgreSQL an UPDATE per entry (an executemany) had the server plan and run
    each on its own, a burst of tens of milliseconds every round on a core that
    requests needed: the links go over as arrays in a single UPDATE."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs in-process: there is no statement to save")
    record(db, key, n=40)
    updates: list[tuple[bool, Any]] = []

    def watch(_conn: Any, _cursor: Any, statement: str, params: Any, _ctx: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("UPDATE AUDIT_LOG"):
            updates.append((many, params))

    event.listen(db.engine, "before_cursor_execute", watch)
    try:
        assert seal(db, key, outside) == 40
    finally:
        event.remove(db.engine, "before_cursor_execute", watch)
    assert [many for many, _ in updates] == [False]
    assert len(updates[0][1]["ids"]) == 40
    report = verify(db, key, outside)
    assert (report.intact, report.entries, report.unsealed) == (True, 40, 0)
    rows = sorted(entries(db), key=lambda r: r.seq or 0)
    assert [r.seq for r in rows] == list(range(1, 41))
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
