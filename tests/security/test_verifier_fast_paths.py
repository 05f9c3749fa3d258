"""The verifier's shortcuts (caches, hand-built DER, strict decoding in C) admit nothing more.

Each shortcut of the hot path is checked against the slow way it replaces: a
remembered header never lets a different header through, the caches stay
bounded, the DER built from raw bytes is cryptography's, and the claims shown
lazily are the claims :meth:`PassClaims.display` gives.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.factories import ISSUER, NOW, City
from tests.security import forge
from wallet.codec import b64url_decode, b64url_encode
from wallet.errors import MalformedDataError
from wallet.jws import JWSVerifier, _der_signature
from wallet.qrtext import encode_qr_text
from wallet.tokens import ShownClaims, verify_pass_token
from wallet.verifier import Verifier


@pytest.fixture
def verifier(city: City) -> Verifier:
    return city.verifier()


def jws_layer(verifier: Verifier) -> JWSVerifier:
    return verifier._passes._jws


def city_signed_qr(city: City, header: forge.Part) -> str:
    token = forge.jws(header, forge.pass_claims(), sign=forge.signer_for(city.key.key))
    return encode_qr_text(token)


def verdict(verifier: Verifier, text: str) -> tuple[str, str]:
    result = verifier.check(text, now=NOW)
    return result.state, result.reason


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({"typ": "JWT"}, "wrong_typ"),
        ({"alg": "none"}, "alg_none"),
        ({"alg": "EdDSA"}, "alg_mismatch"),
        ({"kid": "someone-else"}, "unknown_kid"),
        ({"jwk": {"kty": "EC"}}, "forbidden_header"),
        ({"crit": ["exp"]}, "crit_header"),
        ({"x": 1}, "bad_header"),
    ],
)
def test_cached_header_does_not_admit_a_tampered_header(
    city: City, verifier: Verifier, header: dict[str, Any], reason: str
) -> None:
    """A genuine pass fills the header caches; a changed header, genuinely signed, is
    still judged in full (and for QR text, its bytes never hit the remembered ones)."""
    genuine = city.issue_qr()
    for _ in range(3):  # the second and third scans are served from the caches
        assert verdict(verifier, genuine) == ("valid", "ok")
        assert verdict(verifier, city.issue()) == ("valid", "ok")
    tampered = {**forge.header(city.key.kid), **header}
    qr = city_signed_qr(city, tampered)
    token = forge.jws(tampered, forge.pass_claims(), sign=forge.signer_for(city.key.key))
    for _ in range(2):
        assert verdict(verifier, qr)[1] == reason
        assert verdict(verifier, token)[1] == reason
    assert verdict(verifier, genuine) == ("valid", "ok")


def test_a_refused_header_is_never_remembered(city: City, verifier: Verifier) -> None:
    """Only vetted headers get into either cache, so junk cannot crowd out the city's."""
    bad = [{**forge.header(city.key.kid), "typ": f"junk{i}"} for i in range(10)]
    for header in bad:
        assert verdict(verifier, city_signed_qr(city, header))[1] == "wrong_typ"
    layer = jws_layer(verifier)
    assert layer._segments == {} and layer._vetted == {}
    assert verdict(verifier, city.issue_qr()) == ("valid", "ok")
    assert verdict(verifier, city.issue_qr()) == ("valid", "ok")
    assert len(layer._segments) == len(layer._vetted) == 1


def test_the_header_caches_stay_bounded_and_a_full_cache_still_verifies(
    city: City, verifier: Verifier
) -> None:
    """More distinct genuine headers than the caches hold (``typ`` is compared without
    case, so each spelling is another header): all verify, the caches stop growing."""
    layer = jws_layer(verifier)
    spellings = {
        "".join(c.upper() if (n >> i) & 1 else c for i, c in enumerate("pass+jwt"))
        for n in range(256)
    }
    assert len(spellings) == 2 * layer._CACHE_SIZE  # "+" has no case
    for typ in sorted(spellings):
        qr = city_signed_qr(city, forge.header(city.key.kid, typ=typ))
        assert verdict(verifier, qr) == ("valid", "ok")
        assert verdict(verifier, qr) == ("valid", "ok")
    assert len(layer._vetted) == len(layer._segments) == layer._CACHE_SIZE


def test_the_der_signature_is_what_cryptography_encodes() -> None:
    """Leading zero bytes dropped, a zero byte added before a high bit, zero as one byte."""
    rng = random.Random(256)
    halves = [
        bytes(32),
        b"\x80" + bytes(31),
        bytes(31) + b"\x01",
        bytes(31) + b"\x80",
        b"\x00\x7f" + bytes(30),
        b"\xff" * 32,
    ] + [rng.randbytes(32) for _ in range(200)]
    zeros = [rng.randrange(33) for _ in range(50)]
    halves += [bytes(k) + rng.randbytes(32 - k) for k in zeros]
    for r in halves:
        for s in rng.sample(halves, 5):
            want = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
            assert _der_signature(r + s) == want


def test_shown_claims_are_the_displayed_claims(city: City, verifier: Verifier) -> None:
    claims = verify_pass_token(city.issue(), verifier._keys, issuer=ISSUER, now=NOW)
    shown = ShownClaims(claims)
    assert shown == claims.display() and dict(shown) == claims.display()
    assert len(shown) == len(claims.display()) and repr(shown) == repr(claims.display())
    result = verifier.check(city.issue(), now=NOW)
    assert isinstance(result.claims, ShownClaims)
    assert result.to_json()["claims"] == claims.display()
    assert json.loads(json.dumps(result.to_json()))["claims"]["serial"] == claims.serial
    with pytest.raises(TypeError):
        result.claims["serial"] = "changed"  # type: ignore[index]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not base64url"),
        ("a", "not base64url"),
        ("ab+c", "not base64url"),
        ("ab/c", "not base64url"),
        ("ab==", "not base64url"),
        ("abc=", "not base64url"),
        ("ab c", "not base64url"),
        ("abc\n", "not base64url"),
        ("ab.c", "not base64url"),
        ("ab\u00e9c", "not base64url"),
        ("ab\u0663c", "not base64url"),
        ("ab\x00c", "not base64url"),
        ("AB", "not canonical base64url"),  # 4 stray bits set
        ("ABD", "not canonical base64url"),  # 2 stray bits set
    ],
)
def test_base64url_in_c_still_refuses_every_non_canonical_text(text: str, message: str) -> None:
    with pytest.raises(MalformedDataError, match=f"the segment is {message}$"):
        b64url_decode(text, what="segment")


def test_base64url_round_trips_every_length() -> None:
    rng = random.Random(64)
    for length in range(1, 70):  # an empty part is no part
        data = rng.randbytes(length)
        text = b64url_encode(data)
        assert "=" not in text and b64url_decode(text, what="x") == data
