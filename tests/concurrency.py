"""Running the same work in several threads at once, as concurrent requests would."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import text

from wallet.store.db import Database


def run_together(work: Callable[[], None], *, threads: int) -> None:
    """Start ``work`` in ``threads`` threads at the same moment; raise the first failure."""
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            work()
        except BaseException as exc:
            errors.append(exc)

    started = [threading.Thread(target=run) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()
    if errors:
        raise errors[0]


class Pauses:
    """Stops named threads at named points of a publication until the test lets them go."""

    def __init__(self) -> None:
        self.reached: dict[str, threading.Event] = {}
        self.release: dict[str, threading.Event] = {}

    def point(self, name: str) -> None:
        where = f"{threading.current_thread().name} {name}"
        if where in self.release:
            self.reached[where].set()
            assert self.release[where].wait(30), f"{where} was never let go"

    def stop(self, where: str) -> None:
        self.reached[where], self.release[where] = threading.Event(), threading.Event()


def waiting_for_locks(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        )


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)
