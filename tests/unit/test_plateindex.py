"""The offline plate index: keyed hashes, signed by the root, useless without its key."""

from __future__ import annotations

import json
import os
from datetime import timedelta

import pytest

from tests.factories import ISSUER, NOW, City
from wallet.codec import b64url_decode, b64url_encode
from wallet.errors import BundleError, BundleExpiredError, BundleRollbackError
from wallet.jws import sign_jws
from wallet.plateindex import (
    ENTRY,
    HASH_BYTES,
    INDEX_TYP,
    Permit,
    plate_hash,
    sign_index,
    verify_index,
)

END = NOW + timedelta(days=200)
PERMITS = [
    Permit("D-AB 1234", "12", "valid", END),
    Permit("D-AB 1234", "13", "suspended", END),
    Permit("DA-B 1234", "12", "valid", END),
] + [Permit(f"D-XY {n}", "12", "valid", END) for n in range(1, 200)]


@pytest.fixture(scope="module")
def city() -> City:
    return City()


def build(city: City, key: bytes, **kw: object) -> str:
    params: dict[str, object] = {
        "issuer": ISSUER, "version": 7, "issued_at": NOW,
        "expires_at": NOW + timedelta(hours=12), "root": city.root,
    }  # fmt: skip
    params.update(kw)
    return sign_index(PERMITS, key=key, **params)  # type: ignore[arg-type]


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
    with pytest.raises(BundleExpiredError, match="out of date"):
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
