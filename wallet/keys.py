"""Signing keys: one algorithm per key, a thumbprint-derived kid, metadata.

Pure: keys go in and out as bytes and values; the keys folder is handled by
:mod:`wallet.keystore`. Every key is pinned to exactly one algorithm; nothing
here ever takes an algorithm from a token.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from wallet.codec import b64url_decode, b64url_encode
from wallet.errors import KeyPassphraseError, MalformedDataError, SigningKeyError

Algorithm = Literal["ES256", "EdDSA"]
ALGORITHMS: tuple[Algorithm, ...] = ("ES256", "EdDSA")
KID_LENGTH = 8  # base64url characters of the RFC 7638 thumbprint (48 bits)

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKeyObject = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


class KeyState(StrEnum):
    """Life cycle: a key signs while active, verifies while retired, never once revoked."""

    ACTIVE = "active"
    RETIRED = "retired"
    REVOKED = "revoked"


class KeyPhase(StrEnum):
    """What a key does at one moment: its stored state read against its signing window."""

    STAGED = "staged"  # active, its window opens later: published, not signing yet
    ACTIVE = "active"  # may sign now
    RETIRED = "retired"  # retired, or its window has closed: verifies what it signed
    REVOKED = "revoked"


class KeyRole(StrEnum):
    PASS = "pass"  # noqa: S105 - signs pass tokens and status list tokens
    ROOT = "root"  # signs trust bundles only, never a pass


def _timestamp(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


def _from_timestamp(value: object, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**40:
        raise SigningKeyError(f"key metadata {name} must be a Unix time")
    return datetime.fromtimestamp(value, UTC)


@dataclass(frozen=True)
class KeyInfo:
    """What a verifier must know about a key besides its public part."""

    kid: str
    alg: Algorithm
    role: KeyRole
    state: KeyState
    created: datetime
    not_before: datetime
    not_after: datetime | None
    pass_types: frozenset[str]

    def allows(self, pass_type: str) -> bool:
        return self.role is KeyRole.PASS and pass_type in self.pass_types

    def covers(self, moment: datetime) -> bool:
        """Whether the key may have signed at ``moment`` (its signing window)."""
        return self.not_before <= moment and (self.not_after is None or moment <= self.not_after)

    def covers_unix(self, seconds: int) -> bool:
        """:meth:`covers` for a signed NumericDate, without building a datetime per scan."""
        start, end = self._window
        return start <= seconds and (end is None or seconds <= end)

    @functools.cached_property
    def _window(self) -> tuple[float, float | None]:
        # Float timestamps keep a window's microseconds, so the comparisons with
        # whole seconds are exactly those of the datetimes. Cached in the instance
        # dict, which a frozen dataclass still has.
        end = None if self.not_after is None else self.not_after.timestamp()
        return self.not_before.timestamp(), end

    def phase(self, now: datetime) -> KeyPhase:
        """The key's phase at ``now``: a staged key is active with a window still ahead."""
        if self.state is not KeyState.ACTIVE:
            return KeyPhase(self.state.value)
        if now < self.not_before:
            return KeyPhase.STAGED
        if self.not_after is not None and now > self.not_after:
            return KeyPhase.RETIRED
        return KeyPhase.ACTIVE

    def to_json(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "alg": self.alg,
            "role": self.role.value,
            "state": self.state.value,
            "created": _timestamp(self.created),
            "not_before": _timestamp(self.not_before),
            "not_after": _timestamp(self.not_after),
            "pass_types": sorted(self.pass_types),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> KeyInfo:
        try:
            kid, alg, role, state = raw["kid"], raw["alg"], raw["role"], raw["state"]
            pass_types = raw["pass_types"]
            created = _from_timestamp(raw["created"], "created")
            not_before = _from_timestamp(raw["not_before"], "not_before")
            not_after = _from_timestamp(raw.get("not_after"), "not_after")
        except (KeyError, TypeError) as exc:
            raise SigningKeyError(f"key metadata is incomplete: {exc}") from exc
        if not isinstance(kid, str) or not kid or alg not in ALGORITHMS:
            raise SigningKeyError("key metadata needs a kid and an algorithm (ES256 or EdDSA)")
        if not isinstance(pass_types, list) or not all(isinstance(t, str) for t in pass_types):
            raise SigningKeyError("key metadata pass_types must be a list of type ids")
        if created is None or not_before is None:
            raise SigningKeyError("key metadata needs created and not_before")
        try:
            return cls(
                kid=kid,
                alg=alg,
                role=KeyRole(role),
                state=KeyState(state),
                created=created,
                not_before=not_before,
                not_after=not_after,
                pass_types=frozenset(pass_types),
            )
        except ValueError as exc:
            raise SigningKeyError(f"key metadata has an unknown role or state: {exc}") from exc


def algorithm_for(key: PublicKeyObject) -> Algorithm:
    """The one algorithm a public key may be used with; refuse every other curve."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "EdDSA"
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    raise SigningKeyError("only P-256 (ES256) and Ed25519 (EdDSA) keys are supported")


def public_jwk(key: PublicKeyObject) -> dict[str, str]:
    """The required members of the key's JWK, as RFC 7638 orders them."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"crv": "Ed25519", "kty": "OKP", "x": b64url_encode(raw)}
    algorithm_for(key)
    numbers = key.public_numbers()
    return {
        "crv": "P-256",
        "kty": "EC",
        "x": b64url_encode(numbers.x.to_bytes(32, "big")),
        "y": b64url_encode(numbers.y.to_bytes(32, "big")),
    }


def thumbprint(key: PublicKeyObject) -> str:
    """RFC 7638 JWK thumbprint (SHA-256), base64url."""
    canonical = json.dumps(public_jwk(key), separators=(",", ":"), sort_keys=True)
    return b64url_encode(hashlib.sha256(canonical.encode("ascii")).digest())


def kid_for(key: PublicKeyObject) -> str:
    """A short kid; verifiers try every key that shares it."""
    return thumbprint(key)[:KID_LENGTH]


def _jwk_bytes(value: object) -> bytes:
    if not isinstance(value, str):
        raise SigningKeyError("a JWK coordinate must be base64url text")
    try:
        return b64url_decode(value, what="JWK coordinate")
    except MalformedDataError as exc:
        raise SigningKeyError(exc.message) from exc


def public_key_from_jwk(jwk: Mapping[str, Any]) -> PublicKeyObject:
    """Parse the public part of an EC P-256 or Ed25519 JWK, strictly."""
    try:
        if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
            x = _jwk_bytes(jwk["x"])
            if len(x) != 32:
                raise SigningKeyError("Ed25519 key must be 32 bytes")
            return ed25519.Ed25519PublicKey.from_public_bytes(x)
        if jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
            x, y = _jwk_bytes(jwk["x"]), _jwk_bytes(jwk["y"])
            if len(x) != 32 or len(y) != 32:
                raise SigningKeyError("P-256 coordinates must be 32 bytes each")
            numbers = ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
            )
            return numbers.public_key()
    except (KeyError, TypeError, ValueError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError(f"malformed JWK: {exc}") from exc
    raise SigningKeyError("only EC P-256 and OKP Ed25519 JWKs are supported")


def load_public_key_pem(data: bytes) -> PublicKeyObject:
    """Load a PEM public key, refusing anything but P-256 and Ed25519."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError("not a PEM public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise SigningKeyError("only P-256 (ES256) and Ed25519 (EdDSA) keys are supported")
    algorithm_for(key)
    return key


def public_key_pem(key: PublicKeyObject) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(frozen=True)
class PublicKey:
    """A verification key with its metadata."""

    info: KeyInfo
    key: PublicKeyObject

    def __post_init__(self) -> None:
        if algorithm_for(self.key) != self.info.alg:
            raise SigningKeyError(f"key {self.info.kid} is not a {self.info.alg} key")

    @property
    def kid(self) -> str:
        return self.info.kid

    def pem(self) -> bytes:
        return public_key_pem(self.key)

    def fingerprint(self) -> str:
        """SHA-256 of the key's SubjectPublicKeyInfo, as staff compare it: "3F2A 9C01 …".

        The scanner app shows the same for the root key it pinned.
        """
        der = self.key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        digest = hashlib.sha256(der).hexdigest().upper()
        return " ".join(digest[i : i + 4] for i in range(0, len(digest), 4))

    def jwk(self) -> dict[str, Any]:
        """The JWK as published in the JWKS (RFC 7517 members only)."""
        return {**public_jwk(self.key), "kid": self.kid, "alg": self.info.alg, "use": "sig"}


@dataclass(frozen=True)
class SigningKey:
    """A private key with its metadata."""

    info: KeyInfo
    key: PrivateKey

    def __post_init__(self) -> None:
        if algorithm_for(self.key.public_key()) != self.info.alg:
            raise SigningKeyError(f"key {self.info.kid} is not a {self.info.alg} key")

    @property
    def kid(self) -> str:
        return self.info.kid

    def public(self) -> PublicKey:
        return PublicKey(info=self.info, key=self.key.public_key())

    def with_info(self, **changes: Any) -> SigningKey:
        return replace(self, info=replace(self.info, **changes))

    def private_pem(self, *, passphrase: bytes | None) -> bytes:
        """PKCS#8 PEM, encrypted when a passphrase is given."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase)
            if passphrase
            else serialization.NoEncryption()
        )
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )


