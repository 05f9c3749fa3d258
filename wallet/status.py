"""Token Status Lists as specified by draft-ietf-oauth-status-list-18, and random index allocation.

A list packs one status of `bits` bits (1, 2, 4 or 8) per pass into a byte array, least
significant bits first: with ``bits=1``, index 0 is bit 0 of byte 0 and index 8 is bit 0 of
byte 1. The array travels ZLIB-compressed (RFC 1950) and base64url-encoded without padding as
the ``lst`` member of the ``status_list`` claim ``{"bits": n, "lst": "..."}``.

Decoding is strict and bounded: ``lst`` comes from the network, so anything but canonical
unpadded base64url holding exactly one complete ZLIB stream is refused, and inflation stops
at a byte cap so a small ZLIB bomb cannot exhaust memory.
"""

from __future__ import annotations

import json
import random
import secrets
import zlib
from collections.abc import Container
from enum import IntEnum
from typing import Final

from wallet.codec import b64url_decode, b64url_encode
from wallet.errors import MalformedDataError, StatusListError, StatusListFullError

__all__ = [
    "ALLOWED_BITS",
    "DEFAULT_MAX_SIZE",
    "INVALID",
    "MIN_LIST_SIZE",
    "SUSPENDED",
    "VALID",
    "Status",
    "StatusList",
    "allocate_index",
]

VALID: Final = 0
INVALID: Final = 1
SUSPENDED: Final = 2


class Status(IntEnum):
    """The status types of the draft (section 7.1) that passes use."""

    VALID = 0
    INVALID = 1
    SUSPENDED = 2


ALLOWED_BITS: Final = frozenset({1, 2, 4, 8})
# Herd privacy: a list is large enough that fetching it reveals little about which pass is
# being checked (draft section 12.2 / 13.4).
MIN_LIST_SIZE: Final = 131_072
# Cap on the decompressed byte array: 16 MiB is 134 million 1-bit entries, far beyond any
# list we publish, yet small enough that a hostile list cannot exhaust a staff device.
DEFAULT_MAX_SIZE: Final = 16 * 1024 * 1024
# The draft recommends the highest compression level; 9 also reproduces its test vectors.
_COMPRESSION_LEVEL: Final = 9
# Random draws before allocate_index falls back to a full scan of the list.
_ALLOCATION_ATTEMPTS: Final = 64
_CLAIM_REQUIRED: Final = frozenset({"bits", "lst"})
_CLAIM_ALLOWED: Final = frozenset({"bits", "lst", "aggregation_uri"})


