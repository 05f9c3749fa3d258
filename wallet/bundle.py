"""The trust bundle: everything an offline verifier needs, signed by the trust root.

A bundle carries the issuer, the pass signing keys with their metadata, the
current status list tokens, the pass types' display data and a version that
only ever grows. The trust-root key signs bundles and nothing else; devices pin
its public key at install and refuse a bundle older than the one they hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from wallet.errors import (
    BundleError,
    SigningKeyError,
)
from wallet.jws import (
    sign_jws,
)
from wallet.keys import (
    KeyInfo,
    KeyRole,
    KeyState,
    PublicKey,
    SigningKey,
    algorithm_for,
    kid_for,
    load_public_key_pem,
    public_key_from_jwk,
)
from wallet.rootsigned import verify_root_signed

BUNDLE_TYP = "wallet-bundle+jwt"
MAX_BUNDLE_LENGTH = 64 * 1024 * 1024
FORMAT = 1


@dataclass(frozen=True)
class TrustBundle:
    """The verified content of a bundle."""

    issuer: str
    version: int
    issued_at: datetime
    expires_at: datetime
    keys: tuple[PublicKey, ...]
    status_lists: Mapping[str, str]  # uri -> status list token
    pass_types: Mapping[str, Mapping[str, Any]]  # id -> display data

    def to_claims(self) -> dict[str, Any]:
        return {
            "iss": self.issuer,
            "fmt": FORMAT,
            "ver": self.version,
            "iat": int(self.issued_at.timestamp()),
            "exp": int(self.expires_at.timestamp()),
            "keys": [{"jwk": k.jwk(), "meta": k.info.to_json()} for k in self.keys],
            "status_lists": dict(self.status_lists),
            "pass_types": {k: dict(v) for k, v in self.pass_types.items()},
        }


def root_public_key(pem: bytes) -> PublicKey:
    """The pinned trust root, from its PEM file."""
    key = load_public_key_pem(pem)
    info = KeyInfo(
        kid=kid_for(key),
        alg=algorithm_for(key),
        role=KeyRole.ROOT,
        state=KeyState.ACTIVE,
        created=datetime.fromtimestamp(0, UTC),
        not_before=datetime.fromtimestamp(0, UTC),
        not_after=None,
        pass_types=frozenset(),
    )
    return PublicKey(info=info, key=key)


def sign_bundle(bundle: TrustBundle, root: SigningKey) -> str:
    """Sign with the trust root, which must never be a pass key."""
    if root.info.role is not KeyRole.ROOT:
        raise SigningKeyError(f"key {root.kid} is not the trust-root key")
    return sign_jws(bundle.to_claims(), root, typ=BUNDLE_TYP)


def _key(entry: object) -> PublicKey:
    if not isinstance(entry, dict) or not isinstance(entry.get("jwk"), dict):
        raise BundleError("a bundle key entry needs a jwk and meta")
    meta = entry.get("meta")
    if not isinstance(meta, dict):
        raise BundleError("a bundle key entry needs a jwk and meta")
    try:
        info = KeyInfo.from_json(meta)
        key = public_key_from_jwk(entry["jwk"])
    except SigningKeyError as exc:
        raise BundleError(f"a bundle key is malformed: {exc}") from exc
    if kid_for(key) != info.kid or algorithm_for(key) != info.alg:
        raise BundleError(f"bundle key {info.kid} does not match its metadata")
    if info.role is not KeyRole.PASS:
        raise BundleError("a bundle carries pass keys only")
    return PublicKey(info=info, key=key)


def verify_bundle(
    token: object, root: PublicKey, *, now: datetime, held_version: int | None = None
) -> TrustBundle:
    """Check a bundle against the pinned root, its expiry and the held version.

    :raises BundleError: (a subclass) saying what is wrong.
    """
    signed = verify_root_signed(
        token, root, typ=BUNDLE_TYP, max_length=MAX_BUNDLE_LENGTH, fmt=FORMAT,
        what="the bundle", when_expired="sync a new one", now=now, held_version=held_version,
    )  # fmt: skip
    payload = signed.payload
    keys, lists, types = payload.get("keys"), payload.get("status_lists"), payload.get("pass_types")
    if not isinstance(keys, list):
        raise BundleError("the bundle's keys must be a list")
    if not isinstance(lists, dict) or not all(isinstance(v, str) for v in lists.values()):
        raise BundleError("the bundle's status lists must map URIs to tokens")
    if not isinstance(types, dict) or not all(isinstance(v, dict) for v in types.values()):
        raise BundleError("the bundle's pass types must map ids to display data")
    return TrustBundle(
        issuer=signed.issuer,
        version=signed.version,
        issued_at=signed.issued_at,
        expires_at=signed.expires_at,
        keys=tuple(_key(entry) for entry in keys),
        status_lists=lists,
        pass_types=types,
    )
