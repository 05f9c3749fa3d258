"""The offline plate index: keyed hashes, signed by the root, useless without its key;
and the one verdict rule a device applies offline and the service online."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import pytest

from tests.factories import ISSUER, NOW, City
from wallet.codec import b64url_decode, b64url_encode
from wallet.errors import BundleError, BundleExpiredError, BundleRollbackError, InputError
from wallet.jws import sign_jws
from wallet.plateindex import (
    ENTRY,
    HASH_BYTES,
    INDEX_TYP,
    MAX_MINUTES,
    Found,
    Permit,
    PlateCheck,
    PlateVerdict,
    judge,
    plate_hash,
    sign_index,
    verify_index,
)

END = NOW + timedelta(days=200)
START = NOW - timedelta(days=100)
PERMITS = [
    Permit("D-AB 1234", "12", "valid", END, START),
    Permit("D-AB 1234", "13", "suspended", END, START),
    Permit("DA-B 1234", "12", "valid", END, START),
] + [Permit(f"D-XY {n}", "12", "valid", END, START) for n in range(1, 200)]


@pytest.fixture(scope="module")
def city() -> City:
    return City()


def build(city: City, key: bytes, permits: list[Permit] = PERMITS, **kw: object) -> str:
    params: dict[str, object] = {
        "issuer": ISSUER, "version": 7, "issued_at": NOW,
        "expires_at": NOW + timedelta(hours=12), "root": city.root,
    }  # fmt: skip
    params.update(kw)
    return sign_index(permits, key=key, **params)  # type: ignore[arg-type]


def claims_of(token: str) -> dict[str, object]:
    claims: dict[str, object] = json.loads(b64url_decode(token.split(".")[1], what="payload"))
    return claims


def test_a_device_with_the_key_finds_each_plates_permits_offline(city: City) -> None:
    key = os.urandom(32)
    index = verify_index(build(city, key), city.root.public(), now=NOW)
    assert len(index) == len(PERMITS) and index.version == 7
    found = sorted((f.zone, f.state) for f in index.lookup(key, "D-AB 1234"))
    assert found == [("12", "valid"), ("13", "suspended")]
    assert [f.valid_until for f in index.lookup(key, "DA-B 1234")] == [
        END.replace(second=0, microsecond=0)
    ]
    assert index.lookup(key, "D-AB 1235") == []
    assert len(index.lookup(key, "D-XY 199")) == 1


def test_the_index_holds_no_plate_and_no_key(city: City) -> None:
    key = os.urandom(32)
    token = build(city, key)
    payload = json.loads(b64url_decode(token.split(".")[1], what="payload"))
    text = json.dumps(payload)
    assert "AB" not in text.replace(payload["e"], "") and "1234" not in text
    entries = b64url_decode(payload["e"], what="entries")
    assert key not in entries and len(entries) == len(PERMITS) * ENTRY
    hashes = [entries[i : i + HASH_BYTES] for i in range(0, len(entries), ENTRY)]
    assert hashes == sorted(hashes)  # sorted by hash: the order of issue does not show


def test_brute_forcing_a_small_plate_space_with_a_guessed_key_finds_nothing(city: City) -> None:
    """Someone with a lost phone's old index but not its key tries every D-XY plate."""
    index = verify_index(build(city, os.urandom(32)), city.root.public(), now=NOW)
    guessed = os.urandom(32)
    stored = {index.entries[i : i + HASH_BYTES] for i in range(0, len(index.entries), ENTRY)}
    tried = [f"D-{a}{b} {n}" for a in "XY" for b in "XY" for n in range(1, 1000)]
    assert not any(plate_hash(guessed, plate) in stored for plate in tried)
    with pytest.raises(BundleError, match="does not belong"):
        index.lookup(guessed, "D-XY 1")


def test_a_new_index_with_a_new_key_retires_the_old_key(city: City) -> None:
    old_key, new_key = os.urandom(32), os.urandom(32)
    new = verify_index(build(city, new_key, version=8), city.root.public(), now=NOW)
    with pytest.raises(BundleError, match="does not belong"):
        new.lookup(old_key, "D-AB 1234")
    assert new.lookup(new_key, "D-AB 1234")


def test_an_index_signed_by_another_root_is_refused(city: City) -> None:
    other = City()
    with pytest.raises(BundleError, match="not signed by the pinned trust root"):
        verify_index(build(other, os.urandom(32)), city.root.public(), now=NOW)


