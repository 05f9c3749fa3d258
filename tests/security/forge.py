"""Hand-crafted hostile JWS strings, built the way an attacker would.

The attacker does not use our signing code: headers and payloads are JSON text
we write ourselves (so they may hold duplicate members or odd spellings) and
signatures come straight from ``cryptography`` or ``hmac``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tests.factories import HOLDERS, ISSUER, NOW, status_uri

Signer = Callable[[bytes], bytes]
Part = Mapping[str, Any] | str | bytes


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def unix(moment: datetime) -> int:
    return int(moment.timestamp())


def _raw(part: Part) -> bytes:
    """A mapping becomes compact JSON; text is taken as the literal JSON we wrote."""
    if isinstance(part, bytes):
        return part
    if isinstance(part, str):
        return part.encode("utf-8")
    return json.dumps(part, separators=(",", ":")).encode("utf-8")


def ecdsa_signer(private: ec.EllipticCurvePrivateKey, *, size: int | None = None) -> Signer:
    """Raw r||s as JWS wants it; ``size`` bytes per half (default: the curve's)."""
    half = size or (private.curve.key_size + 7) // 8

    def sign(data: bytes) -> bytes:
        r, s = decode_dss_signature(private.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(half, "big") + s.to_bytes(half, "big")

    return sign


def eddsa_signer(private: ed25519.Ed25519PrivateKey) -> Signer:
    return private.sign


def hmac_signer(secret: bytes) -> Signer:
    return lambda data: hmac.new(secret, data, hashlib.sha256).digest()


def signer_for(private: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> Signer:
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return eddsa_signer(private)
    return ecdsa_signer(private)


def jws(header: Part, payload: Part, *, sign: Signer | None = None, signature: bytes = b"") -> str:
    """A compact JWS over exactly the bytes given; signed by ``sign`` if there is one."""
    signing_input = f"{b64url(_raw(header))}.{b64url(_raw(payload))}"
    if sign is not None:
        signature = sign(signing_input.encode("ascii"))
    return f"{signing_input}.{b64url(signature)}"


def header(kid: str, *, alg: str = "ES256", typ: str = "pass+jwt", **extra: Any) -> dict[str, Any]:
    return {"alg": alg, "kid": kid, "typ": typ, **extra}


def pass_claims(
    type_id: str = "library",
    *,
    issued_at: datetime | None = None,
    expires_at: datetime | None = None,
    idx: int = 4711,
    issuer: str = ISSUER,
) -> dict[str, Any]:
    """The claims a genuine pass carries (as ``City.issue`` would sign them)."""
    issued_at = issued_at or NOW - timedelta(days=1)
    expires_at = expires_at or issued_at + timedelta(days=365)
    return {
        "iss": issuer,
        "sub": "SERIAL0123456789",
        "pt": type_id,
        "iat": unix(issued_at),
        "exp": unix(expires_at),
        "h": dict(HOLDERS[type_id]),
        "status": {"status_list": {"idx": idx, "uri": status_uri(type_id)}},
    }


def segments(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """Header, payload and signature of a well-formed compact JWS (no checks)."""
    head, body, signature = token.split(".")
    return (
        json.loads(b64url_decode(head)),
        json.loads(b64url_decode(body)),
        b64url_decode(signature),
    )


def replace_char(text: str, index: int) -> str:
    """Change one base64url character at ``index`` into another, keeping canonical form."""
    old = text[index]
    new = "A" if old != "A" else "B"
    return text[:index] + new + text[index + 1 :]
