"""The status list each pass type fills, remembered per process (see passes.issue_pass)."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class ListSlot:
    """A status list new passes go into."""

    id: int
    name: str
    size: int


class OpenLists:
    """Per process: the list each pass type fills, and how many passes may go
    into it before its passes are counted again.

    Looking the list up and keeping an exact count on its row cost each
    issuance a statement and, on PostgreSQL, a row lock every concurrent issuer
    queued on until commit. Counting now and then instead lets the list fill a
    little beyond ``passes.FILL_LIMIT`` (at most ``passes.RECOUNT_EVERY`` per process, and
    far less near the limit), which only makes a random slot a little harder
    to find. Only lists found committed are kept: a list created by a
    transaction that rolls back is never handed out.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lists: dict[str, tuple[ListSlot, int]] = {}

    def take(self, type_id: str) -> ListSlot | None:
        with self._lock:
            slot, budget = self._lists.get(type_id, (None, 0))
            if slot is None or budget <= 0:
                return None
            self._lists[type_id] = (slot, budget - 1)
            return slot

    def keep(self, type_id: str, slot: ListSlot, *, budget: int) -> None:
        with self._lock:
            self._lists[type_id] = (slot, budget)
