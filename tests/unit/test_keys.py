"""Keys: one algorithm each, RFC 7638 kids, strict loading."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.factories import NOW
from wallet.errors import KeyPassphraseError, SigningKeyError
from wallet.keys import (
    KeyInfo,
    KeyRing,
    KeyRole,
    KeyState,
    generate_key,
    kid_for,
    load_private_key_pem,
    load_public_key_pem,
    public_key_from_jwk,
    thumbprint,
)


def test_thumbprint_matches_rfc7638_example() -> None:
    # RFC 7638 section 3.1 computes the thumbprint of an RSA key; RFC 8037
    # appendix A.3 gives one for an Ed25519 key, which we support.
    x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    key = public_key_from_jwk({"kty": "OKP", "crv": "Ed25519", "x": x})
    assert thumbprint(key) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_generated_key_is_pinned_to_one_algorithm(alg: str) -> None:
    key = generate_key(alg=alg, pass_types=["library"], now=NOW)  # type: ignore[arg-type]
    assert key.info.alg == alg
    assert key.kid == kid_for(key.key.public_key()) == thumbprint(key.key.public_key())[:8]
    jwk = key.public().jwk()
    assert jwk["alg"] == alg and jwk["kid"] == key.kid and jwk["use"] == "sig"
    assert "d" not in jwk


def test_root_key_never_carries_pass_types() -> None:
    with pytest.raises(SigningKeyError, match="never signs passes"):
        generate_key(role=KeyRole.ROOT, pass_types=["library"], now=NOW)


def test_pass_key_needs_a_pass_type() -> None:
    with pytest.raises(SigningKeyError, match="at least one pass type"):
        generate_key(pass_types=[], now=NOW)


def test_unsupported_algorithm_is_refused() -> None:
    with pytest.raises(SigningKeyError, match="unsupported algorithm"):
        generate_key(alg="RS256", pass_types=["library"], now=NOW)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "private",
    [ec.generate_private_key(ec.SECP384R1()), rsa.generate_private_key(65537, 2048)],
    ids=["p384", "rsa"],
)
def test_public_pem_of_other_curves_is_refused(private: object) -> None:
    pem = private.public_key().public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(SigningKeyError, match="only P-256"):
        load_public_key_pem(pem)


def test_public_pem_round_trip() -> None:
    key = generate_key(alg="EdDSA", pass_types=["library"], now=NOW)
    loaded = load_public_key_pem(key.public().pem())
    assert kid_for(loaded) == key.kid


def test_encrypted_private_key_round_trip_and_wrong_passphrase() -> None:
    key = generate_key(pass_types=["library"], now=NOW)
    pem = key.private_pem(passphrase=b"correct horse battery")
    assert b"ENCRYPTED PRIVATE KEY" in pem
    loaded = load_private_key_pem(pem, passphrase=b"correct horse battery", info=key.info)
    assert loaded.kid == key.kid
    with pytest.raises(KeyPassphraseError, match="wrong WALLET_KEY_PASSPHRASE"):
        load_private_key_pem(pem, passphrase=b"wrong passphrase!", info=key.info)
    with pytest.raises(KeyPassphraseError, match="WALLET_KEY_PASSPHRASE"):
        load_private_key_pem(pem, passphrase=None, info=key.info)


def test_private_key_must_match_its_metadata() -> None:
    key = generate_key(pass_types=["library"], now=NOW)
    other = generate_key(pass_types=["library"], now=NOW)
    pem = other.private_pem(passphrase=None)
    with pytest.raises(SigningKeyError, match="does not match its metadata"):
        load_private_key_pem(pem, passphrase=None, info=key.info)


def test_key_info_json_round_trip_and_window() -> None:
    key = generate_key(
        pass_types=["library", "parking"], now=NOW, not_after=NOW + timedelta(days=1)
    )
    info = KeyInfo.from_json(json.loads(json.dumps(key.info.to_json())))
    assert info == key.info
    assert info.covers(NOW) and info.covers(NOW + timedelta(days=1))
    assert not info.covers(NOW - timedelta(seconds=1))
    assert not info.covers(NOW + timedelta(days=1, seconds=1))
    assert info.allows("parking") and not info.allows("pool")


@pytest.mark.parametrize("fraction", [0, 1, 500_000, 999_999])
def test_the_window_in_unix_seconds_agrees_with_the_datetime_window(fraction: int) -> None:
    """covers_unix (the verifier's, for signed whole seconds) answers as covers does,
    also for a window whose edges fall between two seconds."""
    start = NOW + timedelta(microseconds=fraction)
    for end in (start + timedelta(days=1), None):
        info = generate_key(pass_types=["library"], now=start, not_after=end).info
        edge = int(start.timestamp())
        ends = [] if end is None else [int(end.timestamp()) + step for step in (-1, 0, 1, 2)]
        for seconds in [edge - 1, edge, edge + 1, edge + 2, *ends]:
            moment = datetime.fromtimestamp(seconds, UTC)
            assert info.covers_unix(seconds) == info.covers(moment), (fraction, seconds)
        assert info.covers_unix(edge + 1) and not info.covers_unix(edge - 1)


@pytest.mark.parametrize(
    "change",
    [
        {"alg": "HS256"},
        {"state": "lost"},
        {"role": "admin"},
        {"created": "yesterday"},
        {"pass_types": "library"},
        {"kid": ""},
    ],
)
def test_key_info_rejects_bad_metadata(change: dict[str, object]) -> None:
    raw = {**generate_key(pass_types=["library"], now=NOW).info.to_json(), **change}
    with pytest.raises(SigningKeyError):
        KeyInfo.from_json(raw)


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"},
        {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
        {"kty": "OKP", "crv": "Ed448", "x": "AA"},
        {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
        {"kty": "EC", "crv": "P-256"},
        {"kty": "EC", "crv": "P-256", "x": "A" * 43, "y": "A" * 43},  # not on the curve
    ],
)
def test_jwk_parser_refuses_what_it_does_not_support(jwk: dict[str, str]) -> None:
    with pytest.raises(SigningKeyError):
        public_key_from_jwk(jwk)


def test_keyring_returns_every_key_sharing_a_kid() -> None:
    a = generate_key(pass_types=["library"], now=NOW).public()
    b = generate_key(pass_types=["library"], now=NOW).public()
    twin = type(b)(info=type(b.info)(**{**b.info.__dict__, "kid": a.kid}), key=b.key)
    ring = KeyRing([a, twin])
    assert ring.find(a.kid) == (a, twin)
    assert ring.find("missing") == ()
    assert len(ring) == 2 and list(ring) == [a, twin]
    assert KeyState.ACTIVE.value == "active"


def test_ed25519_public_pem_loads() -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert kid_for(load_public_key_pem(pem)) == kid_for(private.public_key())