def test_an_older_index_than_the_one_held_is_refused_as_a_rollback(city: City) -> None:
    with pytest.raises(BundleRollbackError):
        verify_index(build(city, os.urandom(32)), city.root.public(), now=NOW, held_version=8)


def test_past_its_freshness_limit_the_index_is_stale(city: City) -> None:
    with pytest.raises(BundleExpiredError, match="expired on"):
        verify_index(build(city, os.urandom(32)), city.root.public(), now=NOW + timedelta(hours=13))


def test_an_index_whose_entries_were_tampered_with_is_refused(city: City) -> None:
    head, payload, signature = build(city, os.urandom(32)).split(".")
    claims = json.loads(b64url_decode(payload, what="payload"))
    claims["zones"] = []
    forged = ".".join([head, b64url_encode(json.dumps(claims).encode()), signature])
    with pytest.raises(BundleError):
        verify_index(forged, city.root.public(), now=NOW)


def test_a_signed_index_that_names_a_zone_it_lacks_is_refused_not_a_crash(city: City) -> None:
    """Signed by the root but malformed (a bug on the server): a verdict, never an IndexError."""
    payload = build(city, os.urandom(32)).split(".")[1]
    claims = json.loads(b64url_decode(payload, what="payload"))
    claims["zones"] = ["12"]  # the entries also point at zone 13
    with pytest.raises(BundleError, match="state or zone it does not have"):
        verify_index(sign_jws(claims, city.root, typ=INDEX_TYP), city.root.public(), now=NOW)


def test_an_index_of_no_permits_is_valid_and_finds_nothing(city: City) -> None:
    key = os.urandom(32)
    token = sign_index([], key=key, issuer=ISSUER, version=1, issued_at=NOW,
                       expires_at=NOW + timedelta(hours=1), root=city.root)  # fmt: skip
    index = verify_index(token, city.root.public(), now=NOW)
    assert len(index) == 0 and index.lookup(key, "D-AB 1234") == []


def test_a_permit_starting_tomorrow_is_not_valid_offline(city: City) -> None:
    """Format 1 held no start: a device called a permit valid the day before it began."""
    key, tomorrow = os.urandom(32), NOW + timedelta(days=1)
    permits = [Permit("D-AB 1234", "12", "valid", END, tomorrow)]
    token = build(city, key, permits, expires_at=NOW + timedelta(days=2))
    index = verify_index(token, city.root.public(), now=NOW)
    assert index.check(key, "dab1234", "12", now=NOW).verdict is PlateVerdict.NOT_YET_VALID
    assert index.check(key, "dab1234", "12", now=tomorrow).verdict is PlateVerdict.VALID
    assert index.lookup(key, "D-AB 1234") == [Found("12", "valid", tomorrow, END)]


def test_times_round_to_the_minute_never_in_the_cars_favour(city: City) -> None:
    """Entries hold minutes: the start rounds up and the end down, so the device never
    says valid in a second the service would not."""
    key = os.urandom(32)
    start, end = NOW + timedelta(seconds=1), NOW + timedelta(hours=2, seconds=59)
    index = verify_index(build(city, key, [Permit("D-AB 1", "12", "valid", end, start)]),
                         city.root.public(), now=NOW)  # fmt: skip
    (found,) = index.lookup(key, "D-AB 1")
    assert (found.valid_from, found.valid_until) == (
        NOW + timedelta(minutes=1),
        NOW + timedelta(hours=2),
    )


def test_an_entry_is_hash_state_start_end_zone(city: City) -> None:
    """The format both verifiers read: 22 bytes, big-endian minutes (tests/corpus too)."""
    key = os.urandom(32)
    token = build(city, key, [Permit("D-AB 1", "13", "suspended", END, START),
                              Permit("D-AB 2", "12", "valid", END, START)])  # fmt: skip
    entries = b64url_decode(str(claims_of(token)["e"]), what="entries")
    assert ENTRY == 22 and len(entries) == 2 * ENTRY
    mine = next(entries[i : i + ENTRY] for i in range(0, len(entries), ENTRY)
                if entries[i : i + HASH_BYTES] == plate_hash(key, "D-AB 1"))  # fmt: skip
    assert mine[HASH_BYTES] == 1  # suspended
    assert int.from_bytes(mine[13:17], "big") * 60 == START.timestamp()
    assert int.from_bytes(mine[17:21], "big") * 60 == END.timestamp()
    assert mine[21] == 1  # zones ["12", "13"]


