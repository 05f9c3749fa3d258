"""One test per attack on the trust bundle a verifier device loads.

The bundle decides which keys a device trusts, so every way of sneaking in a
key, a stale copy or an edited one must end in a :class:`BundleError` that
names the cause.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from tests.factories import ISSUER, NOW, City
from tests.security import forge
from wallet.bundle import BUNDLE_TYP, MAX_BUNDLE_LENGTH, root_public_key, verify_bundle
from wallet.errors import (
    AlgNoneError,
    BadSignatureError,
    BundleError,
    BundleExpiredError,
    BundleRollbackError,
    DuplicateMemberError,
    SigningKeyError,
    TokenRejected,
    TokenTooLongError,
    UnknownKeyError,
    WrongTypeError,
)
from wallet.jws import (
    sign_jws,
)
from wallet.keys import PublicKey
from wallet.verifier import Verifier


def root(city: City) -> PublicKey:
    """The pinned root, loaded from its PEM as a device does."""
    return root_public_key(city.root.public().pem())


def rejection(exc: pytest.ExceptionInfo[BundleError]) -> TokenRejected:
    """The JWS-level reason a bundle was refused."""
    cause = exc.value.__cause__
    assert isinstance(cause, TokenRejected), repr(cause)
    assert cause.code in str(exc.value)
    return cause


def root_signed(city: City, claims: dict[str, Any] | str, *, typ: str = BUNDLE_TYP) -> str:
    """A bundle genuinely signed by the city's root over exactly these claims."""
    if isinstance(claims, str):
        head = forge.header(city.root.kid, alg=city.root.info.alg, typ=typ)
        return forge.jws(head, claims, sign=forge.signer_for(city.root.key))
    return sign_jws(claims, city.root, typ=typ)


def test_accepts_genuine_bundle(city: City, tmp_path: Path) -> None:
    """Control: the unmodified bundle loads, so each refusal below has one cause."""
    bundle = verify_bundle(city.signed_bundle(), root(city), now=NOW, held_version=1)
    assert (bundle.issuer, bundle.version) == (ISSUER, 1)
    assert [k.kid for k in bundle.keys] == [city.key.kid]
    # The low-level helper signs the same claims into an equally acceptable bundle.
    assert verify_bundle(root_signed(city, city.bundle().to_claims()), root(city), now=NOW)
    path, root_path = city.write_bundle(tmp_path)
    assert Verifier.load(path, root_key=root_path, now=NOW).bundle.version == 1


def test_rejects_bundle_signed_by_pass_key(city: City, tmp_path: Path) -> None:
    token = sign_jws(city.bundle().to_claims(), city.key, typ=BUNDLE_TYP)
    with pytest.raises(BundleError, match="not signed by the pinned trust root") as exc:
        verify_bundle(token, root(city), now=NOW)
    assert isinstance(rejection(exc), UnknownKeyError)
    # Claiming the root's kid does not help: the signature is the pass key's.
    head = forge.header(city.root.kid, typ=BUNDLE_TYP)
    claimed = forge.jws(head, city.bundle().to_claims(), sign=forge.signer_for(city.key.key))
    with pytest.raises(BundleError) as exc:
        verify_bundle(claimed, root(city), now=NOW)
    assert isinstance(rejection(exc), BadSignatureError)
    _, root_path = city.write_bundle(tmp_path)
    path = tmp_path / "pass-key-bundle.jwt"
    path.write_text(token + "\n")
    with pytest.raises(BundleError, match="unknown_kid"):
        Verifier.load(path, root_key=root_path, now=NOW)


def test_rejects_bundle_signed_by_another_root(city: City, tmp_path: Path) -> None:
    other = City()
    other.key = city.key  # the other root vouches for our own pass key, even
    with pytest.raises(BundleError) as exc:
        verify_bundle(other.signed_bundle(), root(city), now=NOW)
    assert isinstance(rejection(exc), UnknownKeyError)
    path, _ = other.write_bundle(tmp_path)
    with pytest.raises(BundleError, match="not signed by the pinned trust root"):
        Verifier.load(path, root_key=root(city), now=NOW)


def _edit_payload(token: str, edit: Any) -> str:
    head, body, signature = token.split(".")
    claims = json.loads(forge.b64url_decode(body))
    edit(claims)
    edited = forge.b64url(json.dumps(claims, separators=(",", ":")).encode())
    assert edited != body
    return ".".join((head, edited, signature))


