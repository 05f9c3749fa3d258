"""Our tokens verify with an independent JOSE library (jwcrypto), keyed by our JWKS.

PyJWT signs our tokens; jwcrypto shares no code with it, so agreement here means
wallets and third-party verifiers that only know the published JWKS can check
passes and status lists too.
"""

from __future__ import annotations

import json
import zlib
from datetime import timedelta
from typing import Any

import pytest
from jwcrypto import jwk, jws, jwt

from tests.factories import HOLDERS, ISSUER, NOW, PASS_TYPES, City, status_uri
from wallet.keys import KeyRole, KeyState, PublicKey
from wallet.status import INVALID, SUSPENDED
from wallet.tokens import (
    PASS_TYP,
    STATUS_LIST_TYP,
)


def published_jwks(keys: list[PublicKey]) -> jwk.JWKSet:
    """The JWKS exactly as ``wallet keys jwks`` publishes it, read by jwcrypto."""
    published = [
        k.jwk()
        for k in keys
        if k.info.role is KeyRole.PASS and k.info.state is not KeyState.REVOKED
    ]
    return jwk.JWKSet.from_json(json.dumps({"keys": published}, indent=2))


def jwcrypto_claims(token: str, keyset: jwk.JWKSet, *, alg: str, typ: str) -> dict[str, Any]:
    """Verify with jwcrypto alone and return the claims it decoded.

    Claim checks are left to us (``check_claims=False``): jwcrypto would judge
    ``exp`` against the wall clock, and these tests never depend on it.
    """
    checked = jwt.JWT(jwt=token, key=keyset, algs=[alg], expected_type="JWS", check_claims=False)
    header = json.loads(checked.header)
    assert header == {"alg": alg, "kid": header["kid"], "typ": typ}
    return json.loads(checked.claims)  # type: ignore[no-any-return]


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
@pytest.mark.parametrize("type_id", ["library", "parking"])
def test_pass_token_verifies_in_jwcrypto(city: City, alg: str, type_id: str) -> None:
    key = city.key if alg == "ES256" else city.add_key(alg=alg)
    issued_at = NOW - timedelta(days=1)
    token = city.issue(type_id, key=key, idx=99, issued_at=issued_at)
    keyset = published_jwks(city.public_keys())
    assert keyset.get_key(key.kid) is not None

    claims = jwcrypto_claims(token, keyset, alg=alg, typ=PASS_TYP)
    assert claims == {
        "iss": ISSUER,
        "sub": "SERIAL0123456789",
        "pt": type_id,
        "iat": int(issued_at.timestamp()),
        "exp": int(PASS_TYPES[type_id].valid_until(issued_at).timestamp()),
        "h": dict(HOLDERS[type_id]),
        "status": {"status_list": {"idx": 99, "uri": status_uri(type_id)}},
    }
    # And the same token is genuine for our own verifier, with the same claims.
    result = city.verifier().check(token, now=NOW)
    assert result.valid and result.claims["holder"] == claims["h"]


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_pass_token_verifies_with_jwcrypto_jws_and_the_pinned_key(city: City, alg: str) -> None:
    """The lower-level API: one JWK by kid, the algorithm given by the verifier."""
    key = city.key if alg == "ES256" else city.add_key(alg=alg)
    token = city.issue("library", key=key)
    one = published_jwks(city.public_keys()).get_key(key.kid)
    checked = jws.JWS()
    checked.deserialize(token)
    checked.verify(one, alg=alg)
    assert json.loads(checked.payload)["sub"] == "SERIAL0123456789"
    assert checked.jose_header == {"alg": alg, "kid": key.kid, "typ": PASS_TYP}


def test_status_list_token_verifies_in_jwcrypto(city: City) -> None:
    uri = status_uri("parking")
    city.lists[uri].set(7, SUSPENDED)
    city.lists[uri].set(8, INVALID)
    signed_at = NOW - timedelta(hours=1)
    token = city.status_tokens(now=signed_at)[uri]

    claims = jwcrypto_claims(
        token, published_jwks(city.public_keys()), alg="ES256", typ=STATUS_LIST_TYP
    )
    assert claims == {
        "iss": ISSUER,
        "sub": uri,
        "iat": int(signed_at.timestamp()),
        "exp": int((signed_at + city.list_lifetime).timestamp()),
        "ttl": 3600,
        "status_list": city.lists[uri].to_claim(),
    }
    # The list itself, decoded by hand per the draft: ZLIB, 2 bits per entry, LSB first.
    lst = claims["status_list"]["lst"]
    data = zlib.decompress(jws.base64url_decode(lst))
    assert claims["status_list"]["bits"] == 2
    assert data == city.lists[uri].to_bytes()
    assert (data[1] >> 6) & 0b11 == SUSPENDED  # index 7: byte 1, bits 6-7
    assert data[2] & 0b11 == INVALID  # index 8: byte 2, bits 0-1


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
@pytest.mark.parametrize("segment", [1, 2], ids=["payload", "signature"])
def test_tampered_token_fails_in_jwcrypto_too(city: City, alg: str, segment: int) -> None:
    key = city.key if alg == "ES256" else city.add_key(alg=alg)
    parts = city.issue("library", key=key).split(".")
    middle = len(parts[segment]) // 2
    swapped = "B" if parts[segment][middle] == "A" else "A"
    parts[segment] = parts[segment][:middle] + swapped + parts[segment][middle + 1 :]
    tampered = ".".join(parts)
    keyset = published_jwks(city.public_keys())
    with pytest.raises(jwt.JWTMissingKey):  # jwcrypto: no key in the set verifies it
        jwt.JWT(jwt=tampered, key=keyset, algs=[alg], expected_type="JWS", check_claims=False)
    checked = jws.JWS()
    checked.deserialize(tampered)
    with pytest.raises(jws.InvalidJWSSignature):
        checked.verify(keyset.get_key(key.kid), alg=alg)
    assert not city.verifier().check(tampered, now=NOW).valid


def test_revoked_key_is_not_published(city: City) -> None:
    """A wallet using only the JWKS cannot verify a revoked key's pass."""
    token = city.issue("library")
    revoked = city.set_key_info(city.key, state=KeyState.REVOKED)
    keyset = published_jwks([revoked.public()])
    assert keyset.get_key(revoked.kid) is None
    with pytest.raises(jwt.JWTMissingKey):
        jwt.JWT(jwt=token, key=keyset, algs=["ES256"], expected_type="JWS", check_claims=False)
