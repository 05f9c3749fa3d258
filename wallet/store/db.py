"""Engines and transactions for SQLite (embedded default) and PostgreSQL.

The edge owns the transaction: ``with db.transaction(write=True) as session``
commits when the block ends and rolls everything back on any error, so nothing
is ever half-written. On SQLite a write transaction starts with BEGIN IMMEDIATE:
SQLite has one writer at a time, and taking the lock up front means a
transaction never fails half-way when it tries to upgrade a read lock.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from wallet.errors import ConfigError
from wallet.store.models import Base

MIGRATIONS = Path(__file__).parent / "migrations"


def head_revision() -> str:
    """The newest migration this code knows (the schema a ready instance has)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None, "the migrations folder has no revision"
    return head


_WRITE = "wallet_write"


class Serialised(IntEnum):
    """What only one transaction at a time may do, with the PostgreSQL advisory lock
    each takes (any constants, distinct). SQLite needs none: it has one writer."""

    AUDIT_CHAIN = 0x57414C4C  # "WALL"
    BUNDLE = 0x57414C42  # "WALB"
    PLATE_INDEX = 0x57414C50  # "WALP"


def database_url(url: str) -> str:
    """Normalise a URL: plain postgresql:// means psycopg 3 here."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"WALLET_DATABASE_URL is not a database URL: {exc}") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        raise ConfigError(
            f"unsupported database {parsed.drivername!r}: use sqlite:/// or postgresql://"
        )
    return parsed.render_as_string(hide_password=False)


WAL_BACKSTOP_PAGES = 10_000  # about 40 MB of WAL with 4 KiB pages
BUSY_TIMEOUT_MS = 30_000
# How long the checkpoint's turn waits for the readers of the moment (a request's
# read takes a millisecond or two; a backup is not waited for), and how often it
# looks; the writers queue behind it meanwhile.
RESTART_WAIT_S = 0.02
RESTART_POLL_S = 0.0005


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we send BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        # SQLite copies the WAL back into the database (a checkpoint, with an fsync)
        # inside whichever commit crosses wal_autocheckpoint pages: at the default 1000,
        # every ~70th issuance took 5-60 ms longer and held up the requests queued
        # behind it. `wallet worker` checkpoints every second instead (Database.checkpoint);
        # this higher mark is only the backstop for when no worker runs.
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_BACKSTOP_PAGES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class _WriterQueue:
    """Hands SQLite's single write lock from process to process without sleeping.

    SQLite makes a blocked writer poll with growing sleeps (1, 2, 5, 10 ... ms),
    which with several gunicorn workers wastes most of the time the lock is
    free. An exclusive flock on a file beside the database queues writers in the
    kernel instead: the next one wakes the moment the previous one commits.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None
        self._pid = 0
        self._threads = threading.Lock()

    def _descriptor(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # a forked worker opens its own
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd

    @contextmanager
    def turn(self) -> Iterator[None]:
        with self._threads:
            fd = self._descriptor()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)


