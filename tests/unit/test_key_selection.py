"""Which key signs when: a pure function of the keys and the time, and staged rotations."""

from __future__ import annotations

import random
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.factories import NOW, City
from wallet.errors import SigningKeyError
from wallet.keys import (
    KeyPhase,
    KeyRole,
    KeyState,
    PublicKey,
    check_takeover,
    generate_key,
    signing_key_at,
)
from wallet.keystore import KeyStore

TYPES = frozenset({"library", "parking"})
TAKEOVER = NOW + timedelta(days=8)
WEEK = timedelta(days=7)
ONE_SECOND = timedelta(seconds=1)


def staged_pair() -> tuple[PublicKey, PublicKey]:
    """An old key ending at TAKEOVER and a new one starting then (a staged rotation)."""
    old = generate_key(pass_types=TYPES, now=NOW - timedelta(days=300))
    new = generate_key(pass_types=TYPES, now=NOW, not_before=TAKEOVER)
    return old.with_info(not_after=TAKEOVER).public(), new.public()


def signer(keys: list[PublicKey], now: datetime, pass_type: str = "library") -> str | None:
    found = signing_key_at(keys, role=KeyRole.PASS, pass_type=pass_type, now=now)
    return None if found is None else found.kid


def test_the_old_key_signs_until_the_takeover_and_the_new_one_from_it() -> None:
    old, new = staged_pair()
    keys = [old, new]
    assert signer(keys, NOW) == old.kid
    assert signer(keys, TAKEOVER - timedelta(microseconds=1)) == old.kid
    assert signer(keys, TAKEOVER) == new.kid  # both windows hold the instant: the later one wins
    assert signer(keys, TAKEOVER + ONE_SECOND) == new.kid
    assert signer(keys, TAKEOVER + timedelta(days=400)) == new.kid


def test_the_choice_depends_on_the_keys_and_the_time_only_never_on_their_order() -> None:
    """Every server lists its folder in its own order: the same keys give the same signer."""
    old, new = staged_pair()
    other = generate_key(pass_types={"library"}, now=NOW - timedelta(days=30)).public()
    moments = [TAKEOVER + timedelta(minutes=m) for m in range(-90, 90, 7)]
    expected = [signer([old, new, other], t) for t in moments]
    assert expected.count(new.kid) > 0 and expected.count(other.kid) > 0  # both sides tested
    shuffled = [old, new, other]
    for seed in range(20):
        random.Random(seed).shuffle(shuffled)
        assert [signer(shuffled, t) for t in moments] == expected


def test_the_switch_happens_once_and_never_back() -> None:
    old, new = staged_pair()
    seen = [signer([old, new], TAKEOVER + timedelta(seconds=s)) for s in range(-300, 300)]
    assert seen == [old.kid] * 300 + [new.kid] * 300


def test_a_staged_key_takes_over_only_the_types_it_may_sign() -> None:
    old, new = staged_pair()
    library_only = replace(new, info=replace(new.info, pass_types=frozenset({"library"})))
    after = TAKEOVER + ONE_SECOND
    assert signer([old, library_only], after, "library") == library_only.kid
    assert signer([old, library_only], after, "parking") is None  # the old key's window is over


def test_a_revoked_or_retired_staged_key_never_signs() -> None:
    old, new = staged_pair()
    for state in (KeyState.REVOKED, KeyState.RETIRED):
        gone = replace(new, info=replace(new.info, state=state))
        assert signer([old, gone], TAKEOVER - ONE_SECOND) == old.kid
        assert signer([old, gone], TAKEOVER + ONE_SECOND) is None


def test_phases_read_the_state_against_the_window() -> None:
    old, new = staged_pair()
    assert new.info.phase(NOW) is KeyPhase.STAGED
    assert new.info.phase(TAKEOVER) is KeyPhase.ACTIVE
    assert old.info.phase(TAKEOVER) is KeyPhase.ACTIVE
    assert old.info.phase(TAKEOVER + ONE_SECOND) is KeyPhase.RETIRED
    revoked = replace(new.info, state=KeyState.REVOKED)
    assert revoked.phase(NOW) is KeyPhase.REVOKED


# -- when a staged key may take over -----------------------------------------------


def test_the_takeover_must_leave_every_bundle_from_before_time_to_expire() -> None:
    earliest = NOW + WEEK + timedelta(hours=1)
    assert check_takeover(earliest, now=NOW, bundle_lifetime=WEEK) == earliest
    with pytest.raises(SigningKeyError, match="too soon") as caught:
        check_takeover(earliest - ONE_SECOND, now=NOW, bundle_lifetime=WEEK)
    message = caught.value.message
    assert "WALLET_BUNDLE_LIFETIME" in message and "7 days" in message
    assert f"{earliest:%Y-%m-%d %H:%M:%S} UTC" in message
    day = timedelta(days=1)  # a shorter bundle life allows an earlier takeover
    assert check_takeover(NOW + day + timedelta(hours=1), now=NOW, bundle_lifetime=day)


def test_a_takeover_in_the_past_or_now_is_refused() -> None:
    for at in (NOW - timedelta(days=1), NOW):
        with pytest.raises(SigningKeyError, match="in the past"):
            check_takeover(at, now=NOW, bundle_lifetime=WEEK)


def test_a_takeover_more_than_a_year_ahead_is_refused() -> None:
    with pytest.raises(SigningKeyError, match="more than a year"):
        check_takeover(NOW + timedelta(days=400), now=NOW, bundle_lifetime=WEEK)


