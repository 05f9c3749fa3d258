"""The JWS layer under every signed token: compact serialization, strict and pinned.

Signing goes through PyJWT's algorithm objects. Verification is strict before
any cryptography runs: a length cap, canonical base64url, JSON without
duplicate members, a header of exactly ``alg``, ``kid`` and ``typ``, and an
algorithm that must equal the one pinned to the key, never one chosen by the
token. What the payload means is the business of :mod:`wallet.tokens`.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from typing import Any, NamedTuple, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from wallet.codec import b64url_decode, b64url_encode, b64url_length, parse_json_object
from wallet.errors import (
    AlgNoneError,
    AlgorithmMismatchError,
    BadSignatureError,
    CritHeaderError,
    DuplicateJSONMemberError,
    DuplicateMemberError,
    ForbiddenHeaderError,
    HeaderError,
    MalformedDataError,
    MalformedTokenError,
    SigningKeyError,
    TokenTooLongError,
    UnknownKeyError,
    WrongTypeError,
)
from wallet.keys import KeyRing, KeyState, PublicKey, SigningKey

__all__ = ["JWSVerifier", "VerifiedJWS", "sign_jws", "verify_jws"]

_HEADER_MEMBERS = frozenset({"alg", "kid", "typ"})
_FETCH_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c"})
# PyJWT's algorithm objects sign. Verification calls cryptography directly with
# the key's pinned algorithm: it is the hot path of every scan on the street.
_ALGORITHMS = {"ES256": ECAlgorithm(ECAlgorithm.SHA256), "EdDSA": OKPAlgorithm()}
# ES256 verifies a SHA-256 digest made by hashlib: the same ECDSA, and a third of
# the cost of cryptography hashing the message inside verify() (measured).
_ECDSA_PREHASHED_SHA256 = ec.ECDSA(Prehashed(hashes.SHA256()))


def _der_integer(raw: bytes) -> bytes:
    """A DER INTEGER of the unsigned big-endian number ``raw`` (minimal, non-negative)."""
    value = raw.lstrip(b"\0") or b"\0"
    if value[0] & 0x80:
        value = b"\0" + value
    return b"\x02" + bytes((len(value),)) + value


# The DER framing of r || s when neither half starts with a zero byte (255 in 256
# signatures): only the high bits of r[0] and s[0] decide it, as (head, middle).
_DER_FRAMES = {
    (r_high, s_high): (
        b"\x30" + bytes((68 + r_high + s_high,)) + b"\x02" + bytes((32 + r_high,)) + bytes(r_high),
        b"\x02" + bytes((32 + s_high,)) + bytes(s_high),
    )
    for r_high in (0, 1)
    for s_high in (0, 1)
}


def _der_signature(signature: bytes) -> bytes:
    """The DER ECDSA-Sig-Value of a raw 64-byte JWS ``r || s``.

    What cryptography's encode_dss_signature builds from two ints, from the bytes
    directly: no int conversions, and for the usual signature a table lookup and
    one join, on every scan.
    """
    r_first, s_first = signature[0], signature[32]
    if r_first and s_first:
        head, middle = _DER_FRAMES[r_first >> 7, s_first >> 7]
        return b"".join((head, signature[:32], middle, signature[32:]))
    body = _der_integer(signature[:32]) + _der_integer(signature[32:])
    return b"\x30" + bytes((len(body),)) + body  # at most 70 bytes: short-form length


def _signature_matches(key: PublicKey, signing_input: bytes, signature: bytes) -> bool:
    """Check a raw JWS signature with the algorithm pinned to ``key``."""
    # PublicKey guarantees at construction that the key object fits its algorithm.
    try:
        if key.info.alg == "ES256":
            if len(signature) != 64:
                return False
            ecdsa_key = cast(ec.EllipticCurvePublicKey, key.key)
            digest = hashlib.sha256(signing_input).digest()
            ecdsa_key.verify(_der_signature(signature), digest, _ECDSA_PREHASHED_SHA256)
        else:
            cast(ed25519.Ed25519PublicKey, key.key).verify(signature, signing_input)
    except InvalidSignature:
        return False
    return True


def _decode_segment(segment: str, what: str) -> bytes:
    try:
        return b64url_decode(segment, what=what)
    except MalformedDataError as exc:
        raise MalformedTokenError(exc.message) from exc


def _parse_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        return parse_json_object(data, what=what)
    except DuplicateJSONMemberError as exc:
        raise DuplicateMemberError(exc.message) from exc
    except MalformedDataError as exc:
        raise MalformedTokenError(exc.message) from exc


class VerifiedJWS(NamedTuple):
    """A JWS whose signature checked out against ``key``.

    A NamedTuple rather than a frozen dataclass: as immutable, and built on every
    scan at a third of the cost.
    """

    key: PublicKey
    header: Mapping[str, Any]
    payload: dict[str, Any]


@functools.lru_cache(maxsize=64)
def _header_segment(alg: str, kid: str, typ: str) -> str:
    header = {"alg": alg, "kid": kid, "typ": typ}
    return b64url_encode(json.dumps(header, separators=(",", ":"), sort_keys=True).encode("ascii"))


def sign_jws(payload: Mapping[str, Any], key: SigningKey, *, typ: str) -> str:
    """Compact JWS with exactly ``alg``, ``kid`` and ``typ`` in its header.

    PyJWT's algorithm objects make the signature; the header segment of a key
    is the same for every token, so it is built once.
    """
    if key.info.state is not KeyState.ACTIVE:
        raise SigningKeyError(f"key {key.kid} is {key.info.state.value} and signs nothing more")
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    signing_input = f"{_header_segment(key.info.alg, key.kid, typ)}.{b64url_encode(body)}"
    signature = _ALGORITHMS[key.info.alg].sign(signing_input.encode("ascii"), key.key)
    return f"{signing_input}.{b64url_encode(signature)}"


def _vet_header(header: Mapping[str, Any], keys: KeyRing, typ: str) -> tuple[PublicKey, ...]:
    """The keys a header may be verified with, or why it is refused."""
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise HeaderError("the header has no algorithm")
    if alg.strip().lower() == "none":
        raise AlgNoneError("unsigned tokens (alg none) are never accepted")
    if "crit" in header:
        raise CritHeaderError("critical header extensions are not supported")
    fetched = _FETCH_HEADERS & header.keys()
    if fetched:
        raise ForbiddenHeaderError(
            f"keys are never taken from the token ({', '.join(sorted(fetched))})"
        )
    if header.keys() != _HEADER_MEMBERS:
        extra = sorted(header.keys() - _HEADER_MEMBERS) or sorted(_HEADER_MEMBERS - header.keys())
        raise HeaderError(f"unexpected or missing header members: {', '.join(extra)}")
    if not isinstance(header["typ"], str) or header["typ"].lower() != typ:
        raise WrongTypeError(f"the token type is not {typ}")
    kid = header["kid"]
    if not isinstance(kid, str):
        raise HeaderError("the key id must be text")
    candidates = keys.find(kid)
    if not candidates:
        raise UnknownKeyError(f"no trusted key has the id {kid[:16]!r}")
    pinned = tuple(k for k in candidates if k.info.alg == alg)
    if not pinned:
        raise AlgorithmMismatchError(f"key {kid} is not used with {alg[:16]}")
    return pinned


class JWSVerifier:
    """Checks compact JWS of one ``typ`` against a key ring; the token chooses nothing.

    Every pass signed by one key carries the same header, so a header that was
    vetted once is remembered (a bounded number of them: only genuine-looking
    headers that name a trusted key get in).
    """

    _CACHE_SIZE = 64

    def __init__(self, keys: KeyRing, *, typ: str, max_length: int) -> None:
        self.keys = keys
        self.typ = typ
        self.max_length = max_length
        self._vetted: dict[str, tuple[dict[str, Any], tuple[PublicKey, ...]]] = {}
        # The QR text carries the header decoded: its exact bytes -> its segment.
        self._segments: dict[bytes, str] = {}

    def verify(self, token: object) -> VerifiedJWS:
        """Verify a compact JWS.

        :raises TokenRejected: (a subclass) naming why the token is not trusted.
        """
        if not isinstance(token, str):
            raise MalformedTokenError("a token must be text")
        if len(token) > self.max_length:
            raise TokenTooLongError(f"the token is longer than {self.max_length} characters")
        parts = token.split(".")
        if len(parts) != 3:
            raise MalformedTokenError("a compact JWS has exactly three parts")
        # The header is judged before the other parts are even decoded, so an
        # unsigned "header.payload." token is named alg_none, not malformed.
        header, pinned = self._vet(parts[0])
        payload = _decode_segment(parts[1], "payload")
        signature = _decode_segment(parts[2], "signature")
        signing_input = token[: len(parts[0]) + 1 + len(parts[1])].encode("ascii")
        return self._check_signature(header, pinned, payload, signature, signing_input)

    def verify_parts(self, header: bytes, payload: bytes, signature: bytes) -> VerifiedJWS:
        """Verify a JWS given as its decoded parts (as the QR text carries it)."""
        length = b64url_length(len(header)) + b64url_length(len(payload)) + 2
        if length + b64url_length(len(signature)) > self.max_length:
            raise TokenTooLongError(f"the token is longer than {self.max_length} characters")
        segment = self._segment(header)
        parsed, pinned = self._vet(segment)
        signing_input = f"{segment}.{b64url_encode(payload)}".encode("ascii")
        return self._check_signature(parsed, pinned, payload, signature, signing_input)

    def _segment(self, header: bytes) -> str:
        """The base64url of decoded header bytes, remembered for vetted headers only.

        The segment is a pure function of the bytes, and the cache is bounded like
        the vetted headers: a miss (a header not seen, refused, or a full cache)
        simply encodes, and :meth:`_vet` judges the result as ever.
        """
        segment = self._segments.get(header)
        if segment is None:
            segment = b64url_encode(header)
            if segment in self._vetted and len(self._segments) < self._CACHE_SIZE:
                self._segments[header] = segment
        return segment

    def _vet(self, segment: str) -> tuple[dict[str, Any], tuple[PublicKey, ...]]:
        """The parsed header and its keys, from the cache by its base64url segment.

        Only a segment that decoded strictly (so is canonical) gets into the cache,
        so a hit needs no decoding at all.
        """
        vetted = self._vetted.get(segment)
        if vetted is None:
            header = _parse_object(_decode_segment(segment, "header"), "header")
            vetted = (header, _vet_header(header, self.keys, self.typ))
            if len(self._vetted) < self._CACHE_SIZE:
                self._vetted[segment] = vetted
        return vetted

    @staticmethod
    def _check_signature(
        header: dict[str, Any],
        pinned: tuple[PublicKey, ...],
        payload: bytes,
        signature: bytes,
        signing_input: bytes,
    ) -> VerifiedJWS:
        for key in pinned:
            if _signature_matches(key, signing_input, signature):
                return VerifiedJWS(key, header, _parse_object(payload, "payload"))
        raise BadSignatureError("the signature does not match")


def verify_jws(token: object, keys: KeyRing, *, typ: str, max_length: int) -> VerifiedJWS:
    """Check one compact JWS against the keys (see :class:`JWSVerifier`)."""
    return JWSVerifier(keys, typ=typ, max_length=max_length).verify(token)
