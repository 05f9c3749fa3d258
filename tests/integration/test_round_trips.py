"""Issuance's database round trips, counted as they are sent: a regression guard.

On PostgreSQL every statement, BEGIN and COMMIT is a round trip to the server;
on SQLite they are calls into the library, so there the statements are counted
(wallet.store.driver.sent_statements).
"""

from __future__ import annotations

from typing import Any

from tests.factories import NOW, stored_row
from wallet.services import open_lists, passes
from wallet.services.context import Services
from wallet.store.db import Database
from wallet.store.driver import sent_statements

LIBRARY = {"card_number": "100200300400", "name": "Erika Mustermann"}
MAX_ROUND_TRIPS = 3


def _issue(db: Database, services: Services) -> passes.IssuedPass:
    with db.transaction(write=True) as session:
        return passes.issue_pass(
            session, services, type_id="library", holder=LIBRARY, actor="admin:test", now=NOW
        )


def test_issuance_does_not_creep_back_to_one_round_trip_per_row(
    db: Database, services: Services
) -> None:
    _issue(db, services)  # the first pass of a type creates its list,
    _issue(db, services)  # the next finds it committed and counts its passes
    with sent_statements(db.engine) as sent:
        issued = _issue(db, services)
    assert sent[0].upper().startswith("BEGIN") and sent[-1] == "COMMIT", sent
    statements = sent[1:-1]
    assert 1 <= len(statements) <= MAX_ROUND_TRIPS, statements
    if db.engine.dialect.name == "postgresql":
        assert len(sent) <= MAX_ROUND_TRIPS, sent
    assert stored_row(db, issued.record.serial).id is not None and len(issued.claim_secret) >= 32


def test_a_slot_lost_to_another_issuer_leaves_no_claim_link_or_audit_entry(
    db: Database, services: Services, monkeypatch: Any
) -> None:
    """The statement that stores a pass stores its link and entry only with it."""
    from dataclasses import replace

    from sqlalchemy import func, select

    from wallet.store.models import AuditEntryRow, ClaimLinkRow, PassRow

    _issue(db, services)
    _issue(db, services)  # this process now knows the list and its two taken indices
    other = _issue(db, replace(services))  # another process takes an index it cannot know
    assert (
        stored_row(db, other.record.serial).status_list_id
        == stored_row(db, _issue(db, services).record.serial).status_list_id
    )
    lost = stored_row(db, other.record.serial).status_idx
    draws = iter([lost, (lost + 1) % 131_072, (lost + 2) % 131_072])
    monkeypatch.setattr(open_lists.secrets, "randbelow", lambda _size: next(draws))
    mine = _issue(db, services)
    assert stored_row(db, mine.record.serial).status_idx in (
        (lost + 1) % 131_072,
        (lost + 2) % 131_072,
    )
    with db.transaction(write=False) as session:
        for table in (PassRow, ClaimLinkRow, AuditEntryRow):
            assert session.scalar(select(func.count()).select_from(table)) == 5, table


def test_indices_known_taken_are_not_drawn_again(db: Database, services: Services) -> None:
    """Once its list is counted, a process draws among the indices not known to be taken."""
    _issue(db, services)
    known = _issue(db, services)  # counted: the first pass's index is known taken
    slot = open_lists.ListSlot(
        stored_row(db, known.record.serial).status_list_id, "library-1", 131_072
    )
    services.open_lists.mark(slot, stored_row(db, known.record.serial).status_idx)
    taken = {stored_row(db, known.record.serial).status_idx}
    with db.transaction(write=False) as session:
        from sqlalchemy import select

        from wallet.store.models import PassRow

        taken |= set(session.scalars(select(PassRow.status_idx)))
    small = open_lists.ListSlot(-1, "small-1", 4)  # only index 3 of 0..3 is free
    services.open_lists.keep("small", small, budget=1, taken=[0, 1, 2])
    assert {services.open_lists.draw(small) for _ in range(50)} == {3}
    assert all(services.open_lists.draw(slot) not in taken for _ in range(200))


def _fill(db: Database, list_id: int, *, upto: int) -> None:
    """Fake passes in the list (written by SQL, not issued) until it holds `upto`."""
    from sqlalchemy import text

    postgresql = db.engine.dialect.name == "postgresql"
    series = (
        "generate_series(0, :n - 1) AS g(x)"
        if postgresql
        else "(WITH RECURSIVE g(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM g WHERE x < :n - 1) "
        "SELECT x FROM g) AS g"
    )
    holder = "CAST('{}' AS JSON)" if postgresql else "'{}'"
    stamp = NOW if postgresql else NOW.strftime("%Y-%m-%d %H:%M:%S.%f")
    with db.transaction(write=True) as session:
        have = session.execute(
            text("SELECT count(*) FROM passes WHERE status_list_id = :id"), {"id": list_id}
        ).scalar_one()
        taken = {
            idx
            for (idx,) in session.execute(
                text("SELECT status_idx FROM passes WHERE status_list_id = :id"), {"id": list_id}
            )
        }
        # Odd multiplier: a permutation of the 2**17 slots; skip the few already taken.
        session.execute(
            text(
                "INSERT INTO passes (serial, pass_type, holder, holder_search, state, valid_from, "
                "valid_until, status_list_id, status_idx, kid, token, update_tag, "
                "apple_auth_token, created_at, updated_at) "
                f"SELECT 'fill-' || x, 'library', {holder}, '', 'valid', :now, :now, :id, "
                "(CAST(x AS BIGINT) * 48271 + 1) % 131072, 'k', 'x', 0, 'a', :now, :now "
                f"FROM {series} WHERE (CAST(x AS BIGINT) * 48271 + 1) % 131072 NOT IN "
                f"({', '.join(str(i) for i in taken) or '-1'}) LIMIT :missing"
            ),
            {"n": upto + len(taken), "missing": upto - have, "id": list_id, "now": stamp},
        )


def _count(list_id: int) -> Any:
    from sqlalchemy import func, select

    from wallet.store.models import PassRow

    return select(func.count()).select_from(PassRow).where(PassRow.status_list_id == list_id)


def test_a_full_list_takes_no_more_passes_once_counted(db: Database, services: Services) -> None:
    """Issuers count their list now and then; one found full is never handed out again."""
    from dataclasses import replace

    first = _issue(db, services)
    limit = int(131_072 * passes.FILL_LIMIT)
    _fill(db, stored_row(db, first.record.serial).status_list_id, upto=limit - 3)
    with db.transaction(write=False) as session:
        assert (
            session.scalar(_count(stored_row(db, first.record.serial).status_list_id)) == limit - 3
        )
    fresh = replace(services)  # another process: nothing remembered
    lists = [stored_row(db, _issue(db, fresh).record.serial).status_list_id for _ in range(6)]
    assert lists[:3] == [stored_row(db, first.record.serial).status_list_id] * 3, (
        lists
    )  # near the limit: counted each time
    assert stored_row(db, first.record.serial).status_list_id not in lists[3:], (
        lists
    )  # full: the next list takes over
    assert len(set(lists[3:])) == 1
    with db.transaction(write=False) as session:
        from sqlalchemy import select

        from wallet.store.models import StatusListRow

        used = session.scalar(
            select(StatusListRow.used).where(
                StatusListRow.id == stored_row(db, first.record.serial).status_list_id
            )
        )
    assert used == limit
