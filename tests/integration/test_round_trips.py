"""Issuance's database round trips, counted as they are sent: a regression guard.

On PostgreSQL every statement, BEGIN and COMMIT is a round trip to the server
(psycopg sends BEGIN before the first statement of a transaction); on SQLite
they are calls into the library, so there the statements are counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event

from tests.factories import NOW
from wallet.services import passes
from wallet.services.context import Services
from wallet.store.db import Database

LIBRARY = {"card_number": "100200300400", "name": "Erika Mustermann"}
MAX_ROUND_TRIPS = 3


@contextmanager
def sent_to(engine: Engine) -> Iterator[list[str]]:
    """Every statement the engine sends while the block runs, BEGIN and COMMIT included."""
    sent: list[str] = []
    postgresql = engine.dialect.name == "postgresql"

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)  # SQLite's BEGIN [IMMEDIATE] is sent this way too

    def on_begin(_conn: Any) -> None:
        if postgresql:
            sent.append("BEGIN")

    def on_commit(_conn: Any) -> None:
        sent.append("COMMIT")

    hooks = {"before_cursor_execute": on_execute, "begin": on_begin, "commit": on_commit}
    for name, hook in hooks.items():
        event.listen(engine, name, hook)
    try:
        yield sent
    finally:
        for name, hook in hooks.items():
            event.remove(engine, name, hook)


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
    with sent_to(db.engine) as sent:
        issued = _issue(db, services)
    assert sent[0].upper().startswith("BEGIN") and sent[-1] == "COMMIT", sent
    statements = sent[1:-1]
    assert 1 <= len(statements) <= MAX_ROUND_TRIPS, statements
    if db.engine.dialect.name == "postgresql":
        assert len(sent) <= MAX_ROUND_TRIPS, sent
    assert issued.row.id is not None and len(issued.claim_secret) >= 32


def test_a_slot_lost_to_another_issuer_leaves_no_claim_link_or_audit_entry(
    db: Database, services: Services, monkeypatch: Any
) -> None:
    """The statement that stores a pass stores its link and entry only with it."""
    from sqlalchemy import func, select

    from wallet.store.models import AuditEntryRow, ClaimLinkRow, PassRow

    first = _issue(db, services)
    draws = iter([first.row.status_idx, (first.row.status_idx + 1) % 131_072])
    monkeypatch.setattr(passes.secrets, "randbelow", lambda _size: next(draws))
    second = _issue(db, services)
    assert second.row.status_idx != first.row.status_idx
    with db.transaction(write=False) as session:
        for table in (PassRow, ClaimLinkRow, AuditEntryRow):
            assert session.scalar(select(func.count()).select_from(table)) == 2, table
