"""Running the same work in several threads at once, as concurrent requests would."""

from __future__ import annotations

import threading
from collections.abc import Callable


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
