"""The shared corpus of the offline plate index: Python's and the scanner's JavaScript.

Each vector is a signed index a device may be handed (with the pinned root, the
highest index version it holds and its clock), or a plate check against an index
(what the officer typed, the zone, the clock and the HMAC key the device holds),
with the outcome we *intend* — written here by hand per case, never read back from
either implementation. ``tests/corpus/test_plate_index_corpus.py`` runs them through
:mod:`wallet.plateindex`, ``tests/js/plate_index_corpus.test.mjs`` through
``wallet/web/static/scan/verifier/plateindex.js``; both must agree on every one.

An index vector expects ``{"index": "ok", ...}`` (with the version, size and zones)
or the error code of the refusal (``bundle_invalid``, ``bundle_expired``,
``bundle_rollback``). A check vector expects ``PlateCheck.to_json()``, or
``{"error": code}`` (with ``field`` for a plate or zone that cannot be one). Where
the service, checking its database, answers otherwise (times rounded to the minute
in the index), ``online`` says what it answers.

The HMAC keys are fixed test data, written into the JSON as base64url; the root keys
are fresh each time, the expectations are not. Regenerate:
``python -m tests.corpus.plate_index_vectors``
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tests.factories import ISSUER, NOW, City
from tests.security import forge
from wallet.bundle import BUNDLE_TYP
from wallet.codec import b64url_decode, b64url_encode
from wallet.jws import sign_jws
from wallet.keys import KeyRole, generate_key
from wallet.plateindex import (
    ENTRY,
    FORMAT,
    HASH_BYTES,
    INDEX_TYP,
    MAX_INDEX_LENGTH,
    MAX_MINUTES,
    STATES,
    Permit,
    sign_index,
)
from wallet.plates import MAX_ZONE_LENGTH

CORPUS = Path(__file__).with_name("plate_index.json")

KEYS = {
    "main": bytes(range(32)),
    "darmstadt": bytes(range(100, 132)),
    "empty": bytes(range(200, 232)),
    "stranger": bytes(32),  # a key of no index here: a device paired for another
}
ISSUED = NOW - timedelta(hours=1)
EXPIRES = NOW + timedelta(hours=23)
VERSION = 7
END = datetime.fromisoformat("2027-01-31T12:00:00+00:00")
SINCE = NOW - timedelta(days=30)
TOMORROW = datetime.fromisoformat("2026-11-25T00:00:00+00:00")  # before the index expires

MAIN = [
    Permit("D-AB 1234", "12", "valid", END, SINCE),  # the done-when permit
    Permit("M-UC 42", "12", "valid", END, SINCE),  # two zones
    Permit("M-UC 42", "7", "valid", END + timedelta(days=1), SINCE),
    Permit("D-SU 5", "12", "suspended", END, SINCE),
    Permit("D-EX 9", "12", "valid", NOW - timedelta(days=1), NOW - timedelta(days=366)),
    Permit("D-NY 1", "12", "valid", END, TOMORROW),  # starts tomorrow
    Permit("D-ED 8", "12", "valid", NOW, SINCE),  # ends at NOW exactly
    Permit("D-ST 3", "12", "valid", END, NOW),  # starts at NOW exactly
    Permit("D-SE 6", "12", "valid", END, NOW + timedelta(seconds=30)),  # starts mid-minute
    Permit("B-MW 7E", "12", "valid", END, SINCE),  # electric: BMW7E is B-MW or BM-W
    Permit("K-OE 1", "12A", "valid", END, SINCE),  # a zone with a letter
    Permit("D-XY 1", "12", "valid", NOW + timedelta(hours=5, seconds=59), SINCE),  # ends mid-minute
]
DARMSTADT = [
    Permit("D-AB 1234", "12", "valid", END, SINCE),  # Düsseldorf
    Permit("DA-B 1234", "12", "valid", END, SINCE),  # Darmstadt: another car
    Permit("NL 12ABC3", "12", "valid", END, SINCE),  # a Dutch car (stored: sign, plate)
    Permit("PL-WA 1234", "12", "valid", END, SINCE),  # Plauen
    Permit("PL WA1234", "12", "valid", END, SINCE),  # Poland (Warsaw): another car
]

PERMITS = {"main": MAIN, "darmstadt": DARMSTADT, "empty": []}  # the permits of each index


@dataclass
class Corpus:
    roots: dict[str, str] = field(default_factory=dict)  # id -> PEM of a trust-root public key
    indexes: dict[str, str] = field(default_factory=dict)  # id -> signed index
    vectors: list[dict[str, Any]] = field(default_factory=list)

    def index(self, name: str, token: str) -> str:
        self.indexes[name] = token
        return name

    def index_case(
        self,
        name: str,
        index: str,
        expect: str,
        *,
        root: str = "city",
        held_version: int | None = None,
        now: datetime = NOW,
        about: dict[str, Any] | None = None,
        why: str | None = None,
    ) -> None:
        """``why``: words of the refusal's message, the same in both languages."""
        self.vectors.append(
            {
                "name": name,
                "kind": "index",
                "index": index,
                "root": root,
                "now": _unix(now),
                "held_version": held_version,
                "expect": {"index": expect, **(about or {})},
                "why": why,
            }
        )

    def check_case(
        self,
        name: str,
        text: object,
        zone: object,
        expect: dict[str, Any],
        *,
        index: str = "main",
        key: str = "main",
        now: datetime = NOW,
        verified_at: datetime | None = None,
        online: dict[str, Any] | None = None,
    ) -> None:
        vector = {
            "name": name,
            "kind": "check",
            "index": index,
            "key": key,
            "root": "city",
            "verified_at": _unix(verified_at or now),
            "now": _unix(now),
            "text": text,
            "zone": zone,
            "expect": expect,
        }
        if online is not None:
            vector["online"] = online
        self.vectors.append(vector)

    def to_json(self) -> dict[str, Any]:
        return {
            "about": "generated by tests/corpus/plate_index_vectors.py; see its docstring",
            "constants": {
                "typ": INDEX_TYP,
                "format": FORMAT,
                "entry": ENTRY,
                "hash_bytes": HASH_BYTES,
                "states": list(STATES),
                "max_zone_length": MAX_ZONE_LENGTH,
                "max_index_length": MAX_INDEX_LENGTH,
                "max_minutes": MAX_MINUTES,
            },
            "issuer": ISSUER,
            "roots": self.roots,
            "keys": {name: b64url_encode(key) for name, key in KEYS.items()},
            "permits": {name: [_permit(p) for p in chosen] for name, chosen in PERMITS.items()},
            "indexes": self.indexes,
            "vectors": self.vectors,
        }


