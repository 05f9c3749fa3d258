"""The embedded SQLite database holds holders' names: nobody but the service reads it."""

from __future__ import annotations

import stat
from pathlib import Path

from sqlalchemy import text

from wallet.store.db import Database


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_sqlite_database_and_its_wal_files_are_not_world_readable(tmp_path: Path) -> None:
    path = tmp_path / "instance" / "wallet.sqlite3"
    db = Database(f"sqlite:///{path}")
    try:
        with db.transaction(write=True) as session:
            session.execute(text("CREATE TABLE holders (name TEXT)"))
            session.execute(text("INSERT INTO holders VALUES ('Erika Mustermann')"))
        files = [p for p in path.parent.iterdir() if p.name.startswith("wallet.sqlite3")]
        assert {p.name for p in files} >= {"wallet.sqlite3", "wallet.sqlite3-wal"}
        assert {p.name: mode(p) for p in files if not p.name.endswith(".writers")} == {
            p.name: 0o600 for p in files if not p.name.endswith(".writers")
        }
        assert mode(path.parent) == 0o700
    finally:
        db.dispose()


def test_a_world_readable_database_from_an_older_release_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "wallet.sqlite3"
    Database(f"sqlite:///{path}").dispose()
    path.chmod(0o644)
    Database(f"sqlite:///{path}").dispose()
    assert mode(path) == 0o600