@pytest.mark.parametrize(
    "edit",
    [
        lambda c: c.update(ver=c["ver"] + 1),
        lambda c: c.update(exp=c["exp"] + 86400 * 365),
        lambda c: c["keys"].append(dict(c["keys"][0], meta=dict(c["keys"][0]["meta"], kid="X"))),
        lambda c: c["keys"][0]["meta"].update(state="active", not_after=None),
        lambda c: c["pass_types"]["parking"].update(stale_status="warn"),
        lambda c: c["status_lists"].clear(),
    ],
    ids=["version", "expiry", "extra_key", "key_state", "stale_policy", "status_lists"],
)
def test_rejects_tampered_bundle_payload(city: City, edit: Any) -> None:
    token = _edit_payload(city.signed_bundle(), edit)
    with pytest.raises(BundleError) as exc:
        verify_bundle(token, root(city), now=NOW)
    assert isinstance(rejection(exc), BadSignatureError)


def test_rejects_tampered_bundle_signature(city: City) -> None:
    head, body, signature = city.signed_bundle().split(".")
    tampered = ".".join((head, body, forge.replace_char(signature, 20)))
    with pytest.raises(BundleError) as exc:
        verify_bundle(tampered, root(city), now=NOW)
    assert isinstance(rejection(exc), BadSignatureError)


def test_rejects_bundle_rollback(city: City) -> None:
    token = city.signed_bundle(version=3)
    with pytest.raises(BundleRollbackError, match="older than the held version 4"):
        verify_bundle(token, root(city), now=NOW, held_version=4)
    # The same or a newer version is fine.
    assert verify_bundle(token, root(city), now=NOW, held_version=3).version == 3
    assert verify_bundle(token, root(city), now=NOW, held_version=2).version == 3


def test_rejects_expired_bundle(city: City, tmp_path: Path) -> None:
    expires_at = NOW + timedelta(days=1)
    token = city.signed_bundle(expires_at=expires_at)
    assert verify_bundle(token, root(city), now=expires_at - timedelta(seconds=1))
    for now in (expires_at, expires_at + timedelta(days=30)):
        with pytest.raises(BundleExpiredError, match="sync a new one"):
            verify_bundle(token, root(city), now=now)
    path, root_path = city.write_bundle(tmp_path, expires_at=expires_at)
    with pytest.raises(BundleExpiredError):
        Verifier.load(path, root_key=root_path, now=expires_at)


def _other_public_jwk() -> dict[str, Any]:
    numbers = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()
    return {
        "crv": "P-256",
        "kty": "EC",
        "x": forge.b64url(numbers.x.to_bytes(32, "big")),
        "y": forge.b64url(numbers.y.to_bytes(32, "big")),
    }


@pytest.mark.parametrize(
    "edit",
    [
        lambda entry: entry["meta"].update(kid="AttackKy"),
        lambda entry: entry["jwk"].update(_other_public_jwk()),
        lambda entry: entry["meta"].update(alg="EdDSA"),
    ],
    ids=["meta_kid", "jwk_swapped", "meta_alg"],
)
def test_rejects_bundle_key_whose_metadata_does_not_match_its_jwk(city: City, edit: Any) -> None:
    """Even genuinely root-signed: a key's kid and alg are derived, never just stated."""
    claims = city.bundle().to_claims()
    edit(claims["keys"][0])
    with pytest.raises(BundleError, match="does not match its metadata"):
        verify_bundle(root_signed(city, claims), root(city), now=NOW)


def test_rejects_bundle_carrying_a_root_key(city: City) -> None:
    claims = city.bundle(keys=[city.key.public(), city.root.public()]).to_claims()
    with pytest.raises(BundleError, match="pass keys only"):
        verify_bundle(root_signed(city, claims), root(city), now=NOW)


@pytest.mark.parametrize("form", ["empty_signature", "root_signature"])
@pytest.mark.parametrize("spelling", ["none", "None", "NONE"])
def test_rejects_alg_none_bundle(city: City, form: str, spelling: str) -> None:
    head = forge.header(city.root.kid, alg=spelling, typ=BUNDLE_TYP)
    claims = city.bundle().to_claims()
    sign = forge.signer_for(city.root.key) if form == "root_signature" else None
    with pytest.raises(BundleError) as exc:
        verify_bundle(forge.jws(head, claims, sign=sign), root(city), now=NOW)
    assert isinstance(rejection(exc), AlgNoneError)


@pytest.mark.parametrize("typ", ["pass+jwt", "statuslist+jwt", "JWT"])
def test_rejects_bundle_with_wrong_typ(city: City, typ: str) -> None:
    with pytest.raises(BundleError) as exc:
        verify_bundle(root_signed(city, city.bundle().to_claims(), typ=typ), root(city), now=NOW)
    assert isinstance(rejection(exc), WrongTypeError)