class StatusList:
    """A mutable status list kept packed, exactly as it is encoded, so lookups are arithmetic."""

    __slots__ = ("_bits", "_data", "_mask", "_size")

    _bits: int
    _data: bytearray
    _mask: int
    _size: int

    def __init__(self, size: int, *, bits: int) -> None:
        """Create a list of `size` entries, all VALID.

        :raises StatusListError: if `bits` is not 1, 2, 4 or 8, or `size` is below 1.
        """
        _check_bits(bits)
        if not _is_int(size) or size < 1:
            raise StatusListError(f"status list size must be a positive integer, got {size!r}")
        self._init(bytearray((size * bits + 7) // 8), bits=bits, size=size)

    def _init(self, data: bytearray, *, bits: int, size: int) -> None:
        self._bits = bits
        self._mask = (1 << bits) - 1
        self._size = size
        self._data = data

    @classmethod
    def from_bytes(cls, data: bytes | bytearray, bits: int) -> StatusList:
        """Wrap an uncompressed byte array; every byte holds ``8 // bits`` entries.

        :raises StatusListError: if `bits` is not allowed or `data` is empty.
        """
        _check_bits(bits)
        if not isinstance(data, bytes | bytearray):
            raise StatusListError("status list bytes must be bytes or bytearray")
        if not data:
            raise StatusListError("status list is empty")
        instance = cls.__new__(cls)
        instance._init(bytearray(data), bits=bits, size=len(data) * 8 // bits)
        return instance

    @classmethod
    def from_encoded(cls, lst: str, bits: int, *, max_size: int = DEFAULT_MAX_SIZE) -> StatusList:
        """Decode an ``lst`` value strictly: refusing odd input beats misreading a revocation.

        `max_size` caps the decompressed byte array, in bytes, so a ZLIB bomb is refused
        before it is inflated. The list has ``len(byte array) * 8 // bits`` entries.

        :raises StatusListError: if `lst` is not canonical unpadded base64url of exactly one
            complete ZLIB stream of a non-empty array within `max_size`, or `bits` is not allowed.
        """
        _check_bits(bits)
        if not _is_int(max_size) or max_size < 1:
            raise StatusListError(f"max_size must be a positive integer, got {max_size!r}")
        compressed = _decode_base64url(lst, max_chars=_max_encoded_chars(max_size))
        data = _inflate(compressed, max_size=max_size)
        return cls.from_bytes(data, bits)

    @classmethod
    def from_claim(cls, claim: object, *, max_size: int = DEFAULT_MAX_SIZE) -> StatusList:
        """Decode a ``status_list`` claim object, refusing any member the draft does not define.

        :raises StatusListError: if the claim is not ``{"bits": int, "lst": str}`` plus an
            optional string ``aggregation_uri``, or its list does not decode.
        """
        if not isinstance(claim, dict):
            raise StatusListError("status_list claim must be a JSON object")
        keys = set(claim)
        if missing := _CLAIM_REQUIRED - keys:
            raise StatusListError(f"status_list claim lacks {', '.join(sorted(missing))}")
        if unknown := keys - _CLAIM_ALLOWED:
            names = ", ".join(sorted(repr(key) for key in unknown))
            raise StatusListError(f"status_list claim has unknown members: {names}")
        bits, lst = claim["bits"], claim["lst"]
        if not _is_int(bits):
            raise StatusListError("status_list bits must be an integer")
        if not isinstance(lst, str):
            raise StatusListError("status_list lst must be a string")
        if "aggregation_uri" in claim and not isinstance(claim["aggregation_uri"], str):
            raise StatusListError("status_list aggregation_uri must be a string")
        return cls.from_encoded(lst, bits, max_size=max_size)

    @property
    def bits(self) -> int:
        """Bits per entry: 1, 2, 4 or 8."""
        return self._bits

    def __len__(self) -> int:
        return self._size

    def get(self, index: int) -> int:
        """Return the status at `index`; on the verifier's hot path, hence plain arithmetic.

        :raises StatusListError: if `index` is not an int in ``range(len(self))``.
        """
        if type(index) is not int or not 0 <= index < self._size:
            raise _index_error(index, self._size)
        position = index * self._bits
        return (self._data[position >> 3] >> (position & 7)) & self._mask

    def set(self, index: int, value: int) -> None:
        """Set the status at `index`.

        :raises StatusListError: if `index` is out of range or `value` does not fit in `bits`.
        """
        if type(index) is not int or not 0 <= index < self._size:
            raise _index_error(index, self._size)
        if not _is_int(value) or not 0 <= value <= self._mask:
            raise StatusListError(
                f"status value {value!r} does not fit in {self._bits} bit(s): "
                f"expected 0..{self._mask}"
            )
        position = index * self._bits
        byte, shift = position >> 3, position & 7
        data = self._data
        data[byte] = (data[byte] & ~(self._mask << shift)) | (int(value) << shift)

    def to_bytes(self) -> bytes:
        """Return a copy of the packed, uncompressed byte array."""
        return bytes(self._data)

    def encode(self) -> str:
        """Return the ``lst`` value: ZLIB at the highest level, then unpadded base64url."""
        compressed = zlib.compress(self._data, _COMPRESSION_LEVEL)
        return b64url_encode(compressed)

    def to_claim(self) -> dict[str, int | str]:
        """Return the ``status_list`` claim object of a Status List Token."""
        return {"bits": self._bits, "lst": self.encode()}

    def to_json(self) -> str:
        """Return the ``status_list`` claim as compact JSON text."""
        return json.dumps(self.to_claim(), separators=(",", ":"))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StatusList):
            return NotImplemented
        return (self._bits, self._size, self._data) == (other._bits, other._size, other._data)

    def __repr__(self) -> str:
        return f"StatusList(size={self._size}, bits={self._bits})"


def allocate_index(
    used: Container[int],
    size: int,
    *,
    rng: random.Random | None = None,
    attempts: int = _ALLOCATION_ATTEMPTS,
) -> int:
    """Pick an unused index uniformly at random: sequential indices would leak issue order.

    Random draws are tried first; should `attempts` of them all hit used indices (the list is
    nearly full), every index is scanned and one free index is chosen uniformly, so the call
    always terminates. `rng` defaults to a fresh :class:`secrets.SystemRandom`.

    :raises StatusListFullError: if every index in ``range(size)`` is in `used`.
    :raises StatusListError: if `size` is not a positive integer.
    """
    if not _is_int(size) or size < 1:
        raise StatusListError(f"status list size must be a positive integer, got {size!r}")
    chooser = secrets.SystemRandom() if rng is None else rng
    for _ in range(attempts):
        index = chooser.randrange(size)
        if index not in used:
            return index
    free = [index for index in range(size) if index not in used]
    if not free:
        raise StatusListFullError(f"all {size} indices of the status list are in use")
    return chooser.choice(free)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_bits(bits: object) -> None:
    if not _is_int(bits) or bits not in ALLOWED_BITS:
        raise StatusListError(f"status list bits must be 1, 2, 4 or 8, got {bits!r}")


def _index_error(index: object, size: int) -> StatusListError:
    if not _is_int(index):
        return StatusListError(f"status list index must be an integer, got {index!r}")
    return StatusListError(f"status list index {index} is outside 0..{size - 1}")


def _max_encoded_chars(max_size: int) -> int:
    # DEFLATE never needs much more than its input (stored blocks add 5 bytes per 64 KiB);
    # allow ample slack, then refuse longer text before spending work on it.
    max_compressed = max_size + max_size // 64 + 1024
    return (max_compressed * 4 + 2) // 3


def _decode_base64url(text: object, *, max_chars: int) -> bytes:
    if not isinstance(text, str):
        raise StatusListError("status list lst must be a string")
    if not text:
        raise StatusListError("status list lst is empty")
    if len(text) > max_chars:
        raise StatusListError("status list lst is longer than any list within the size cap")
    try:
        return b64url_decode(text, what="status list lst")
    except MalformedDataError as exc:
        raise StatusListError(exc.message) from exc


def _inflate(compressed: bytes, *, max_size: int) -> bytes:
    # wbits=15 accepts the ZLIB wrapper only (no gzip, no raw DEFLATE), as the draft requires.
    inflater = zlib.decompressobj(wbits=15)
    try:
        # One byte beyond the cap tells "too large" apart from "exactly at the cap"; output
        # grows as produced, so a bomb stops after max_size + 1 bytes.
        data = inflater.decompress(compressed, max_size + 1)
    except zlib.error as exc:
        raise StatusListError(f"status list lst is not a valid ZLIB stream: {exc}") from exc
    if len(data) > max_size:
        raise StatusListError(f"status list inflates beyond the cap of {max_size} bytes")
    if not inflater.eof:
        raise StatusListError("status list lst ends before its ZLIB stream does")
    if inflater.unused_data:
        raise StatusListError("status list lst has data after its ZLIB stream")
    if not data:
        raise StatusListError("status list is empty")
    return data
