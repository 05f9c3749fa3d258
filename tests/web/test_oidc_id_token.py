"""The ID token checks of wallet.services.oidc, one attack each, with tokens made here.

The end-to-end tests (test_oidc_login) show the real provider's tokens pass and its
re-signed bad ones fail; these cover what a provider cannot easily be made to do.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from wallet.services.oidc import SignInRefused, groups_of, role_for, verify_id_token

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ISSUER = "https://login.stadt-musterstadt.de/realms/stadt"
CLIENT = "wallet-console"
NONCE = "n-0S6_WzA2Mj"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks(*keys: Any, kid: str = "k1") -> dict[str, Any]:
    found = []
    for key in keys:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        found.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
    return {"keys": found}


def claims(**changes: Any) -> dict[str, Any]:
    moment = int(NOW.timestamp())
    base = {"iss": ISSUER, "sub": "f3a9", "aud": CLIENT, "iat": moment - 5, "exp": moment + 300,
            "nonce": NONCE}  # fmt: skip
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def token(body: Mapping[str, Any], *, key: Any = KEY, alg: str = "RS256", kid: str = "k1") -> str:
    return jwt.encode(dict(body), key, algorithm=alg, headers={"kid": kid})


def check(id_token: str, *, keys: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return verify_id_token(
        id_token, jwks=keys or jwks(KEY), issuer=ISSUER, client_id=CLIENT, nonce=NONCE,
        algorithms=["RS256", "HS256", "none"], now=NOW,
    )  # fmt: skip


def refused(id_token: str, reason: str, **kwargs: Any) -> None:
    with pytest.raises(SignInRefused) as caught:
        check(id_token, **kwargs)
    assert caught.value.reason == reason


def test_a_good_token_passes() -> None:
    assert check(token(claims()))["sub"] == "f3a9"


def test_token_signed_by_another_key_is_refused() -> None:
    refused(token(claims(), key=OTHER_KEY), "signature")


def test_alg_none_is_refused() -> None:
    unsigned = jwt.encode(claims(), None, algorithm="none", headers={"kid": "k1"})
    refused(unsigned, "alg")


def test_hs256_signed_with_the_client_secret_is_refused() -> None:
    refused(token(claims(), key="the-client-secret-of-this-service-0123456789", alg="HS256"), "alg")


def test_unknown_key_id_is_refused() -> None:
    refused(token(claims(), kid="somebody-elses"), "unknown_key")


def test_key_of_another_type_is_refused() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    refused(token(claims(), key=ec_key, alg="ES256"), "alg")  # the provider announced RS256


def test_token_from_another_issuer_is_refused() -> None:
    refused(token(claims(iss="https://login.example.org")), "issuer")


def test_id_token_for_another_audience_is_refused() -> None:
    refused(token(claims(aud="another-client")), "audience")
    refused(token(claims(aud=["another-client", "third"])), "audience")


def test_several_audiences_need_azp_naming_this_client() -> None:
    refused(token(claims(aud=[CLIENT, "another-client"])), "azp")
    refused(token(claims(aud=[CLIENT, "another-client"], azp="another-client")), "azp")
    refused(token(claims(azp="another-client")), "azp")
    assert check(token(claims(aud=[CLIENT, "another-client"], azp=CLIENT)))["azp"] == CLIENT


def test_expired_id_token_is_refused() -> None:
    moment = int(NOW.timestamp())
    refused(token(claims(iat=moment - 900, exp=moment - 61)), "expired")
    # within the clock leeway a token is still taken (clocks differ a little)
    assert check(token(claims(iat=moment - 60, exp=moment - 30)))


def test_token_issued_in_the_future_or_long_ago_is_refused() -> None:
    moment = int(NOW.timestamp())
    refused(token(claims(iat=moment + 3600, exp=moment + 7200)), "iat_future")
    refused(token(claims(iat=moment - 3600, exp=moment + 3600)), "iat_old")


def test_nonce_mismatch_is_refused() -> None:
    refused(token(claims(nonce="another-sign-ins-nonce")), "nonce")
    refused(token(claims(nonce=None)), "nonce")


def test_missing_claims_are_refused() -> None:
    refused(token(claims(exp=None)), "missing_exp")
    refused(token(claims(sub=None)), "sub")
    refused(token(claims(exp="tomorrow")), "missing_exp")


@pytest.mark.parametrize("garbage", ["", "a.b.c", "x" * 20_000, "eyJhbGciOiJSUzI1NiJ9..."])
def test_garbage_is_refused_not_a_crash(garbage: str) -> None:
    with pytest.raises(SignInRefused):
        check(garbage)


def test_groups_and_roles() -> None:
    mapping = (("wallet-admins", "admin"), ("wallet-desk", "issuer"))
    assert groups_of({"groups": ["a", 3, "wallet-desk"]}, "groups") == ("a", "wallet-desk")
    assert groups_of({"groups": "wallet-desk"}, "groups") == ("wallet-desk",)
    nested = {"realm_access": {"roles": ["wallet-admins"]}}
    assert groups_of(nested, "realm_access.roles") == ("wallet-admins",)
    assert groups_of({}, "groups") == ()
    assert role_for(("wallet-desk", "wallet-admins"), mapping) == "admin"  # the highest wins
    assert role_for(("wallet-desk",), mapping) == "issuer"
    assert role_for(("kantine",), mapping) is None


def test_clock_is_the_services() -> None:
    """exp and iat are judged at ``now``, not at the machine's time."""
    later = NOW + timedelta(hours=2)
    with pytest.raises(SignInRefused):
        verify_id_token(token(claims()), jwks=jwks(KEY), issuer=ISSUER, client_id=CLIENT,
                        nonce=NONCE, algorithms=["RS256"], now=later)  # fmt: skip