def _unix(moment: datetime) -> int:
    return int(moment.timestamp())


def _permit(p: Permit) -> dict[str, Any]:
    assert p.valid_from is not None
    return {
        "plate": p.plate,
        "zone": p.zone,
        "state": p.state,
        "valid_from": _unix(p.valid_from),
        "valid_until": _unix(p.valid_until),
    }


def _sign(city: City, permits: list[Permit], key: str, **changes: Any) -> str:
    params: dict[str, Any] = dict(
        key=KEYS[key], issuer=ISSUER, version=VERSION, issued_at=ISSUED, expires_at=EXPIRES
    )
    params.update(changes)
    return sign_index(permits, root=params.pop("root", city.root), **params)


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = json.loads(b64url_decode(token.split(".")[1], what="payload"))
    return claims


def _entries(claims: dict[str, Any]) -> bytearray:
    return bytearray(b64url_decode(claims["e"], what="entries"))


def _resigned(city: City, claims: dict[str, Any], entries: bytes | None = None) -> str:
    """Malformed but signed by the root: what a bug on the server would hand out."""
    if entries is not None:
        claims = dict(claims, e=b64url_encode(bytes(entries)))
    return sign_jws(claims, city.root, typ=INDEX_TYP)


def build() -> Corpus:
    corpus = Corpus()
    city = City()
    corpus.roots["city"] = city.root.public().pem().decode("ascii")
    other = generate_key(role=KeyRole.ROOT, now=NOW - timedelta(days=30))
    corpus.roots["other"] = other.public().pem().decode("ascii")
    main = corpus.index("main", _sign(city, MAIN, "main"))
    corpus.index("darmstadt", _sign(city, DARMSTADT, "darmstadt", version=8))
    corpus.index("empty", _sign(city, PERMITS["empty"], "empty", version=9))
    _indexes(corpus, city, other, main)
    _checks(corpus)
    return corpus


