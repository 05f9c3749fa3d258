"""The offline verifier on genuine passes: verdicts, messages, policies."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.factories import HOLDERS, NOW, City, status_uri
from wallet.errors import BundleError, BundleExpiredError
from wallet.status import INVALID, SUSPENDED
from wallet.verifier import MESSAGES, STATES, VerificationResult, Verifier


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


def test_stale_status_policy_is_the_pass_types(city: City) -> None:
    verifier = city.verifier()
    later = NOW + timedelta(days=3)  # status list tokens live 2 days
    library = verifier.check(city.issue("library"), now=later)
    assert (library.state, library.warnings) == ("valid", ("status_stale",))
    assert "veraltet" in library.message_de and "out of date" in library.message_en
    parking = verifier.check(city.issue("parking"), now=later)
    assert (parking.state, parking.reason) == ("stale_status", "status_stale_closed")
    assert parking.claims["holder"] == HOLDERS["parking"]


def test_missing_status_list_follows_the_stale_policy(city: City) -> None:
    verifier = city.verifier(status_tokens={})
    assert verifier.check(city.issue("parking"), now=NOW).state == "stale_status"
    library = verifier.check(city.issue("library"), now=NOW)
    assert (library.state, library.warnings) == ("valid", ("status_list_unknown",))


def test_expired_pass_shows_its_genuine_claims(city: City) -> None:
    result = city.verifier().check(city.issue("library"), now=NOW + timedelta(days=800))
    assert (result.state, result.reason) == ("expired", "expired")
    assert result.claims["serial"] == "SERIAL0123456789"


def test_every_result_has_both_languages(city: City) -> None:
    for reason, (de, en) in MESSAGES.items():
        assert de and en and de != en, reason
    result = VerificationResult.of("invalid", "something_new")
    assert result.message("de") and result.message("en") and result.message_de != result.message_en
    assert set(result.to_json()) == {"state", "reason", "message", "claims", "warnings", "detail"}
    assert "valid" in STATES and len(STATES) == 8


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
