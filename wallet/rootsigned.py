"""What the trust root signs (the bundle, the plate index): the checks they all get.

Each such document is a JWS of its own ``typ`` signed by the pinned root key,
with a format number, the issuer, a version that only grows, and ``iat`` and
``exp``. Checked here once for every kind, with the kind named in the message;
what the document carries besides is its own module's business.
The scanner's JavaScript twin is ``verifier/rootsigned.js``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeGuard

from wallet.errors import BundleError, BundleExpiredError, BundleRollbackError, TokenRejected
from wallet.jws import verify_jws
from wallet.keys import KeyRing, PublicKey

__all__ = ["RootSigned", "verify_root_signed"]

MAX_TIME = 2**34  # iat and exp: Unix seconds, far beyond any real date


@dataclass(frozen=True)
class RootSigned:
    """A document the root signed, its common members checked."""

    payload: dict[str, Any]
    issuer: str
    version: int
    issued_at: datetime
    expires_at: datetime


def _whole(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)  # 2.0 and true are not 2, 1


def verify_root_signed(
    token: object,
    root: PublicKey,
    *,
    typ: str,
    max_length: int,
    fmt: int,
    what: str,
    when_expired: str,
    now: datetime,
    held_version: int | None,
) -> RootSigned:
    """Check the signature, format, issuer, version, times, expiry and rollback.

    `what` names the document in messages ("the bundle"); `when_expired` says
    what to do about an expired one.

    :raises BundleError: (a subclass: expired, rolled back) saying what is wrong.
    """
    try:
        verified = verify_jws(token, KeyRing([root]), typ=typ, max_length=max_length)
    except TokenRejected as exc:
        raise BundleError(f"{what} is not signed by the pinned trust root ({exc.code})") from exc
    payload = verified.payload
    if not _whole(payload.get("fmt")) or payload.get("fmt") != fmt:
        raise BundleError(f"{what} format is unknown; update the verifier")
    issuer, version = payload.get("iss"), payload.get("ver")
    if not isinstance(issuer, str) or not issuer:
        raise BundleError(f"{what} names no issuer")
    if not _whole(version) or version < 1:
        raise BundleError(f"{what} version must be a positive whole number")
    issued_at, expires_at = (_time(payload, name, what) for name in ("iat", "exp"))
    if now >= expires_at:
        raise BundleExpiredError(
            f"{what} expired on {expires_at:%Y-%m-%d %H:%M} UTC; {when_expired}"
        )
    if held_version is not None and version < held_version:
        raise BundleRollbackError(
            f"{what} has version {version}, older than the held version {held_version}"
        )
    return RootSigned(payload, issuer, version, issued_at, expires_at)


def _time(payload: dict[str, Any], name: str, what: str) -> datetime:
    value = payload.get(name)
    if not _whole(value) or not 0 < value < MAX_TIME:
        raise BundleError(f"{what}'s {name} is missing or not a Unix time")
    return datetime.fromtimestamp(value, UTC)
