"""Status list publication at city scale, and issuance's database round trips.

Publication: a database holding 1,000,000 library passes in 11 status lists
(1 % revoked; the rows are written by one SQL statement, not by issuing them).
After each round of 10 revocations in one list, that list is published as the
service does it (``publish_status_list``); the baseline is the full rebuild
the service used to run, every pass of the list read (``build_status_list``)
and signed. Median of the rounds.

Round trips: every statement sent while one pass is issued (BEGIN and COMMIT
included; psycopg sends BEGIN before a transaction's first statement), counted
with SQLAlchemy's cursor and transaction events, averaged over a batch of
issuances; the baseline is the bare one-insert transaction of
scripts/bench_bare_app.py. Counted into an empty list and into a list that is
69 % full (at the full 1M passes), where a random slot is often taken and the insert is retried.

Runs against whichever ``wallet`` package is first on PYTHONPATH, so the same
script measures an older checkout (``PYTHONPATH=/path/to/old scripts/bench_db.py``).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, text

PASSES = int(os.environ.get("WALLET_BENCH_PASSES", "1000000"))
LISTS = 11
LIST_SIZE = 131_072  # wallet.status.MIN_LIST_SIZE
ROUNDS = 5
CHANGES_PER_ROUND = 10
PUBLISH_TARGET_S = 0.3
ROUND_TRIP_TARGET = 3
ISSUED_FOR_COUNT = 100
LIBRARY = {"card_number": "100200300400", "name": "Erika Mustermann"}


@dataclass(frozen=True)
class PublicationFigures:
    passes: int
    lists: int
    first_publication_s: float  # every list, from no stored bits
    changed_list_s: float  # one list after CHANGES_PER_ROUND revocations (median of rounds)
    full_rebuild_s: float  # the same list, every pass read (median of rounds)


@dataclass(frozen=True)
class RoundTrips:
    empty_list: float  # per issuance, averaged
    full_list: float  # per issuance into a list 69 % full
    full_list_failed: int  # issuances of those that found no free slot
    bare: float  # the bare one-insert transaction
    statements: tuple[str, ...]  # what one issuance sent (first words of each)


def _services(env: dict[str, str]) -> Any:
    from wallet.config import Settings
    from wallet.services.context import Services

    return Services.from_settings(Settings.from_env(env))


def populate(db: Any, *, passes: int, lists: int, now: datetime) -> list[str]:
    """Lists and passes written by SQL; 1 % of the passes revoked. Returns the list names."""
    from wallet.store.models import PassRow

    per_list = passes // lists
    changed_column = "status_version" in PassRow.__table__.c  # absent before migration 0003
    postgresql = not db.is_sqlite
    series = (
        "generate_series(0, :n - 1) AS g(x)"
        if postgresql
        else "(WITH RECURSIVE g(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM g WHERE x < :n - 1) "
        "SELECT x FROM g) AS g"
    )
    holder = "CAST('{}' AS JSON)" if postgresql else "'{}'"

    def stamp(moment: datetime) -> object:  # as SQLAlchemy stores it on SQLite
        return moment if postgresql else moment.strftime("%Y-%m-%d %H:%M:%S.%f")

    names = []
    with db.transaction(write=True) as session:
        existing = session.execute(text("SELECT count(*) FROM status_lists")).scalar_one()
        for number in range(existing + 1, existing + lists + 1):
            name = f"library-{number}"
            names.append(name)
            list_id = session.execute(
                text(
                    "INSERT INTO status_lists (name, pass_type, bits, size, used, version, "
                    "published_version, created_at) VALUES (:name, 'library', 1, 131072, :n, 1, 0, "
                    ":now) RETURNING id"
                ),
                {"name": name, "n": per_list, "now": stamp(now)},
            ).scalar_one()
            session.execute(
                text(
                    "INSERT INTO passes (serial, pass_type, holder, holder_search, state, "
                    "valid_from, valid_until, status_list_id, status_idx, kid, token, update_tag, "
                    f"apple_auth_token, created_at, updated_at"
                    f"{', status_version' if changed_column else ''}) "
                    f"SELECT 'bench-' || :list_id || '-' || x, 'library', {holder}, '', "
                    "CASE WHEN x % 100 = 7 THEN 'revoked' ELSE 'valid' END, :now, :until, "
                    ":list_id, (CAST(x AS BIGINT) * 48271 + 12345) % 131072, "
                    # a well-formed stand-in token ({}.{}.0x00): services show a pass's QR text
                    "'k', 'e30.e30.AA', 0, 'a', :now, :now"
                    f"{', CASE WHEN x % 100 = 7 THEN 0 END' if changed_column else ''} "
                    f"FROM {series}"
                ),
                {
                    "list_id": list_id,
                    "n": per_list,
                    "now": stamp(now),
                    "until": stamp(now + timedelta(days=365)),
                },
            )
    return names


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def bench_publication(db: Any, services: Any, names: list[str], *, now: datetime) -> Any:
    from wallet.services import passes as issuing
    from wallet.services import publishing
    from wallet.store.models import PassRow

    def publish(name: str, moment: datetime) -> None:
        with db.transaction(write=True) as session:
            publishing.publish_status_list(session, services, name, now=moment)

    first = _timed(lambda: [publish(name, now) for name in names])
    target = names[len(names) // 2]
    with db.transaction(write=False) as session:
        row = publishing.status_list_row(session, target)
        serials = session.scalars(
            select(PassRow.serial)
            .where(PassRow.status_list_id == row.id, PassRow.state == "valid")
            .limit(ROUNDS * CHANGES_PER_ROUND)
        ).all()
    changed, full = [], []
    for round_number in range(ROUNDS):
        moment = now + timedelta(minutes=round_number + 1)
        for serial in serials[round_number * CHANGES_PER_ROUND :][:CHANGES_PER_ROUND]:
            with db.transaction(write=True) as session:
                issuing.change_state(
                    session, services, serial, action="revoke", reason=None, actor="bench",
                    now=moment,
                )  # fmt: skip
        changed.append(_timed(lambda moment=moment: publish(target, moment)))

        def rebuild() -> None:
            with db.transaction(write=False) as session:
                row = publishing.status_list_row(session, target)
                status_list = publishing.build_status_list(session, row)
                key = services.keys.current_signing_key("library", now=now)
                publishing.sign_status_lists(
                    {target: (status_list, key)},
                    issuer=services.settings.issuer,
                    now=now,
                    lifetime=timedelta(days=1),
                    ttl=timedelta(minutes=10),
                )

        full.append(_timed(rebuild))
    return first, statistics.median(changed), statistics.median(full)


def count_issuance(
    db: Any, services: Any, *, count: int, now: datetime
) -> tuple[float, list[str], int]:
    """Statements sent per issuance (averaged), those of one, and how many failed."""
    from wallet.errors import StateConflictError
    from wallet.services import passes as issuing
    from wallet.store.driver import sent_statements

    def issue() -> None:
        with db.transaction(write=True) as session:
            issuing.issue_pass(
                session, services, type_id="library", holder=LIBRARY, actor="bench", now=now
            )

    def attempt() -> bool:
        try:
            issue()
        except StateConflictError:  # every random slot tried was taken
            return False
        return True

    attempt(), attempt()  # a new list is created, then found and counted: not the steady state
    with sent_statements(db.engine) as sent:
        failed = sum(not attempt() for _ in range(count))
    with sent_statements(db.engine) as one:
        attempt()
    return len(sent) / count, one, failed


def count_bare(db: Any) -> float:
    from bench_bare_app import bare, metadata

    from wallet.store.driver import sent_statements

    metadata.create_all(db.engine)
    with sent_statements(db.engine) as sent, db.transaction(write=True) as session:
        session.execute(bare.insert().values(body="{}", created_at=datetime.now(UTC)))
    return float(len(sent))


def bench(kind: str) -> tuple[PublicationFigures, RoundTrips]:
    from bench_service import database, prepare

    from wallet.store.db import Database

    with tempfile.TemporaryDirectory(prefix=f"wallet-bench-db-{kind}-") as tmp:
        folder = Path(tmp)
        with database(kind, folder) as url:
            env, _token = prepare(url, folder)
            now = datetime.now(UTC) + timedelta(seconds=1)  # the keys are valid from their making
            services = _services(env)
            db = Database(url)
            try:
                empty, one, _ = count_issuance(db, services, count=ISSUED_FOR_COUNT, now=now)
                bare = count_bare(db)
                names = populate(db, passes=PASSES, lists=LISTS, now=now)
                with db.transaction(write=True) as session:  # the list issued into above: full
                    session.execute(text("UPDATE status_lists SET used = size WHERE id = 1"))
                with db.engine.connect() as connection:  # what autovacuum would do by now
                    connection.execute(text("ANALYZE"))
                    connection.commit()
                services = _services(env)  # a new process: nothing remembered of the lists
                first, changed, full = bench_publication(db, services, names, now=now)
                # Into the first open list: 69 % full.
                fuller, _, failed = count_issuance(db, services, count=ISSUED_FOR_COUNT, now=now)
            finally:
                db.dispose()
    short = tuple(" ".join(statement.split()[:3]) for statement in one)
    return (
        PublicationFigures(PASSES, LISTS, first, changed, full),
        RoundTrips(
            empty_list=empty, full_list=fuller, full_list_failed=failed, bare=bare, statements=short
        ),
    )


if __name__ == "__main__":  # python scripts/bench_db.py [kind...]
    for kind in tuple(sys.argv[1:]) or ("sqlite", "postgresql"):
        publication, trips = bench(kind)
        print(kind, publication)
        print(kind, trips)