def _keep_private(path: Path) -> None:
    """The SQLite file holds holders' names: readable by the service's user only.

    SQLite gives its -wal and -shm files the database file's mode, so making
    the file 0600 before the first connection covers them too. A file made
    before this rule is tightened at the next start.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if name.exists() and name.stat().st_mode & 0o077:
            name.chmod(0o600)


class Database:
    """One engine, a read and a write session factory, and the migrations."""

    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        self.url = database_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self._writers: _WriterQueue | None = None
        options: dict[str, Any] = {}
        if self.is_sqlite:
            path = make_url(self.url).database
            if path and path != ":memory:":
                _keep_private(Path(path))
                self._writers = _WriterQueue(Path(f"{path}.writers"))
            options["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            # No pre-ping: it costs a round trip per request. Connections are
            # recycled instead, and a connection that died with the server fails
            # one request, which the client retries. No reset on return either:
            # every session ends in COMMIT or ROLLBACK (and a closed Connection
            # rolls back what it began), so the pool's extra ROLLBACK is a
            # wasted round trip.
            options.update(
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_recycle=600,
                pool_reset_on_return=None,
            )
        self.engine = create_engine(self.url, **options)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(
            self.engine.execution_options(**{_WRITE: True}), expire_on_commit=False
        )
        self._statements = (
            None
            if self.is_sqlite
            else sessionmaker(
                self.engine.execution_options(isolation_level="AUTOCOMMIT", **{_WRITE: True}),
                expire_on_commit=False,
            )
        )

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[Session]:
        """A session whose work is committed at the end of the block, or not at all."""
        maker = self._write if write else self._read
        if write and self._writers is not None:
            with self._writers.turn(), self._session(maker) as session:
                yield session
            return
        with self._session(maker) as session:
            yield session

    @contextmanager
    def statements(self) -> Iterator[Session]:
        """A session for work each of whose writes is one statement that stands alone.

        PostgreSQL: every statement commits on its own (autocommit), one round trip
        each, without BEGIN and COMMIT around them. SQLite: a write transaction, as
        :meth:`transaction` (in-process: there are no round trips to save).
        """
        if self._statements is None:
            with self.transaction(write=True) as session:
                yield session
            return
        with self._session(self._statements) as session:
            yield session

    @contextmanager
    def _session(self, maker: sessionmaker[Session]) -> Iterator[Session]:
        session = maker()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (``wallet db upgrade``)."""
        # Imported here: every CLI command opens a Database, few migrate (~65 ms saved).
        from alembic import command
        from alembic.config import Config

        with self.engine.connect() as connection:
            # SQLite alters a table by copying it into a new one and dropping the old:
            # with foreign keys enforced, dropping ``passes`` fails while any claim link
            # points at it. They are switched off for the migration (a PRAGMA that only
            # works outside a transaction) and every reference is checked before commit.
            driver = connection.connection.driver_connection if self.is_sqlite else None
            if driver is not None:
                driver.execute("PRAGMA foreign_keys=OFF")
            try:
                with connection.begin():
                    config = Config()
                    config.set_main_option("script_location", str(MIGRATIONS))
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
                    if driver is not None:
                        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").first()
                        if broken is not None:
                            raise ConfigError(
                                f"the migration left a row of {broken[0]} pointing at a missing "
                                f"{broken[2]} row: nothing was changed"
                            )
            finally:
                if driver is not None:
                    driver.execute("PRAGMA foreign_keys=ON")

    def checkpoint(self) -> int:
        """Copy SQLite's write-ahead log back into the database file, outside any
        request, and let the next writer start the log from its beginning again;
        the pages still in the log after it, as SQLite reports them. PostgreSQL:
        nothing to do, 0.

        The bulk is copied while writers go on (PASSIVE). That alone never lets
        the log restart under steady issuance: a writer restarts it only when no
        reader still reads from it, and with requests coming all the time one
        always does. The log then grew to the backstop mark, and one request's
        commit copied 40 MB with every writer queued behind it (80-100 ms, the
        p99 of issue 12). So the rest is copied in a turn of the writer queue,
        RESTART waiting briefly for the readers of the moment to finish: the
        writers wait a few milliseconds, once a round, instead.
        """
        if not self.is_sqlite:
            return 0
        _busy, left = self._checkpoint("PASSIVE")
        if self._writers is None:
            return left
        with self._writers.turn():
            deadline = time.monotonic() + RESTART_WAIT_S
            while True:
                # Not SQLite's busy handler: it sleeps 1, 2, 5, 10 ms between tries,
                # and the writers queued behind this turn would wait as long.
                busy, left = self._checkpoint("RESTART")
                if not busy or time.monotonic() >= deadline:
                    return left
                time.sleep(RESTART_POLL_S)

    def _checkpoint(self, mode: str) -> tuple[bool, int]:
        """(whether readers kept it from finishing, pages left in the log)."""
        with self.engine.connect() as connection:
            driver = connection.connection.driver_connection
            assert driver is not None
            driver.execute("PRAGMA busy_timeout=0")  # judged by the caller, never slept on
            try:
                row = driver.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
            finally:
                driver.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        busy, logged, copied = (int(value) for value in row)
        return bool(busy), max(logged - copied, 0)

    def current_revision(self) -> str | None:
        with self.engine.connect() as connection:
            try:
                row = connection.execute(text("SELECT version_num FROM alembic_version")).first()
            except Exception:
                return None
        return None if row is None else str(row[0])

    def dispose(self) -> None:
        self.engine.dispose()


def serialise(session: Session, what: Serialised) -> None:
    """Wait until no other transaction does ``what``, then hold it until this one ends.

    Taken first, before any row lock of that work: row locks taken in differing
    orders by its doers deadlock (the first bundle did, between three servers).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": int(what)})


def refresh_statistics(session: Session, table: str) -> None:
    """Let PostgreSQL's planner see how large ``table`` has grown (a bulk load outruns
    autovacuum); SQLite plans without such statistics, so there it does nothing."""
    if table not in Base.metadata.tables:
        raise ValueError(f"no table {table!r}")
    if session.connection().dialect.name == "postgresql":
        session.execute(text(f"ANALYZE {table}"))
