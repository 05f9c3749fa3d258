"""The offline plate index, and the one verdict rule for a plate, online and offline.

A scanner device checks a parked car without the network. It must not hold a
list of every resident's car, so the index holds no plate: each entry is the
first 12 bytes of HMAC-SHA256(key, "D-AB 1234") with the permit's zone, state,
start and end. The key is random for each index and reaches only enrolled devices
(beside the index, never inside the signed part); without it the hashes say
nothing, and a new index retires the old key. The index is signed by the trust
root like the bundle, has a version that only grows and its own expiry.

Entries are packed (``ENTRY`` = 22 bytes each, sorted by hash, so their order says
nothing about the order of issue) and base64url-encoded in the ``e`` claim
(format 2):

    hash (12) | state (1: 0 valid, 1 suspended) | start (4) | end (4) | zone (1)

start and end are minutes since the epoch, unsigned big-endian; the start is
rounded up and the end down to the minute, so the device never calls a permit
valid at a moment the service would not. zone is an index into the ``zones`` claim.
50,000 permits are 1.1 MB of entries, 1.47 MB as the base64url claim and 1.96 MB
as the JWS (whose payload is base64url again): under the 2 MB a phone syncs.

:func:`judge` is the verdict over a plate's readings and the permits found for
each, the same for the service's database (services.plate_checks) and for this
index (:meth:`PlateIndex.check`); the scanner's JavaScript twin is
``wallet/web/static/scan/verifier/plateindex.js``, and both pass
``tests/corpus/plate_index.json``.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from wallet.codec import b64url_decode, b64url_encode
from wallet.errors import (
    BundleError,
    BundleExpiredError,
    InputError,
    MalformedDataError,
)
from wallet.jws import sign_jws
from wallet.keys import PublicKey, SigningKey
from wallet.plates import lookup_forms, normalise_zone
from wallet.rootsigned import verify_root_signed

INDEX_TYP = "wallet-plate-index+jwt"
FORMAT = 2
HASH_BYTES = 12  # 96 bits: no collision among a city's permits, and small
_ENTRY = struct.Struct(f">{HASH_BYTES}sBIIB")
ENTRY = _ENTRY.size
STATES = ("valid", "suspended")
MAX_ZONES = 255
MAX_INDEX_LENGTH = 16 * 1024 * 1024
# The last minute a datetime (and so PlateCheck.to_json) can show: 9999-12-31 23:59 UTC.
MAX_MINUTES = 4_223_371_679


class PlateVerdict(StrEnum):
    VALID = "valid"
    WRONG_ZONE = "wrong_zone"  # a permit, but for another zone
    SUSPENDED = "suspended"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    UNKNOWN = "unknown"  # no live permit for this plate
    AMBIGUOUS = "ambiguous"  # several cars fit what was typed


@dataclass(frozen=True)
class PlateCheck:
    """What an officer beside the car learns: never the holder, the serial or the pass."""

    verdict: PlateVerdict
    plate: str | None = None  # the plate as read (what the officer typed, normalised)
    zones: tuple[str, ...] = ()  # the zones the plate has a live permit for
    valid_until: datetime | None = None  # of the permit the verdict is about

    def to_json(self) -> dict[str, object]:
        return {
            "verdict": self.verdict.value,
            "plate": self.plate,
            "zones": list(self.zones),
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
        }


@dataclass(frozen=True)
class Permit:
    """One live permit as the index needs it: its plate (stored form), zone, state, times.

    ``valid_from`` None: valid since before any index (the epoch)."""

    plate: str
    zone: str
    state: str
    valid_until: datetime
    valid_from: datetime | None = None


@dataclass(frozen=True)
class Found:
    """One live permit of a plate, as the verdict needs it (from the database or the index)."""

    zone: str
    state: str
    valid_from: datetime
    valid_until: datetime


def plate_readings(text: object) -> list[str]:
    """The stored form of every plate ``text`` can stand for (:func:`wallet.plates.lookup_forms`).

    :raises InputError: (field ``plate``) it stands for none.
    """
    found = lookup_forms(text)
    if not found:
        raise InputError(
            "type the plate as it is written on the car, for example D-AB 1234", field="plate"
        )
    return found


def judge(hits: Mapping[str, Sequence[Found]], zone: object, *, now: datetime) -> PlateCheck:
    """The verdict for a car parked in ``zone``, given for every reading of what the
    officer typed (display form, in :func:`readings` order) the live permits found.

    Permits for more than one reading: ambiguous, never a guess. One live permit per
    plate and zone, so the one in ``zone`` (if any) is the permit the verdict is about.
    """
    where = normalise_zone(zone)
    matching = {display: found for display, found in hits.items() if found}
    if len(matching) > 1:
        return PlateCheck(PlateVerdict.AMBIGUOUS)
    if not matching:
        return PlateCheck(PlateVerdict.UNKNOWN, plate=next(iter(hits)) if len(hits) == 1 else None)
    ((display, found),) = matching.items()
    zones = tuple(sorted({f.zone for f in found}))
    here = [f for f in found if f.zone == where]
    if not here:
        return PlateCheck(PlateVerdict.WRONG_ZONE, plate=display, zones=zones)
    permit = here[0]
    return PlateCheck(_state(permit, now), display, zones, permit.valid_until)


def _state(permit: Found, now: datetime) -> PlateVerdict:
    if permit.state == "suspended":
        return PlateVerdict.SUSPENDED
    if permit.valid_until <= now:
        return PlateVerdict.EXPIRED
    if permit.valid_from > now:
        return PlateVerdict.NOT_YET_VALID
    return PlateVerdict.VALID


def plate_hash(key: bytes, plate: str) -> bytes:
    """The index's name for a plate (in its stored form, ``D-AB 1234``)."""
    return hmac.new(key, plate.encode("utf-8"), hashlib.sha256).digest()[:HASH_BYTES]


