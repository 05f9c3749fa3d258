"""SQLite's write-ahead log is copied back by the worker, never inside a request's commit.

A commit that crosses SQLite's default mark (1,000 pages) runs the checkpoint
itself, with an fsync: every ~70th issuance took 5-60 ms longer, and so did the
requests queued behind it (the p99 of issue 12's benchmark).
"""

from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import text

from tests.cli.admin import Wallet, cli_env
from wallet.store.db import Database

PAGE = 4096


def fill(db: Database, pages: int) -> None:
    """Commit one row of about a page at a time: `pages` commits, as many WAL pages or more."""
    with db.transaction(write=True) as session:
        session.execute(text("CREATE TABLE IF NOT EXISTS filler (data BLOB)"))
    for _ in range(pages):
        with db.transaction(write=True) as session:
            session.execute(text("INSERT INTO filler VALUES (:d)"), {"d": os.urandom(PAGE - 200)})


def test_request_commits_leave_the_log_for_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "wallet.sqlite3"
    db = Database(f"sqlite:///{path}")
    try:
        db.upgrade()
        db.checkpoint()
        before = path.stat().st_size
        fill(db, 1500)  # past SQLite's default mark, below the backstop
        assert path.stat().st_size == before  # no commit copied the log back
        assert db.checkpoint() == 0  # everything copied, nothing left in the log
        assert path.stat().st_size > before + 1000 * PAGE
    finally:
        db.dispose()


def test_a_worker_round_checkpoints_the_log(tmp_path: Path) -> None:
    path = tmp_path / "instance" / "wallet.sqlite3"
    db = Database(f"sqlite:///{path}")
    env = cli_env(db, tmp_path / "keys", tmp_path / "instance", "https://pass.example.de")
    try:  # this connection stays open: SQLite also checkpoints when the last one closes
        db.upgrade()
        db.checkpoint()
        fill(db, 300)
        before = path.stat().st_size
        Wallet(CliRunner(), env).ok("worker", "--once")
        assert path.stat().st_size > before + 200 * PAGE
    finally:
        db.dispose()