def test_the_takeover_is_kept_in_utc_to_the_second() -> None:
    """Key metadata holds whole seconds: the key in memory must say what the file says."""
    from datetime import timezone

    berlin = timezone(timedelta(hours=1))
    at = datetime(2026, 12, 3, 10, 0, 0, 750_000, tzinfo=berlin)
    taken = check_takeover(at, now=NOW, bundle_lifetime=WEEK)
    assert taken == datetime(2026, 12, 3, 9, 0, 0, tzinfo=UTC) and taken.tzinfo is UTC


# -- the keys folder ----------------------------------------------------------------


def folder_with_one_key(tmp_path: Path) -> tuple[KeyStore, PublicKey]:
    store = KeyStore(tmp_path / "app1", passphrase=None, dev_mode=True)
    key = store.generate(alg="ES256", role=KeyRole.PASS, pass_types=TYPES, now=NOW - WEEK * 40)
    return store, key.public()


def test_every_server_with_a_copy_of_the_folder_signs_with_the_same_key(tmp_path: Path) -> None:
    first, old = folder_with_one_key(tmp_path)
    new = first.rotate(old.kid, alg=None, now=NOW, at=TAKEOVER)
    copies = [first]
    for name in ("app2", "app3"):
        shutil.copytree(first.folder, tmp_path / name)
        copies.append(KeyStore(tmp_path / name, passphrase=None, dev_mode=True))
    for moment, expected in (
        (NOW, old.kid),
        (TAKEOVER - ONE_SECOND, old.kid),
        (TAKEOVER, new.kid),
        (TAKEOVER + timedelta(days=30), new.kid),
    ):
        for type_id in TYPES:
            picked = {s.current_signing_key(type_id, now=moment).kid for s in copies}
            assert picked == {expected}, (moment, type_id)


def test_staging_publishes_the_new_key_and_ends_the_old_ones_window(tmp_path: Path) -> None:
    store, old = folder_with_one_key(tmp_path)
    new = store.rotate(old.kid, alg="EdDSA", now=NOW, at=TAKEOVER)
    assert new.info.alg == "EdDSA" and new.info.pass_types == TYPES
    assert new.info.not_before == TAKEOVER and new.info.created == NOW
    on_disk = {k.kid: k.info for k in store.public_keys()}
    assert on_disk[new.kid].not_before == TAKEOVER
    assert on_disk[old.kid].state is KeyState.ACTIVE and on_disk[old.kid].not_after == TAKEOVER


def test_a_key_with_a_staged_successor_cannot_be_rotated_again(tmp_path: Path) -> None:
    store, old = folder_with_one_key(tmp_path)
    new = store.rotate(old.kid, alg=None, now=NOW, at=TAKEOVER)
    with pytest.raises(SigningKeyError, match=f"already hands over to the staged key {new.kid}"):
        store.rotate(old.kid, alg=None, now=NOW, at=TAKEOVER + timedelta(days=1))
    with pytest.raises(SigningKeyError, match="already hands over"):
        store.rotate(old.kid, alg=None, now=NOW)
    with pytest.raises(SigningKeyError, match="is staged"):
        store.rotate(new.kid, alg=None, now=NOW)
    assert len(store.public_keys()) == 2


def test_once_the_staged_key_is_retired_the_old_key_can_be_rotated_again(tmp_path: Path) -> None:
    store, old = folder_with_one_key(tmp_path)
    new = store.rotate(old.kid, alg=None, now=NOW, at=TAKEOVER)
    store.retire(new.kid, now=NOW)
    assert not store.staged_keys(now=NOW)
    assert store.current_signing_key("parking", now=TAKEOVER + ONE_SECOND).kid == old.kid
    later = store.rotate(old.kid, alg=None, now=NOW, at=TAKEOVER + timedelta(days=1))
    assert store.current_signing_key("parking", now=TAKEOVER + timedelta(days=1)).kid == later.kid
    store.retire(later.kid, now=NOW)
    newer = store.rotate(old.kid, alg=None, now=NOW + ONE_SECOND)
    assert store.current_signing_key("parking", now=TAKEOVER + ONE_SECOND).kid == newer.kid


def test_a_staged_rotation_needs_a_time_ahead(tmp_path: Path) -> None:
    store, old = folder_with_one_key(tmp_path)
    with pytest.raises(SigningKeyError, match="after now"):
        store.rotate(old.kid, alg=None, now=NOW, at=NOW)
    assert [k.kid for k in store.public_keys()] == [old.kid]


def test_a_key_that_ends_before_the_takeover_is_not_staged(tmp_path: Path) -> None:
    store = KeyStore(tmp_path, passphrase=None, dev_mode=True)
    short = store.generate(
        alg="ES256", role=KeyRole.PASS, pass_types=TYPES, now=NOW, not_after=NOW + WEEK
    )
    with pytest.raises(SigningKeyError, match="stops signing at"):
        store.rotate(short.kid, alg=None, now=NOW, at=TAKEOVER)
    assert len(store.public_keys()) == 1


# -- what a device makes of it -------------------------------------------------------


def test_a_pass_the_old_key_signs_after_the_takeover_is_refused_offline() -> None:
    """A server that missed the copy of the folder goes on signing with the old key:
    devices that synced after the staging refuse those passes (the window is closed)."""
    city = City(now=TAKEOVER + timedelta(hours=1))
    old = city.set_key_info(city.key, not_after=TAKEOVER)
    new = city.add_key(now=NOW, not_before=TAKEOVER)
    verifier = city.verifier()
    late = city.issue(key=replace(old, info=replace(old.info, not_after=None)), issued_at=city.now)
    assert verifier.check(city.issue(key=new, issued_at=city.now), now=city.now).state == "valid"
    assert verifier.check(city.issue(issued_at=TAKEOVER - ONE_SECOND), now=city.now).valid
    refused = verifier.check(late, now=city.now)
    assert refused.state == "invalid" and refused.reason == "key_window"
