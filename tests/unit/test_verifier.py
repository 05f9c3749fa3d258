"""The offline verifier on genuine passes: verdicts, messages, policies."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.factories import HOLDERS, NOW, City, status_uri
from wallet import verifier as verifier_module
from wallet.errors import BundleError, BundleExpiredError
from wallet.status import INVALID, SUSPENDED
from wallet.tokens import TokenRejected
from wallet.verifier import (
    ADMITTING_REASONS,
    MESSAGES,
    REASONS,
    STATES,
    TONES,
    VerificationResult,
    Verifier,
)


@pytest.mark.parametrize("type_id", ["library", "parking"])
def test_genuine_pass_is_valid_as_qr_text_and_as_bare_jws(city: City, type_id: str) -> None:
    verifier = city.verifier()
    for text in (city.issue(type_id), city.issue_qr(type_id)):
        result = verifier.check(text, now=NOW)
        assert (result.state, result.reason, result.warnings) == ("valid", "ok", ())
        assert result.claims["holder"] == HOLDERS[type_id]
        assert result.claims["pass_type"] == type_id


def test_lower_case_qr_prefix_is_accepted(city: City) -> None:
    text = city.issue_qr("library")
    assert city.verifier().check("wp1" + text[3:], now=NOW).valid


def test_status_decides_revoked_and_suspended(city: City) -> None:
    city.lists[status_uri("parking")].set(7, SUSPENDED)
    city.lists[status_uri("parking")].set(8, INVALID)
    verifier = city.verifier()
    assert verifier.check(city.issue("parking", idx=7), now=NOW).state == "suspended"
    assert verifier.check(city.issue("parking", idx=8), now=NOW).state == "revoked"
    assert verifier.check(city.issue("parking", idx=9), now=NOW).state == "valid"


def test_stale_status_list_is_amber_and_the_policy_decides_only_admit(city: City) -> None:
    verifier = city.verifier()
    later = NOW + timedelta(days=3)  # status list tokens live 2 days
    library = verifier.check(city.issue("library"), now=later)
    assert (library.state, library.reason, library.admit) == ("stale_status", "status_stale", True)
    assert (library.tone, library.valid, library.warnings) == ("amber", False, ())
    assert "veraltet" in library.message_de and "out of date" in library.message_en
    assert library.claims["holder"] == HOLDERS["library"]
    parking = verifier.check(city.issue("parking"), now=later)
    assert (parking.state, parking.reason, parking.admit) == (
        "stale_status",
        "status_stale_closed",
        False,
    )
    assert parking.tone == "amber" and "Nicht anerkennen" in parking.message_de
    assert parking.claims["holder"] == HOLDERS["parking"]


def test_missing_status_list_is_never_plain_valid(city: City) -> None:
    verifier = city.verifier(status_tokens={})
    library = verifier.check(city.issue("library"), now=NOW)  # policy "warn"
    assert (library.state, library.reason, library.admit) == (
        "status_unchecked",
        "status_list_unknown",
        True,
    )
    assert not library.valid and library.tone == "amber"
    assert "nicht geprüft" in library.message_de and "not checked" in library.message_en
    assert library.to_json()["admit"] is True and library.to_json()["state"] == "status_unchecked"
    parking = verifier.check(city.issue("parking"), now=NOW)  # policy "fail_closed"
    assert (parking.state, parking.reason, parking.admit) == (
        "status_unchecked",
        "status_list_unknown_closed",
        False,
    )


def test_only_a_fresh_status_list_gives_valid(city: City) -> None:
    """Walk the clock across a list's expiry: green before, amber after, never green after."""
    verifier = city.verifier()
    token = city.issue("library")
    for hours in range(0, 80, 4):
        result = verifier.check(token, now=NOW + timedelta(hours=hours))
        fresh = hours < 48  # the factory's status list tokens live two days
        assert result.valid == fresh, hours
        assert result.admit  # the library's policy admits amber
        assert result.state == ("valid" if fresh else "stale_status"), hours


def test_admit_is_true_only_for_valid_and_admitting_amber(city: City) -> None:
    city.lists[status_uri("parking")].set(8, INVALID)
    verifier = city.verifier()
    revoked = verifier.check(city.issue("parking", idx=8), now=NOW)
    assert (revoked.state, revoked.admit, revoked.tone) == ("revoked", False, "red")
    assert verifier.check(city.issue("parking"), now=NOW).admit
    assert not verifier.check("WP1123", now=NOW).admit
    assert not VerificationResult.of("invalid", "ok").admit  # a reason only admits in its state


def test_states_and_reasons_are_listed_in_one_place() -> None:
    assert set(TONES) == set(STATES) and set(REASONS.values()) <= set(STATES)
    assert {s for s, tone in TONES.items() if tone == "amber"} == {
        "suspended",  # GESPERRT: for now, not for good
        "stale_status",
        "status_unchecked",
    }
    assert set(MESSAGES) <= set(REASONS)
    assert set(REASONS) >= ADMITTING_REASONS
    assert {REASONS[r] for r in ADMITTING_REASONS} == {"valid", "stale_status", "status_unchecked"}
    # every rejection the token layer can raise has its code and state listed
    rejections = [TokenRejected]
    while rejections:
        cls = rejections.pop()
        rejections.extend(cls.__subclasses__())
        if cls is not TokenRejected:
            assert REASONS[cls.code] == cls.state, cls
    for name in verifier_module.__all__:
        assert hasattr(verifier_module, name), name


def test_expired_pass_shows_its_genuine_claims(city: City) -> None:
    result = city.verifier().check(city.issue("library"), now=NOW + timedelta(days=800))
    assert (result.state, result.reason) == ("expired", "expired")
    assert result.claims["serial"] == "SERIAL0123456789"


def test_every_result_has_both_languages(city: City) -> None:
    for reason, (de, en) in MESSAGES.items():
        assert de and en and de != en, reason
    result = VerificationResult.of("invalid", "something_new")
    assert result.message("de") and result.message("en") and result.message_de != result.message_en
    assert set(result.to_json()) == {
        "state",
        "reason",
        "admit",
        "message",
        "claims",
        "warnings",
        "detail",
    }
    assert "valid" in STATES and len(STATES) == 9


def test_check_never_raises_on_non_text(city: City) -> None:
    verifier = city.verifier()
    for hostile in (None, 42, b"WP1", ["a.b.c"], {"token": 1}):
        result = verifier.check(hostile, now=NOW)
        assert (result.state, result.reason) == ("invalid", "malformed")


def test_load_checks_signature_and_expiry(city: City, tmp_path: Path) -> None:
    bundle, root = city.write_bundle(tmp_path)
    verifier = Verifier.load(bundle, root_key=root, now=NOW)
    assert verifier.check(city.issue_qr("parking"), now=NOW).valid
    with pytest.raises(BundleExpiredError, match="sync a new one"):
        Verifier.load(bundle, root_key=root, now=NOW + timedelta(days=8))
    other = City()
    (tmp_path / "other.pem").write_bytes(other.root.public().pem())
    with pytest.raises(BundleError, match="not signed by the pinned trust root"):
        Verifier.load(bundle, root_key=tmp_path / "other.pem", now=NOW)
    with pytest.raises(BundleError, match="cannot read"):
        Verifier.load(tmp_path / "absent.jwt", root_key=root, now=NOW)