def _indexes(corpus: Corpus, city: City, other: Any, main: str) -> None:
    about = {"version": VERSION, "length": len(MAIN), "zones": ["12", "12A", "7"]}
    unsigned_by_root = "not signed by the pinned trust root"
    corpus.index_case("genuine index", main, "ok", about=about)
    corpus.index_case("genuine index at the held version", main, "ok", held_version=7, about=about)
    corpus.index_case(
        "index older than the held version",
        main,
        "bundle_rollback",
        held_version=8,
        why="older than the held version 8",
    )
    corpus.index_case(
        "index checked against another root",
        main,
        "bundle_invalid",
        root="other",
        why=f"{unsigned_by_root} (unknown_kid)",
    )
    by_other = corpus.index("by-other-root", _sign(city, MAIN, "main", root=other))
    corpus.index_case(
        "index signed by another root", by_other, "bundle_invalid", why=unsigned_by_root
    )
    out_of_date = "expired on"
    corpus.index_case("index at its expiry", main, "bundle_expired", now=EXPIRES, why=out_of_date)
    corpus.index_case(
        "index a second before its expiry",
        main,
        "ok",
        now=EXPIRES - timedelta(seconds=1),
        about=about,
    )
    expired = corpus.index(
        "expired", _sign(city, MAIN, "main", expires_at=NOW - timedelta(hours=1))
    )
    corpus.index_case("expired index", expired, "bundle_expired", why=out_of_date)
    corpus.index_case(
        "index of no permits", "empty", "ok", about={"version": 9, "length": 0, "zones": []}
    )

    token = corpus.indexes[main]
    head, body, signature = token.split(".")
    claims = _claims(token)
    entries = _entries(claims)
    flipped = bytearray(entries)
    flipped[ENTRY + HASH_BYTES + 5] ^= 0x01  # the second permit's end, one minute off
    tampered = f"{head}.{forge.b64url(json.dumps(dict(claims, e=b64url_encode(flipped))).encode())}"
    unsigned = forge.jws(forge.header(city.root.kid, alg="none", typ=INDEX_TYP), claims)
    by_pass_key = forge.jws(
        forge.header(city.key.kid, typ=INDEX_TYP), claims, sign=forge.signer_for(city.key.key)
    )
    for name, index, forged, code in [
        ("entries changed after signing", "tampered", f"{tampered}.{signature}", "bad_signature"),
        ("signature cut off", "cut-signature", f"{head}.{body}.{signature[:-4]}", None),
        ("unsigned index", "unsigned", unsigned, "alg_none"),
        ("index signed with the bundle's typ", "wrong-typ",
         sign_jws(claims, city.root, typ=BUNDLE_TYP), "wrong_typ"),
        ("index signed by a pass key", "by-pass-key", by_pass_key, "unknown_kid"),
        ("a pass token offered as index", "pass-token", city.issue(), "wrong_typ"),
    ]:  # fmt: skip
        why = f"{unsigned_by_root} ({code})" if code else unsigned_by_root
        corpus.index_case(name, corpus.index(index, forged), "bundle_invalid", why=why)

    unknown_format = "format is unknown"
    no_time = "is missing or not a Unix time"
    malformed: list[tuple[str, str, dict[str, Any], bytes | None, str]] = [
        ("index of format 1 (before start times)", "format-1", dict(claims, fmt=1), None,
         unknown_format),
        ("index of a future format", "format-3", dict(claims, fmt=3), None, unknown_format),
        ("format written as 2.0", "format-float", dict(claims, fmt=2.0), None, unknown_format),
        ("format written as true", "format-bool", dict(claims, fmt=True), None, unknown_format),
        ("index without an issuer", "no-issuer", _without(claims, "iss"), None,
         "names no issuer"),
        ("version 0", "version-0", dict(claims, ver=0), None, "positive whole number"),
        ("version as text", "version-text", dict(claims, ver="7"), None, "positive whole number"),
        ("expiry written as a float", "exp-float", dict(claims, exp=float(claims["exp"])), None,
         no_time),
        ("expiry after the year 2514", "exp-far", dict(claims, exp=2**34), None, no_time),
        ("no time of issue", "no-iat", _without(claims, "iat"), None, no_time),
        ("zones not a list", "zones-object", dict(claims, zones={"0": "12"}), None,
         "zones must be a list of names"),
        ("a zone that is a number", "zone-number", dict(claims, zones=["12", 12, "7"]), None,
         "zones must be a list of names"),
        ("no key id", "no-kid", _without(claims, "kid"), None, "lacks its key id or entries"),
        ("no entries", "no-entries", _without(claims, "e"), None, "lacks its key id or entries"),
        ("entries not base64url", "entries-not-b64", dict(claims, e=claims["e"] + "="), None,
         "entries are not base64url"),
        ("entries one byte short", "cut-entries", claims, bytes(entries[:-1]), "cut off"),
        ("a state that does not exist", "state-2", claims, _poke(entries, HASH_BYTES, 2),
         "state or zone it does not have"),
        ("a zone index past the zones", "zone-3", claims, _poke(entries, ENTRY - 1, 3),
         "state or zone it does not have"),
        ("an end after the year 9999", "end-far", claims, _poke(entries, HASH_BYTES + 5, 0xFC),
         "after the year 9999"),
        ("a start after the year 9999", "start-far", claims, _poke(entries, HASH_BYTES + 1, 0xFF),
         "after the year 9999"),
        ("entries out of order", "unsorted", claims, entries[ENTRY:] + entries[:ENTRY],
         "not sorted"),
    ]  # fmt: skip
    for name, index, changed, packed, why in malformed:
        token = _resigned(city, changed, packed)
        corpus.index_case(name, corpus.index(index, token), "bundle_invalid", why=why)


