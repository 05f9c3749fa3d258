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
    BundleExpiredError,
    BundleRollbackError,
    SigningKeyError,
    TokenRejected,
)
from wallet.jws import (
    sign_jws,
    verify_jws,
)
from wallet.keys import (
    KeyInfo,
    KeyRing,
    KeyRole,
    KeyState,
    PublicKey,
    SigningKey,
    algorithm_for,
    kid_for,
    load_public_key_pem,
    public_key_from_jwk,
)

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


def _time(payload: Mapping[str, Any], name: str) -> datetime:
    value = payload.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**34:
        raise BundleError(f"the bundle's {name} is missing or not a Unix time")
    return datetime.fromtimestamp(value, UTC)


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
    try:
        verified = verify_jws(token, KeyRing([root]), typ=BUNDLE_TYP, max_length=MAX_BUNDLE_LENGTH)
    except TokenRejected as exc:
        raise BundleError(
            f"the bundle is not signed by the pinned trust root ({exc.code}: {exc.message})"
        ) from exc
    payload = verified.payload
    if payload.get("fmt") != FORMAT:
        raise BundleError("the bundle format is unknown; update wallet-verify")
    issuer, version = payload.get("iss"), payload.get("ver")
    if not isinstance(issuer, str) or not issuer:
        raise BundleError("the bundle names no issuer")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise BundleError("the bundle version must be a positive whole number")
    issued_at, expires_at = _time(payload, "iat"), _time(payload, "exp")
    if now >= expires_at:
        raise BundleExpiredError(
            f"the bundle expired on {expires_at:%Y-%m-%d %H:%M} UTC; sync a new one"
        )
    if held_version is not None and version < held_version:
        raise BundleRollbackError(
            f"the bundle has version {version}, older than the held version {held_version}"
        )
    keys, lists, types = payload.get("keys"), payload.get("status_lists"), payload.get("pass_types")
    if not isinstance(keys, list):
        raise BundleError("the bundle's keys must be a list")
    if not isinstance(lists, dict) or not all(isinstance(v, str) for v in lists.values()):
        raise BundleError("the bundle's status lists must map URIs to tokens")
    if not isinstance(types, dict) or not all(isinstance(v, dict) for v in types.values()):
        raise BundleError("the bundle's pass types must map ids to display data")
    return TrustBundle(
        issuer=issuer,
        version=version,
        issued_at=issued_at,
        expires_at=expires_at,
        keys=tuple(_key(entry) for entry in keys),
        status_lists=lists,
        pass_types=types,
    )
