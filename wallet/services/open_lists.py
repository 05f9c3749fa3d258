"""The status list each pass type fills, remembered per process (see passes.issue_pass)."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass

# Random draws before drawing blind: a list is at most a little over 75 % full,
# so a free-looking index takes about four draws.
_DRAWS = 1000


@dataclass(frozen=True)
class ListSlot:
    """A status list new passes go into."""

    id: int
    name: str
    size: int


class OpenLists:
    """Per process: the list each pass type fills, how many passes may go into
    it before its passes are counted again, and which of its indices are taken.

    Looking the list up and keeping an exact count on its row cost each
    issuance a statement and, on PostgreSQL, a row lock every concurrent issuer
    queued on until commit. Counting now and then instead lets the list fill a
    little beyond ``passes.FILL_LIMIT`` (at most ``passes.RECOUNT_EVERY`` per
    process, and far less near the limit), which only makes a random slot a
    little harder to find. Only lists found committed are kept: a list created
    by a transaction that rolls back is never handed out.

    The count reads the taken indices too (a bit each: 16 KiB a list), so an
    index is drawn among those not known to be taken: an insert then collides
    only with passes other processes issued since, instead of with a share of
    the list that grows to three quarters. Drawing uniformly from a superset of
    the free indices and retrying on collision stays uniform over the free ones.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lists: dict[str, tuple[ListSlot, int]] = {}
        self._taken: dict[int, bytearray] = {}

    def take(self, type_id: str) -> ListSlot | None:
        with self._lock:
            slot, budget = self._lists.get(type_id, (None, 0))
            if slot is None or budget <= 0:
                return None
            self._lists[type_id] = (slot, budget - 1)
            return slot

    def keep(self, type_id: str, slot: ListSlot, *, budget: int, taken: Iterable[int]) -> None:
        bits = bytearray((slot.size + 7) // 8)
        for index in taken:
            bits[index >> 3] |= 1 << (index & 7)
        with self._lock:
            previous = self._lists.get(type_id)
            if previous is not None and previous[0].id != slot.id:
                self._taken.pop(previous[0].id, None)
            self._lists[type_id] = (slot, budget)
            self._taken[slot.id] = bits

    def draw(self, slot: ListSlot) -> int:
        """A random index of the list not known to be taken (any index if none is known)."""
        with self._lock:
            bits = self._taken.get(slot.id)
        for _ in range(_DRAWS):
            index = secrets.randbelow(slot.size)
            if bits is None or not (bits[index >> 3] >> (index & 7)) & 1:
                return index
        return secrets.randbelow(slot.size)

    def mark(self, slot: ListSlot, index: int) -> None:
        """Remember an index as taken (by this process, or found taken by another)."""
        with self._lock:
            bits = self._taken.get(slot.id)
            if bits is not None:
                bits[index >> 3] |= 1 << (index & 7)