def _without(claims: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in claims.items() if k != name}


def _poke(entries: bytearray, offset: int, value: int) -> bytes:
    changed = bytearray(entries)
    changed[offset] = value
    return bytes(changed)


def _checks(corpus: Corpus) -> None:
    until = END.isoformat()  # "2027-01-31T12:00:00+00:00"
    valid = {"verdict": "valid", "plate": "D-AB 1234", "zones": ["12"], "valid_until": until}
    for name, text in [
        ("as typed without separators", "dab1234"),
        ("with a space", "D AB 1234"),
        ("with an en dash", "D\u2013AB 1234"),
        ("as stored", "D-AB 1234"),
        ("with a Cyrillic A", "D-\u0410B 1234"),
    ]:
        corpus.check_case(f"permit for zone 12 found {name}", text, "12", valid)
    corpus.check_case("zone written with spaces", "D-AB 1234", "  12 ", valid)
    corpus.check_case(
        "the permit is for another zone",
        "D-AB 1234",
        "13",
        {"verdict": "wrong_zone", "plate": "D-AB 1234", "zones": ["12"], "valid_until": None},
    )
    both = ["12", "7"]  # sorted as text
    corpus.check_case(
        "a plate with permits in two zones, checked in one",
        "muc42",
        "7",
        {
            "verdict": "valid",
            "plate": "M-UC 42",
            "zones": both,
            "valid_until": (END + timedelta(days=1)).isoformat(),
        },
    )
    corpus.check_case(
        "a plate with permits in two zones, checked in a third",
        "M-UC 42",
        "9",
        {"verdict": "wrong_zone", "plate": "M-UC 42", "zones": both, "valid_until": None},
    )
    corpus.check_case(
        "suspended permit",
        "D-SU 5",
        "12",
        {"verdict": "suspended", "plate": "D-SU 5", "zones": ["12"], "valid_until": until},
    )
    corpus.check_case(
        "expired permit",
        "D-EX 9",
        "12",
        {
            "verdict": "expired",
            "plate": "D-EX 9",
            "zones": ["12"],
            "valid_until": (NOW - timedelta(days=1)).isoformat(),
        },
    )
    corpus.check_case(
        "permit ending this very second",
        "D-ED 8",
        "12",
        {"verdict": "expired", "plate": "D-ED 8", "zones": ["12"], "valid_until": NOW.isoformat()},
    )
    corpus.check_case(
        "permit ending in a second",
        "D-ED 8",
        "12",
        {"verdict": "valid", "plate": "D-ED 8", "zones": ["12"], "valid_until": NOW.isoformat()},
        now=NOW - timedelta(seconds=1),
    )
    corpus.check_case(
        "permit starting tomorrow is not yet valid",
        "D-NY 1",
        "12",
        {"verdict": "not_yet_valid", "plate": "D-NY 1", "zones": ["12"], "valid_until": until},
    )
    corpus.check_case(
        "permit starting tomorrow, checked tomorrow",
        "D-NY 1",
        "12",
        {"verdict": "valid", "plate": "D-NY 1", "zones": ["12"], "valid_until": until},
        now=TOMORROW,
        verified_at=NOW,
    )
    corpus.check_case(
        "permit starting this very second",
        "D-ST 3",
        "12",
        {"verdict": "valid", "plate": "D-ST 3", "zones": ["12"], "valid_until": until},
    )
    corpus.check_case(
        "permit starting a second from now",
        "D-ST 3",
        "12",
        {"verdict": "not_yet_valid", "plate": "D-ST 3", "zones": ["12"], "valid_until": until},
        now=NOW - timedelta(seconds=1),
    )
    mid_start = NOW + timedelta(seconds=45)
    corpus.check_case(
        "a start within a minute counts from the next minute offline",
        "D-SE 6",
        "12",
        {"verdict": "not_yet_valid", "plate": "D-SE 6", "zones": ["12"], "valid_until": until},
        now=mid_start,
        online={"verdict": "valid", "plate": "D-SE 6", "zones": ["12"], "valid_until": until},
    )
    mid_end = NOW + timedelta(hours=5, seconds=30)
    corpus.check_case(
        "an end within a minute counts from the minute's start offline",
        "D-XY 1",
        "12",
        {
            "verdict": "expired",
            "plate": "D-XY 1",
            "zones": ["12"],
            "valid_until": (NOW + timedelta(hours=5)).isoformat(),
        },
        now=mid_end,
        online={
            "verdict": "valid",
            "plate": "D-XY 1",
            "zones": ["12"],
            "valid_until": (NOW + timedelta(hours=5, seconds=59)).isoformat(),
        },
    )
    corpus.check_case(
        "zone with a letter, typed in lower case",
        "K-OE 1",
        "12a",
        {"verdict": "valid", "plate": "K-OE 1", "zones": ["12A"], "valid_until": until},
    )
    corpus.check_case(
        "two readings, a permit for one of them only",
        "bmw7e",
        "12",
        {"verdict": "valid", "plate": "B-MW 7E", "zones": ["12"], "valid_until": until},
    )
    corpus.check_case(
        "no permit for the plate",
        "D-XY 99",
        "12",
        {"verdict": "unknown", "plate": "D-XY 99", "zones": [], "valid_until": None},
    )
    corpus.check_case(
        "no permit for any reading of what was typed",
        "dxy99",
        "12",
        {"verdict": "unknown", "plate": None, "zones": [], "valid_until": None},
    )
    corpus.check_case(
        "two cars fit what was typed: ambiguous, not a guess",
        "DAB1234",
        "12",
        {"verdict": "ambiguous", "plate": None, "zones": [], "valid_until": None},
        index="darmstadt",
        key="darmstadt",
    )
    corpus.check_case(
        "written with the split, the same plate is one car",
        "DA B 1234",
        "12",
        {"verdict": "valid", "plate": "DA-B 1234", "zones": ["12"], "valid_until": until},
        index="darmstadt",
        key="darmstadt",
    )
    dutch = {"verdict": "valid", "plate": "NL 12ABC3", "zones": ["12"], "valid_until": until}
    for name, typed in (("as stored", "NL 12ABC3"), ("as on the car", "nl 12-abc-3")):
        corpus.check_case(
            f"a foreign plate with its country sign, {name}", typed, "12", dutch,
            index="darmstadt", key="darmstadt",
        )  # fmt: skip
    corpus.check_case(
        "a foreign plate without its country sign is no plate",
        "12-ABC-3",
        "12",
        {"error": "invalid_input", "field": "plate"},
        index="darmstadt",
        key="darmstadt",
    )
    corpus.check_case(
        "Plauen or Poland, both with permits: ambiguous",
        "PL WA 1234",
        "12",
        {"verdict": "ambiguous", "plate": None, "zones": [], "valid_until": None},
        index="darmstadt",
        key="darmstadt",
    )
    corpus.check_case(
        "Poland for sure: a colon after the sign",
        "PL: WA 1234",
        "12",
        {"verdict": "valid", "plate": "PL WA1234", "zones": ["12"], "valid_until": until},
        index="darmstadt",
        key="darmstadt",
    )
    corpus.check_case(
        "an index of no permits knows no plate",
        "D-AB 1234",
        "12",
        {"verdict": "unknown", "plate": "D-AB 1234", "zones": [], "valid_until": None},
        index="empty",
        key="empty",
    )
    corpus.check_case(
        "a key of another index", "D-AB 1234", "12", {"error": "bundle_invalid"}, key="stranger"
    )
    corpus.check_case(
        "the key of another genuine index",
        "D-AB 1234",
        "12",
        {"error": "bundle_invalid"},
        key="darmstadt",
    )
    corpus.check_case(
        "an index that expired since it was verified",
        "D-AB 1234",
        "12",
        {"error": "bundle_expired"},
        now=EXPIRES,
        verified_at=NOW,
    )
    for name, text, zone, where in [
        ("not a plate", "not a plate", "12", "plate"),
        ("a plate that is a number", 1234, "12", "plate"),
        ("no plate", None, "12", "plate"),
        ("an empty zone", "D-AB 1234", "", "zone"),
        ("a zone of spaces", "D-AB 1234", " \t", "zone"),
        ("a zone that is a number", "D-AB 1234", 12, "zone"),
        ("a zone too long", "D-AB 1234", "1" * (MAX_ZONE_LENGTH + 1), "zone"),
    ]:
        corpus.check_case(name, text, zone, {"error": "invalid_input", "field": where})


def main() -> None:
    CORPUS.write_text(json.dumps(build().to_json(), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {CORPUS}")


if __name__ == "__main__":
    main()