def _minutes(moment: datetime | None, rounding: Callable[[float], int]) -> int:
    if moment is None:
        return 0
    return max(0, min(rounding(moment.timestamp() / 60), MAX_MINUTES))


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
            _minutes(p.valid_from, math.ceil),  # never valid earlier than the service says
            _minutes(p.valid_until, math.floor),  # nor later
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

    def check(self, key: bytes, text: object, zone: object, *, now: datetime) -> PlateCheck:
        """The verdict for the plate ``text`` (as typed) parked in ``zone``, offline: the
        same :func:`judge` as the service's online check, over this index's permits.

        :raises BundleError: the key is not this index's (``bundle_invalid``), or the
            index expired since it was verified (``bundle_expired``).
        :raises InputError: ``text`` is no plate or ``zone`` no zone (``field`` says which).
        """
        self._check_key(key)
        if now >= self.expires_at:
            raise BundleExpiredError("the plate index is out of date; sync before checking plates")
        found = plate_readings(text)
        where = normalise_zone(zone)
        return judge({plate: self.lookup(key, plate) for plate in found}, where, now=now)

    def lookup(self, key: bytes, plate: str) -> list[Found]:
        """The permits of ``plate`` (stored form) in this index; binary search, no scan."""
        self._check_key(key)
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
            _, state, start, end, zone = _ENTRY.unpack_from(self.entries, low * ENTRY)
            found.append(Found(self.zones[zone], STATES[state], _moment(start), _moment(end)))
            low += 1
        return found

    def _check_key(self, key: bytes) -> None:
        if key_id(key) != self.kid:
            raise BundleError("this key does not belong to this plate index; sync again")

    def _hash(self, i: int) -> bytes:
        return self.entries[i * ENTRY : i * ENTRY + HASH_BYTES]


def _moment(minutes: int) -> datetime:
    return datetime.fromtimestamp(minutes * 60, UTC)


def verify_index(
    token: object, root: PublicKey, *, now: datetime, held_version: int | None = None
) -> PlateIndex:
    """Check an index against the pinned root, its expiry and the version held.

    :raises BundleError: (a subclass) saying what is wrong.
    """
    signed = verify_root_signed(
        token, root, typ=INDEX_TYP, max_length=MAX_INDEX_LENGTH, fmt=FORMAT,
        what="the plate index", when_expired="sync before checking plates", now=now,
        held_version=held_version,
    )  # fmt: skip
    claims = signed.payload
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
    _vet_entries(entries, len(zones))
    return PlateIndex(
        issuer=signed.issuer,
        version=signed.version,
        issued_at=signed.issued_at,
        expires_at=signed.expires_at,
        kid=kid,
        zones=tuple(zones),
        entries=entries,
    )


def _vet_entries(entries: bytes, zones: int) -> None:
    """Signed by the root but malformed (a bug on the server): refused here, so a lookup
    never fails half-way nor misses a permit."""
    previous = b""
    for digest, state, start, end, zone in _ENTRY.iter_unpack(entries):
        if state >= len(STATES) or zone >= zones:
            raise BundleError("the plate index names a state or zone it does not have")
        if start > MAX_MINUTES or end > MAX_MINUTES:
            raise BundleError("the plate index names a time after the year 9999")
        if digest < previous:
            raise BundleError("the plate index entries are not sorted; lookups would miss")
        previous = digest
