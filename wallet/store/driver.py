"""SQLite statements compiled once and run on the driver's own cursor.

Issuance on SQLite holds the one write lock while it inserts a pass, its claim
link and its audit entry. SQLAlchemy's work around each execution (cache
lookup, parameter processing, result object) cost more than SQLite's insert
itself: measured in-process, about half of the time the lock was held. For
these few hot statements the SQL text and the column types' bind processors
are taken from SQLAlchemy's own compilation, so values are stored exactly as
SQLAlchemy stores them; only the per-execution machinery is skipped.

Only plain statements qualify: every bound value must be given by the caller
(no column defaults filled in at execution time), which :meth:`run` checks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

__all__ = ["DriverStatement", "sent_statements"]

_Processor = Callable[[Any], Any] | None


class DriverStatement:
    """One statement for SQLite, compiled per set of value names on first use."""

    def __init__(self, statement: ClauseElement) -> None:
        self._statement = statement
        self._compiled: dict[frozenset[str], tuple[str, tuple[tuple[str, _Processor], ...]]] = {}
        self._lock = threading.Lock()

    def run(self, connection: Connection, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """Execute with `values` in the connection's transaction; the first row returned."""
        sql, binds = self._for(connection, values)
        driver = connection.connection.driver_connection
        assert driver is not None
        parameters = [
            value if process is None else process(value)
            for value, process in ((values[name], process) for name, process in binds)
        ]
        cursor = driver.cursor()
        try:
            cursor.execute(sql, parameters)
            row = cursor.fetchone()
        finally:
            cursor.close()
        return None if row is None else tuple(row)

    def _for(
        self, connection: Connection, values: Mapping[str, Any]
    ) -> tuple[str, tuple[tuple[str, _Processor], ...]]:
        names = frozenset(values)
        found = self._compiled.get(names)
        if found is None:
            found = self._compile(connection, names)
            with self._lock:
                self._compiled[names] = found
        return found

    def _compile(
        self, connection: Connection, names: frozenset[str]
    ) -> tuple[str, tuple[tuple[str, _Processor], ...]]:
        dialect = connection.dialect
        if dialect.name != "sqlite" or dialect.paramstyle != "qmark":
            raise TypeError("DriverStatement runs on SQLite's qmark driver only")
        compiled = self._statement.compile(dialect=dialect, column_keys=sorted(names))
        assert isinstance(compiled, SQLCompiler)
        order = compiled.positiontup or []
        missing = [name for name in order if name not in names]
        if missing:  # a default SQLAlchemy would fill in: not for this path
            raise TypeError(f"values missing for {', '.join(missing)}")
        processors = compiled._bind_processors
        binds: list[tuple[str, _Processor]] = []
        for name in order:
            process = processors.get(name)
            if process is not None and not callable(process):  # a tuple type's processors
                raise TypeError(f"{name}: tuple values are not for this path")
            binds.append((name, process))
        return compiled.string, tuple(binds)


@contextmanager
def sent_statements(engine: Engine) -> Iterator[list[str]]:
    """Every statement sent while the block runs, BEGIN and COMMIT included: for the
    round-trip guard and the benchmark, which count what issuance costs.

    On PostgreSQL every statement, BEGIN and COMMIT is a round trip (psycopg sends
    BEGIN before a transaction's first statement). SQLite's are counted as SQLite
    runs them (its trace callback): the hot inserts pass SQLAlchemy's events by.
    """
    sent: list[str] = []
    hooks: dict[str, Callable[..., None]]
    if engine.dialect.name == "sqlite":
        hooks = {
            "checkout": lambda driver, *_: driver.set_trace_callback(sent.append),
            "checkin": lambda driver, *_: driver.set_trace_callback(None),
        }
    else:

        def sent_unless_autocommit(word: str) -> Callable[..., None]:
            def hook(conn: Any) -> None:
                if not conn.connection.dbapi_connection.autocommit:  # else psycopg sends none
                    sent.append(word)

            return hook

        hooks = {
            "before_cursor_execute": lambda _conn, _cursor, statement, *_: sent.append(statement),
            "begin": sent_unless_autocommit("BEGIN"),
            "commit": sent_unless_autocommit("COMMIT"),
        }
    for name, hook in hooks.items():
        event.listen(engine, name, hook)
    try:
        yield sent
    finally:
        for name, hook in hooks.items():
            event.remove(engine, name, hook)