def test_an_index_of_the_old_format_is_refused_not_misread(city: City) -> None:
    claims = claims_of(build(city, os.urandom(32)))
    claims["fmt"] = 1
    with pytest.raises(BundleError, match="format is unknown"):
        verify_index(sign_jws(claims, city.root, typ=INDEX_TYP), city.root.public(), now=NOW)


def test_a_time_past_what_a_date_can_show_is_clamped_not_a_crash(city: City) -> None:
    key, last = os.urandom(32), datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    index = verify_index(build(city, key, [Permit("D-AB 1", "12", "valid", last, START)]),
                         city.root.public(), now=NOW)  # fmt: skip
    answer = index.check(key, "D-AB 1", "12", now=NOW).to_json()
    assert answer["valid_until"] == "9999-12-31T23:59:00+00:00"
    assert int(datetime(9999, 12, 31, 23, 59, tzinfo=UTC).timestamp()) == MAX_MINUTES * 60


def test_the_device_checks_a_typed_plate_as_the_service_does(city: City) -> None:
    key = os.urandom(32)
    index = verify_index(build(city, key), city.root.public(), now=NOW)
    until = END.replace(second=0, microsecond=0)
    valid = PlateCheck(PlateVerdict.VALID, "DA-B 1234", ("12",), until)
    assert index.check(key, "DA B 1234", " 12 ", now=NOW) == valid
    assert index.check(key, "DAB1234", "12", now=NOW) == PlateCheck(PlateVerdict.AMBIGUOUS)
    answer = index.check(key, "d-ab 1234", "13", now=NOW)
    assert answer == PlateCheck(PlateVerdict.SUSPENDED, "D-AB 1234", ("12", "13"), until)
    with pytest.raises(InputError) as raised:
        index.check(key, "not a plate", "12", now=NOW)
    assert raised.value.field == "plate"
    with pytest.raises(InputError) as raised:
        index.check(key, "D-AB 1234", "", now=NOW)
    assert raised.value.field == "zone"


def test_a_device_with_another_indexs_key_or_a_stale_index_checks_nothing(city: City) -> None:
    key = os.urandom(32)
    index = verify_index(build(city, key), city.root.public(), now=NOW)
    with pytest.raises(BundleError, match="does not belong"):
        index.check(os.urandom(32), "D-AB 1234", "12", now=NOW)
    with pytest.raises(BundleExpiredError):  # verified this morning, checked tonight
        index.check(key, "D-AB 1234", "12", now=NOW + timedelta(hours=12))


def test_judge_never_guesses_between_two_cars_and_names_every_zone() -> None:
    """The rule itself, as services.plate_checks feeds it rows of the database."""
    found = Found("7", "valid", START, END)
    two_cars = {"D-AB 1234": [found], "DA-B 1234": [found]}
    assert judge(two_cars, "7", now=NOW) == PlateCheck(PlateVerdict.AMBIGUOUS)
    one_car = {"D-AB 1234": [found, Found("12", "valid", START, END)], "DA-B 1234": []}
    assert judge(one_car, "9", now=NOW) == PlateCheck(
        PlateVerdict.WRONG_ZONE, "D-AB 1234", ("12", "7")
    )
    assert judge({"D-AB 1234": [], "DA-B 1234": []}, "7", now=NOW) == PlateCheck(
        PlateVerdict.UNKNOWN
    )
    assert judge({"D-AB 1234": []}, "7", now=NOW).plate == "D-AB 1234"
    assert judge(one_car, "7", now=END).verdict is PlateVerdict.EXPIRED


def test_an_index_of_50000_permits_stays_under_2_mb(city: City) -> None:
    """A phone syncs it over a weak connection: 22-byte entries, base64url twice (the
    claim, then the JWS payload) are 1.96 MB."""
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
    permits = [Permit(f"D-{letters[n % 23]}{letters[n // 23 % 23]} {n % 9973 + 1}",
                      str(n % 39 + 1), "valid", END, START) for n in range(50_000)]  # fmt: skip
    assert len(build(city, os.urandom(32), permits)) <= 2_000_000
