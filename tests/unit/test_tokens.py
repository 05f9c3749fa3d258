"""Pass tokens and status list tokens: what we sign is what verifies."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from tests.factories import HOLDERS, ISSUER, NOW, City, status_uri
from wallet.errors import (
    SigningKeyError,
    StatusListSubjectError,
)
from wallet.keys import KeyRing, KeyState
from wallet.status import INVALID
from wallet.tokens import (
    PASS_TYP,
    STATUS_LIST_TYP,
    new_serial,
    sign_pass_token,
    verify_pass_token,
    verify_status_list_token,
)


def segments(token: str) -> list[dict[str, object]]:
    return [
        json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        for part in token.split(".")[:2]
    ]


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_pass_token_round_trip(city: City, alg: str) -> None:
    key = city.add_key(alg=alg)
    token = city.issue("parking", key=key, idx=99)
    claims = verify_pass_token(token, KeyRing(city.public_keys()), issuer=ISSUER, now=NOW)
    assert claims.serial == "SERIAL0123456789" and claims.pass_type == "parking"
    assert claims.holder == HOLDERS["parking"]
    assert (claims.status_idx, claims.status_uri) == (99, status_uri("parking"))
    assert claims.kid == key.kid
    assert claims.expires_at - claims.issued_at == timedelta(days=365)


def test_token_header_is_explicitly_typed_and_minimal(city: City) -> None:
    header, payload = segments(city.issue("library"))
    assert header == {"alg": "ES256", "kid": city.key.kid, "typ": PASS_TYP}
    assert set(payload) == {"iss", "sub", "pt", "iat", "exp", "h", "status"}
    assert payload["status"] == {"status_list": {"idx": 4711, "uri": status_uri("library")}}


def test_not_before_is_only_written_when_the_pass_starts_later(city: City) -> None:
    start = NOW + timedelta(days=3)
    _, payload = segments(city.issue("library", not_before=start))
    assert payload["nbf"] == int(start.timestamp())
    _, payload = segments(city.issue("library"))
    assert "nbf" not in payload


def test_serials_are_random_and_url_safe() -> None:
    serials = {new_serial() for _ in range(200)}
    assert len(serials) == 200
    assert all(len(s) == 16 and s.replace("-", "").replace("_", "").isalnum() for s in serials)


def test_key_refuses_to_sign_a_type_it_is_not_allowed(city: City) -> None:
    library_only = city.add_key(pass_types=["library"])
    with pytest.raises(SigningKeyError, match="not allowed to sign parking"):
        city.issue("parking", key=library_only)


def test_retired_key_signs_nothing_more(city: City) -> None:
    retired = city.set_key_info(city.key, state=KeyState.RETIRED)
    with pytest.raises(SigningKeyError, match="retired"):
        city.issue("library", key=retired)


def test_key_outside_its_window_signs_nothing(city: City) -> None:
    late = city.add_key(not_after=NOW - timedelta(days=2))
    with pytest.raises(SigningKeyError, match="signing window"):
        city.issue("library", key=late)


def test_expiry_must_follow_issue(city: City) -> None:
    with pytest.raises(ValueError, match="expire after"):
        sign_pass_token(
            key=city.key,
            issuer=ISSUER,
            serial="SERIAL0123456789",
            pass_type="library",
            holder={},
            issued_at=NOW,
            expires_at=NOW,
            status_idx=1,
            status_uri=status_uri("library"),
        )


def test_status_list_token_round_trip(city: City) -> None:
    uri = status_uri("parking")
    city.lists[uri].set(12, INVALID)
    token = city.status_tokens()[uri]
    header, payload = segments(token)
    assert header["typ"] == STATUS_LIST_TYP
    assert {"sub", "iat", "exp", "ttl", "status_list"} <= set(payload)
    assert payload["sub"] == uri and payload["ttl"] == 3600
    verified = verify_status_list_token(token, KeyRing(city.public_keys()), issuer=ISSUER, uri=uri)
    assert verified.status_list.get(12) == INVALID and verified.status_list.get(13) == 0
    assert verified.expires_at is not None
    assert not verified.is_stale(NOW) and verified.is_stale(NOW + timedelta(days=3))


def test_status_list_token_for_another_uri_is_refused(city: City) -> None:
    token = city.status_tokens()[status_uri("parking")]
    with pytest.raises(StatusListSubjectError):
        verify_status_list_token(
            token, KeyRing(city.public_keys()), issuer=ISSUER, uri=status_uri("library")
        )