def generate_key(
    *,
    alg: Algorithm = "ES256",
    role: KeyRole = KeyRole.PASS,
    pass_types: Iterable[str] = (),
    now: datetime,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> SigningKey:
    """A fresh key pinned to ``alg``; it signs from ``not_before`` (default: now)."""
    if alg not in ALGORITHMS:
        raise SigningKeyError(f"unsupported algorithm {alg!r}; use ES256 or EdDSA")
    private = _private_key_with_usable_kid(alg)
    types = frozenset(pass_types)
    if role is KeyRole.PASS and not types:
        raise SigningKeyError("a pass signing key needs at least one pass type")
    if role is KeyRole.ROOT and types:
        raise SigningKeyError("the trust-root key never signs passes: give it no pass types")
    info = KeyInfo(
        kid=kid_for(private.public_key()),
        alg=alg,
        role=role,
        state=KeyState.ACTIVE,
        created=now,
        not_before=now if not_before is None else not_before,
        not_after=not_after,
        pass_types=types,
    )
    return SigningKey(info=info, key=private)


def signing_key_at(
    keys: Iterable[PublicKey], *, role: KeyRole, pass_type: str | None, now: datetime
) -> PublicKey | None:
    """The key that signs at ``now``: of the active keys whose window covers it,
    the one whose window opened last (then the newest, then the greatest kid).

    A function of the keys and the time only, so every server with the same
    keys folder picks the same key at the same moment without asking the
    others: a staged key takes over exactly when its window opens.
    """
    candidates = [
        k
        for k in keys
        if k.info.role is role
        and k.info.state is KeyState.ACTIVE
        and k.info.covers(now)
        and (pass_type is None or k.info.allows(pass_type))
    ]
    return max(candidates, key=lambda k: (k.info.not_before, k.info.created, k.kid), default=None)


# A staged key must be in every bundle a device may still be using when it
# takes over: a bundle lives WALLET_BUNDLE_LIFETIME, and servers re-sign it
# only once the keys folder has reached them, which this margin allows for.
COPY_MARGIN = timedelta(hours=1)
LONGEST_STAGING = timedelta(days=366)  # later is a typo, not a plan


def check_takeover(at: datetime, *, now: datetime, bundle_lifetime: timedelta) -> datetime:
    """``at`` in UTC to the second, if a staged key may start signing then.

    :raises SigningKeyError: saying why not (past, too soon, too far ahead).
    """
    if at.tzinfo is None:
        raise ValueError("naive datetime: use aware UTC datetimes")
    at = at.astimezone(UTC).replace(microsecond=0)
    earliest = (now + bundle_lifetime + COPY_MARGIN).replace(microsecond=0)
    shown = f"{at:%Y-%m-%d %H:%M:%S} UTC"
    if at <= now:
        raise SigningKeyError(f"the new key cannot take over at {shown}: that is in the past")
    if at < earliest:
        raise SigningKeyError(
            f"the new key cannot take over at {shown}: that is too soon. A device may use a "
            f"trust bundle from before the rotation for up to {_span(bundle_lifetime)} "
            "(WALLET_BUNDLE_LIFETIME) and would not know the new key, and the keys folder "
            f"needs time ({_span(COPY_MARGIN)}) to reach every server; the earliest is "
            f"{earliest:%Y-%m-%d %H:%M:%S} UTC"
        )
    if at > now + LONGEST_STAGING:
        raise SigningKeyError(
            f"the new key cannot take over at {shown}: that is more than a year ahead"
        )
    return at


def _span(span: timedelta) -> str:
    """Whole days, hours and minutes, for messages: "7 days 1 hour"."""
    minutes = int(span.total_seconds()) // 60
    parts = [(minutes // 1440, "day"), (minutes // 60 % 24, "hour"), (minutes % 60, "minute")]
    text = " ".join(f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in parts if n)
    return text or "no time"


def _private_key_with_usable_kid(alg: Algorithm) -> PrivateKey:
    """A fresh private key whose kid does not start with "-".

    The kid is typed on command lines (`wallet keys retire KID`), where a
    leading "-" reads as an option; one key in 64 would draw such a kid.
    """
    while True:
        private: PrivateKey = (
            ec.generate_private_key(ec.SECP256R1())
            if alg == "ES256"
            else ed25519.Ed25519PrivateKey.generate()
        )
        if not kid_for(private.public_key()).startswith("-"):
            return private


def pem_is_encrypted(data: bytes) -> bool:
    """Whether a PEM private key needs a passphrase; cryptography's parser decides, not a sniff."""
    try:
        serialization.load_pem_private_key(data, password=None)
    except TypeError:  # "Password was not given but private key is encrypted"
        return True
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError("the private key file is damaged or not a PEM key") from exc
    return False


def load_private_key_pem(data: bytes, *, passphrase: bytes | None, info: KeyInfo) -> SigningKey:
    """Load a PKCS#8 PEM private key and check it matches its metadata."""
    try:
        private = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError as exc:
        # cryptography says TypeError for "encrypted but no password" and the reverse.
        raise KeyPassphraseError(
            f"key {info.kid}: {exc}. Set WALLET_KEY_PASSPHRASE to the passphrase "
            "the key was created with."
        ) from exc
    except ValueError as exc:
        raise KeyPassphraseError(
            f"key {info.kid} cannot be decrypted: wrong WALLET_KEY_PASSPHRASE or damaged file"
        ) from exc
    except UnsupportedAlgorithm as exc:
        raise SigningKeyError(f"key {info.kid}: unsupported key type") from exc
    if not isinstance(private, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise SigningKeyError(f"key {info.kid}: only P-256 and Ed25519 keys are supported")
    public = private.public_key()
    if algorithm_for(public) != info.alg or kid_for(public) != info.kid:
        raise SigningKeyError(f"key {info.kid}: the key file does not match its metadata")
    return SigningKey(info=info, key=private)


class KeyRing:
    """Verification keys by kid; several keys may share a shortened kid."""

    def __init__(self, keys: Iterable[PublicKey]) -> None:
        self._by_kid: dict[str, tuple[PublicKey, ...]] = {}
        for key in keys:
            self._by_kid[key.kid] = (*self._by_kid.get(key.kid, ()), key)

    def find(self, kid: str) -> tuple[PublicKey, ...]:
        return self._by_kid.get(kid, ())

    def __iter__(self) -> Iterator[PublicKey]:
        return (key for keys in self._by_kid.values() for key in keys)

    def __len__(self) -> int:
        return sum(len(keys) for keys in self._by_kid.values())
