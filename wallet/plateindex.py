"""The offline plate index: keyed hashes of plates -> zone, state and end, signed by the root.

A scanner device checks a parked car without the network. It must not hold a
list of every resident's car, so the index holds no plate: each entry is the
first 12 bytes of HMAC-SHA256(key, "D-AB 1234") with the permit's zone, state
and end. The key is random for each index and reaches only enrolled devices
(beside the index, never inside the signed part); without it the hashes say
nothing, and a new index retires the old key. The index is signed by the trust
root like the bundle, has a version that only grows and its own expiry.

Entries are packed (``ENTRY`` bytes each, sorted by hash, so their order says
nothing about the order of issue) and base64url-encoded in the ``e`` claim:
hash (12) | state (1: 0 valid, 1 suspended) | end (4: minutes since the epoch,
big-endian) | zone (1: index into the ``zones`` claim).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from wallet.codec import b64url_decode, b64url_encode
from wallet.errors import (
    BundleError,
    BundleExpiredError,
    BundleRollbackError,
    MalformedDataError,
    TokenRejected,
)
from wallet.jws import sign_jws, verify_jws
from wallet.keys import KeyRing, PublicKey, SigningKey

INDEX_TYP = "wallet-plate-index+jwt"
FORMAT = 1
HASH_BYTES = 12  # 96 bits: no collision among a city's permits, and small
_ENTRY = struct.Struct(f">{HASH_BYTES}sBIB")
ENTRY = _ENTRY.size
STATES = ("valid", "suspended")
MAX_ZONES = 255
MAX_INDEX_LENGTH = 16 * 1024 * 1024


@dataclass(frozen=True)
class Permit:
    """One live permit as the index needs it: its plate (stored form), zone, state, end."""

    plate: str
    zone: str
    state: str
    valid_until: datetime


@dataclass(frozen=True)
class Found:
    zone: str
    state: str
    valid_until: datetime


def plate_hash(key: bytes, plate: str) -> bytes:
    """The index's name for a plate (in its stored form, ``D-AB 1234``)."""
    return hmac.new(key, plate.encode("utf-8"), hashlib.sha256).digest()[:HASH_BYTES]


def sign_index(
    permits: Iterable[Permit],
    *,
    key: bytes,
    issuer: str,
    version: int,
    issued_at: datetime,
    expires_at: datetime,
    root: SigningKey,
) -> str:
    """The signed index of ``permits`` under the HMAC ``key`` (which it does not contain)."""
    chosen = list(permits)
    zones = sorted({p.zone for p in chosen})
    if len(zones) > MAX_ZONES:
        raise ValueError(f"an index holds at most {MAX_ZONES} zones")
    where = {zone: i for i, zone in enumerate(zones)}
    packed = sorted(
        _ENTRY.pack(
            plate_hash(key, p.plate),
            STATES.index(p.state),
            min(int(p.valid_until.timestamp() // 60), 2**32 - 1),
            where[p.zone],
        )
        for p in chosen
    )
    claims = {
        "fmt": FORMAT,
        "iss": issuer,
        "ver": version,
        "iat": int(issued_at.timestamp()),
        "exp": int(expires_at.timestamp()),
        "kid": key_id(key),
        "zones": zones,
        "e": b64url_encode(b"".join(packed)),
    }
    return sign_jws(claims, root, typ=INDEX_TYP)


def key_id(key: bytes) -> str:
    """A short public name of an index key, so a device pairs the right key and index."""
    return b64url_encode(hashlib.sha256(b"plate-index-key:" + key).digest()[:9])


@dataclass(frozen=True)
class PlateIndex:
    issuer: str
    version: int
    issued_at: datetime
    expires_at: datetime
    kid: str
    zones: tuple[str, ...]
    entries: bytes

    def __len__(self) -> int:
        return len(self.entries) // ENTRY

    def lookup(self, key: bytes, plate: str) -> list[Found]:
        """The permits of ``plate`` (stored form) in this index; binary search, no scan."""
        if key_id(key) != self.kid:
            raise BundleError("this key does not belong to this plate index; sync again")
        wanted = plate_hash(key, plate)
        low, high = 0, len(self)
        while low < high:  # first entry >= wanted
            middle = (low + high) // 2
            if self._hash(middle) < wanted:
                low = middle + 1
            else:
                high = middle
        found = []
        while low < len(self) and self._hash(low) == wanted:
            _, state, minutes, zone = _ENTRY.unpack_from(self.entries, low * ENTRY)
            found.append(Found(self.zones[zone], STATES[state],
                               datetime.fromtimestamp(minutes * 60, UTC)))  # fmt: skip
            low += 1
        return found

    def _hash(self, i: int) -> bytes:
        return self.entries[i * ENTRY : i * ENTRY + HASH_BYTES]


def verify_index(
    token: object, root: PublicKey, *, now: datetime, held_version: int | None = None
) -> PlateIndex:
    """Check an index against the pinned root, its expiry and the version held.

    :raises BundleError: (a subclass) saying what is wrong.
    """
    try:
        verified = verify_jws(token, KeyRing([root]), typ=INDEX_TYP, max_length=MAX_INDEX_LENGTH)
    except TokenRejected as exc:
        raise BundleError(
            f"the plate index is not signed by the pinned trust root ({exc.code})"
        ) from exc
    claims = verified.payload
    if claims.get("fmt") != FORMAT:
        raise BundleError("the plate index format is unknown; update the app")
    version, issued, expires = claims.get("ver"), claims.get("iat"), claims.get("exp")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (version, issued, expires)):
        raise BundleError("the plate index lacks its version or times")
    assert isinstance(version, int) and isinstance(issued, int) and isinstance(expires, int)
    if now.timestamp() >= expires:
        raise BundleExpiredError("the plate index is out of date; sync before checking plates")
    if held_version is not None and version < held_version:
        raise BundleRollbackError(
            f"the plate index has version {version}, older than the held {held_version}"
        )
    zones, kid, packed = claims.get("zones"), claims.get("kid"), claims.get("e")
    if not isinstance(zones, list) or not all(isinstance(z, str) for z in zones):
        raise BundleError("the plate index's zones must be a list of names")
    if not isinstance(kid, str) or not isinstance(packed, str):
        raise BundleError("the plate index lacks its key id or entries")
    try:  # an index of no permits (a new city, every permit revoked) has no entries
        entries = b64url_decode(packed, what="plate index entries") if packed else b""
    except MalformedDataError as exc:
        raise BundleError("the plate index entries are not base64url") from exc
    if len(entries) % ENTRY:
        raise BundleError("the plate index entries are cut off")
    if entries and (
        max(entries[HASH_BYTES::ENTRY]) >= len(STATES)
        or max(entries[ENTRY - 1 :: ENTRY]) >= len(zones)
    ):
        raise BundleError("the plate index names a state or zone it does not have")
    return PlateIndex(
        issuer=str(claims.get("iss", "")),
        version=version,
        issued_at=datetime.fromtimestamp(issued, UTC),
        expires_at=datetime.fromtimestamp(expires, UTC),
        kid=kid,
        zones=tuple(zones),
        entries=entries,
    )