def test_rejects_pass_token_presented_as_bundle(city: City) -> None:
    with pytest.raises(BundleError) as exc:
        verify_bundle(city.issue("library"), root(city), now=NOW)
    assert isinstance(rejection(exc), WrongTypeError)  # the type is checked before the kid


@pytest.mark.parametrize("member", ["ver", "iss", "keys"])
def test_rejects_bundle_with_duplicate_members(city: City, member: str) -> None:
    claims = city.bundle().to_claims()
    text = json.dumps(claims, separators=(",", ":"))
    text = text[:-1] + "," + json.dumps({member: claims[member]})[1:]
    with pytest.raises(BundleError) as exc:
        verify_bundle(root_signed(city, text), root(city), now=NOW)
    assert isinstance(rejection(exc), DuplicateMemberError)


def test_rejects_oversized_bundle(city: City) -> None:
    with pytest.raises(BundleError) as exc:
        verify_bundle("A" * (MAX_BUNDLE_LENGTH + 1), root(city), now=NOW)
    assert isinstance(rejection(exc), TokenTooLongError)


@pytest.mark.parametrize(
    ("member", "value", "message"),
    [
        ("fmt", 2, "format is unknown"),
        ("fmt", None, "format is unknown"),
        ("fmt", True, "format is unknown"),  # Python's True == 1; JavaScript's true !== 1
        ("fmt", 1.0, "format is unknown"),
        ("ver", 0, "positive whole number"),
        ("ver", -1, "positive whole number"),
        ("ver", True, "positive whole number"),
        ("ver", 2.0, "positive whole number"),
        ("ver", "2", "positive whole number"),
        ("iss", "", "names no issuer"),
        ("iss", None, "names no issuer"),
        ("exp", "2030", "not a Unix time"),
        ("exp", 2**40, "not a Unix time"),
        ("keys", {"k": 1}, "keys must be a list"),
        ("keys", [{"jwk": "x"}], "needs a jwk and meta"),
        ("status_lists", {"u": 1}, "status lists must map"),
        ("pass_types", {"library": "x"}, "pass types must map"),
    ],
)
def test_rejects_root_signed_bundle_with_malformed_content(
    city: City, member: str, value: object, message: str
) -> None:
    claims = city.bundle().to_claims()
    claims[member] = value
    with pytest.raises(BundleError, match=message):
        verify_bundle(root_signed(city, claims), root(city), now=NOW)


def _pem(private: Any) -> bytes:
    return private.public_key().public_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: _pem(ec.generate_private_key(ec.SECP384R1())),
        lambda: _pem(ec.generate_private_key(ec.SECP256K1())),
        lambda: _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        lambda: _pem(ed448.Ed448PrivateKey.generate()),
        lambda: ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        lambda: b"-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n",
    ],
    ids=["p384", "secp256k1", "rsa2048", "ed448", "private_key_pem", "garbage"],
)
def test_rejects_root_key_of_another_kind(city: City, tmp_path: Path, make: Any) -> None:
    pem = make()
    with pytest.raises(SigningKeyError):
        root_public_key(pem)
    bundle_path, _ = city.write_bundle(tmp_path)
    root_path = tmp_path / "odd-root.pem"
    root_path.write_bytes(pem)
    with pytest.raises(BundleError, match="not a usable trust-root public key"):
        Verifier.load(bundle_path, root_key=root_path, now=NOW)


@pytest.mark.parametrize("withheld", ["no_lists", "stale_lists"])
@pytest.mark.parametrize("type_id", ["library", "parking"])
def test_genuine_bundle_without_fresh_status_lists_never_gives_valid(
    city: City, tmp_path: Path, withheld: str, type_id: str
) -> None:
    """A device fed an old status list (or none) inside a genuinely signed bundle shows amber."""
    old = city.status_tokens(now=NOW - timedelta(days=3))
    status_tokens = {} if withheld == "no_lists" else old
    bundle_path, root_path = city.write_bundle(tmp_path, status_tokens=status_tokens)
    result = Verifier.load(bundle_path, root_key=root_path, now=NOW).check(
        city.issue(type_id), now=NOW
    )
    expected = "status_unchecked" if withheld == "no_lists" else "stale_status"
    assert (result.state, result.tone, result.valid) == (expected, "amber", False)
    assert result.admit == (type_id == "library")  # parking fails closed
