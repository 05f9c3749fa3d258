"""Issuance's SQLite inserts on the driver's cursor store exactly what SQLAlchemy stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, text

from wallet.store.db import Database
from wallet.store.driver import DriverStatement
from wallet.store.models import PassRow, StatusListRow

_passes = PassRow.__table__
MOMENT = datetime(2026, 12, 4, 16, 5, 17, 123456, tzinfo=UTC)


def pass_values(serial: str, idx: int) -> dict[str, Any]:
    return {
        "serial": serial, "pass_type": "library", "state": "valid",
        "holder": {"name": "Łukasz Ağaoğlu-Nguyễn", "card_number": "100200300400"},
        "holder_search": "łukasz ağaoğlu-nguyễn 100200300400",
        "valid_from": MOMENT, "valid_until": MOMENT + timedelta(days=365), "kid": "k1",
        "update_tag": 0, "apple_auth_token": "t" * 32, "replaces": None, "external_key": None,
        "wallet_serial": None, "created_at": MOMENT, "updated_at": MOMENT,
        "status_list_id": 1, "status_idx": idx, "token": "a.b.c",
    }  # fmt: skip


def stored(db: Database, serial: str) -> dict[str, Any]:
    """The row as SQLite holds it: text, numbers and NULLs, no type conversion."""
    with db.transaction(write=False) as session:
        row = session.execute(
            text("SELECT * FROM passes WHERE serial = :serial"), {"serial": serial}
        ).one()
    return {key: value for key, value in row._mapping.items() if key != "id"}


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'wallet.sqlite3'}")
    db.upgrade()
    with db.transaction(write=True) as session:
        session.add(StatusListRow(
            id=1, name="library-1", pass_type="library", bits=2, size=131072, used=0,
            version=1, published_version=0, created_at=MOMENT,
        ))  # fmt: skip
    return db


def test_a_row_inserted_on_the_driver_cursor_equals_one_inserted_by_sqlalchemy(
    sqlite_db: Database,
) -> None:
    with sqlite_db.transaction(write=True) as session:
        session.execute(insert(_passes), pass_values("AAAA-BBBB-CCCC-0001", 1))
        returned = DriverStatement(insert(_passes).returning(_passes.c.id)).run(
            session.connection(), pass_values("AAAA-BBBB-CCCC-0002", 2)
        )
    assert returned is not None and isinstance(returned[0], int)
    ours, theirs = (stored(sqlite_db, f"AAAA-BBBB-CCCC-000{n}") for n in (2, 1))
    differ = ("serial", "status_idx")
    assert {k: v for k, v in ours.items() if k not in differ} == {
        k: v for k, v in theirs.items() if k not in differ
    }
    with sqlite_db.transaction(write=False) as session:
        row = session.scalars(select(PassRow).where(PassRow.serial == "AAAA-BBBB-CCCC-0002")).one()
    assert (row.valid_from, row.holder["name"]) == (MOMENT, "Łukasz Ağaoğlu-Nguyễn")


def test_a_statement_needing_a_default_it_was_not_given_is_refused_not_stored_half(
    sqlite_db: Database,
) -> None:
    """A column default SQLAlchemy fills in at execution would silently be missing."""
    values = pass_values("AAAA-BBBB-CCCC-0003", 3)
    del values["update_tag"]  # has a default in the model
    with sqlite_db.transaction(write=True) as session, pytest.raises(TypeError, match="update_tag"):
        DriverStatement(insert(_passes)).run(session.connection(), values)
    with sqlite_db.transaction(write=False) as session:
        assert session.execute(text("SELECT count(*) FROM passes")).scalar_one() == 0


def test_the_driver_path_is_for_sqlite_only(postgres_url: str) -> None:
    db = Database(postgres_url)
    try:
        with db.engine.connect() as connection, pytest.raises(TypeError, match="SQLite"):
            DriverStatement(insert(_passes)).run(connection, pass_values("X", 1))
    finally:
        db.dispose()
