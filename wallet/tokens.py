"""Signed tokens: pass tokens, status list tokens, and the JWS under both.

Signing goes through PyJWT's algorithm objects. Verification is strict before
any cryptography runs: a length cap, canonical base64url, JSON without duplicate members, a
header of exactly ``alg``, ``kid`` and ``typ``, and an algorithm that must equal
the one pinned to the key, never one chosen by the token.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from wallet.errors import SigningKeyError, StatusListError, TokenError
from wallet.keys import KeyRing, KeyRole, KeyState, PublicKey, SigningKey
from wallet.status import StatusList

PASS_TYP = "pass+jwt"  # noqa: S105 - a media type, not a password
STATUS_LIST_TYP = "statuslist+jwt"
MAX_PASS_TOKEN_LENGTH = 2048
MAX_STATUS_LIST_TOKEN_LENGTH = 4 * 1024 * 1024
LEEWAY = timedelta(seconds=60)
MAX_VALIDITY = timedelta(days=11 * 366)  # longest pass type validity (10 years) + margin
_MAX_VALIDITY_SECONDS = int(MAX_VALIDITY.total_seconds())
MAX_TIMESTAMP = 2**34  # about the year 2514; anything later is nonsense

_SEGMENT_RE = re.compile(r"[A-Za-z0-9_-]+")
# What a pass serial looks like (new_serial makes 16 characters of base64url).
SERIAL_RE = re.compile(r"[A-Za-z0-9_-]{8,64}")
_HEADER_MEMBERS = frozenset({"alg", "kid", "typ"})
_FETCH_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c"})
# PyJWT's algorithm objects sign. Verification calls cryptography directly with
# the key's pinned algorithm: it is the hot path of every scan on the street.
_ALGORITHMS = {"ES256": ECAlgorithm(ECAlgorithm.SHA256), "EdDSA": OKPAlgorithm()}
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


def _signature_matches(key: PublicKey, signing_input: bytes, signature: bytes) -> bool:
    """Check a raw JWS signature with the algorithm pinned to ``key``."""
    # PublicKey guarantees at construction that the key object fits its algorithm.
    try:
        if key.info.alg == "ES256":
            if len(signature) != 64:
                return False
            r = int.from_bytes(signature[:32], "big")
            s = int.from_bytes(signature[32:], "big")
            ecdsa_key = cast(ec.EllipticCurvePublicKey, key.key)
            ecdsa_key.verify(encode_dss_signature(r, s), signing_input, _ECDSA_SHA256)
        else:
            cast(ed25519.Ed25519PublicKey, key.key).verify(signature, signing_input)
    except InvalidSignature:
        return False
    return True


# -- errors ------------------------------------------------------------------


class TokenRejected(TokenError):
    """A token that fails verification; ``state`` is what a verifier shows."""

    state: ClassVar[str] = "invalid"

    def __init__(self, message: str, *, claims: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.claims: Mapping[str, Any] = claims or {}


class MalformedTokenError(TokenRejected):
    code = "malformed"


class TokenTooLongError(MalformedTokenError):
    code = "too_long"


class DuplicateMemberError(MalformedTokenError):
    code = "duplicate_member"


class HeaderError(TokenRejected):
    code = "bad_header"


class AlgNoneError(HeaderError):
    code = "alg_none"


class AlgorithmMismatchError(HeaderError):
    code = "alg_mismatch"


class CritHeaderError(HeaderError):
    code = "crit_header"


class ForbiddenHeaderError(HeaderError):
    code = "forbidden_header"


class WrongTypeError(HeaderError):
    code = "wrong_typ"


class UnknownKeyError(TokenRejected):
    code = "unknown_kid"
    state = "unknown_key"


class BadSignatureError(TokenRejected):
    code = "bad_signature"


class ClaimError(TokenRejected):
    code = "bad_claim"


class WrongIssuerError(ClaimError):
    code = "wrong_issuer"


class IssuedInFutureError(ClaimError):
    code = "issued_in_future"


class ExpiredError(TokenRejected):
    code = "expired"
    state = "expired"


class NotYetValidError(TokenRejected):
    code = "not_yet_valid"
    state = "not_yet_valid"


class KeyRevokedError(TokenRejected):
    code = "key_revoked"


class KeyNotAllowedError(TokenRejected):
    code = "key_not_allowed"


class KeyWindowError(TokenRejected):
    code = "key_window"


class StatusListSubjectError(TokenRejected):
    code = "status_list_subject"


# -- the JWS layer -----------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# For a segment of length 4n+2 (or 4n+3) the last character carries 4 (or 2) bits
# that decode to nothing; canonical base64url has them zero.
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_UNUSED_BITS_MASK = {2: 0x0F, 3: 0x03}
_CANONICAL_LAST = {
    rest: frozenset(c for i, c in enumerate(_ALPHABET) if not i & mask)
    for rest, mask in _UNUSED_BITS_MASK.items()
}


def _decode_segment(segment: str, what: str) -> bytes:
    """Canonical base64url only: no padding, whitespace or stray trailing bits."""
    rest = len(segment) % 4
    if rest == 1 or not _SEGMENT_RE.fullmatch(segment):
        raise MalformedTokenError(f"the {what} is not base64url")
    if rest and segment[-1] not in _CANONICAL_LAST[rest]:
        raise MalformedTokenError(f"the {what} is not canonical base64url")
    try:
        data = segment.encode("ascii").translate(_TO_STANDARD)
        return binascii.a2b_base64(data + b"==="[: (4 - rest) % 4])
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - the regex rules it out
        raise MalformedTokenError(f"the {what} is not base64url") from exc


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise DuplicateMemberError(f"duplicate JSON member {duplicate[:32]!r}")
    return result


def _no_constants(name: str) -> Any:
    raise MalformedTokenError(f"JSON constant {name} is not allowed")


_STRICT_JSON = json.JSONDecoder(object_pairs_hook=_unique_members, parse_constant=_no_constants)


def parse_json_object(data: bytes, what: str) -> dict[str, Any]:
    """Strict JSON: UTF-8 without BOM, no duplicate members, no NaN, an object."""
    try:
        value = _STRICT_JSON.decode(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        if isinstance(exc, TokenRejected):
            raise
        raise MalformedTokenError(f"the {what} is not valid JSON") from exc
    if not isinstance(value, dict):
        raise MalformedTokenError(f"the {what} is not a JSON object")
    return value


@dataclass(frozen=True)
class VerifiedJWS:
    """A JWS whose signature checked out against ``key``."""

    key: PublicKey
    header: Mapping[str, Any]
    payload: dict[str, Any]


@functools.lru_cache(maxsize=64)
def _header_segment(alg: str, kid: str, typ: str) -> str:
    header = {"alg": alg, "kid": kid, "typ": typ}
    return _b64url(json.dumps(header, separators=(",", ":"), sort_keys=True).encode("ascii"))


def sign_jws(payload: Mapping[str, Any], key: SigningKey, *, typ: str) -> str:
    """Compact JWS with exactly ``alg``, ``kid`` and ``typ`` in its header.

    PyJWT's algorithm objects make the signature; the header segment of a key
    is the same for every token, so it is built once.
    """
    if key.info.state is not KeyState.ACTIVE:
        raise SigningKeyError(f"key {key.kid} is {key.info.state.value} and signs nothing more")
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    signing_input = f"{_header_segment(key.info.alg, key.kid, typ)}.{_b64url(body)}"
    signature = _ALGORITHMS[key.info.alg].sign(signing_input.encode("ascii"), key.key)
    return f"{signing_input}.{_b64url(signature)}"


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
        self._vetted: dict[bytes, tuple[dict[str, Any], tuple[PublicKey, ...]]] = {}

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
        header, pinned = self._vet(_decode_segment(parts[0], "header"))
        payload = _decode_segment(parts[1], "payload")
        signature = _decode_segment(parts[2], "signature")
        signing_input = token[: len(parts[0]) + 1 + len(parts[1])].encode("ascii")
        return self._check_signature(header, pinned, payload, signature, signing_input)

    def verify_parts(self, header: bytes, payload: bytes, signature: bytes) -> VerifiedJWS:
        """Verify a JWS given as its decoded parts (as the QR text carries it)."""
        length = sum((4 * len(p) + 2) // 3 for p in (header, payload, signature)) + 2
        if length > self.max_length:
            raise TokenTooLongError(f"the token is longer than {self.max_length} characters")
        parsed, pinned = self._vet(header)
        signing_input = f"{_b64url(header)}.{_b64url(payload)}".encode("ascii")
        return self._check_signature(parsed, pinned, payload, signature, signing_input)

    def _vet(self, header_bytes: bytes) -> tuple[dict[str, Any], tuple[PublicKey, ...]]:
        vetted = self._vetted.get(header_bytes)
        if vetted is None:
            header = parse_json_object(header_bytes, "header")
            vetted = (header, _vet_header(header, self.keys, self.typ))
            if len(self._vetted) < self._CACHE_SIZE:
                self._vetted[header_bytes] = vetted
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
                return VerifiedJWS(
                    key=key, header=header, payload=parse_json_object(payload, "payload")
                )
        raise BadSignatureError("the signature does not match")


def verify_jws(token: object, keys: KeyRing, *, typ: str, max_length: int) -> VerifiedJWS:
    """Check one compact JWS against the keys (see :class:`JWSVerifier`)."""
    return JWSVerifier(keys, typ=typ, max_length=max_length).verify(token)


# -- claims helpers ----------------------------------------------------------


def _timestamp(payload: Mapping[str, Any], name: str, *, required: bool) -> datetime | None:
    value = payload.get(name)
    if value is None:
        if required:
            raise ClaimError(f"the {name} claim is missing")
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < MAX_TIMESTAMP:
        raise ClaimError(f"the {name} claim is not a sensible Unix time")
    return datetime.fromtimestamp(value, UTC)


def _unix(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: use aware UTC datetimes")
    return int(moment.timestamp())


def _check_key_for(key: PublicKey, issued_at: datetime) -> None:
    """The key's own rules: not revoked, role, signing window."""
    if key.info.state is KeyState.REVOKED:
        raise KeyRevokedError(f"key {key.kid} has been revoked")
    if key.info.role is not KeyRole.PASS:
        raise KeyNotAllowedError(f"key {key.kid} does not sign passes or status lists")
    if not key.info.covers(issued_at):
        raise KeyWindowError(f"key {key.kid} was not valid for signing at the token's issue time")


# -- pass tokens -------------------------------------------------------------


@dataclass(frozen=True)
class PassClaims:
    """The verified content of a pass token."""

    issuer: str
    serial: str
    pass_type: str
    issued_at: datetime
    expires_at: datetime
    not_before: datetime | None
    holder: Mapping[str, str]
    status_idx: int
    status_uri: str
    kid: str = field(default="")

    def display(self) -> dict[str, Any]:
        """Claims as plain JSON values for showing to staff."""
        shown: dict[str, Any] = {
            "serial": self.serial,
            "pass_type": self.pass_type,
            "issuer": self.issuer,
            "issued_at": self.issued_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "holder": dict(self.holder),
        }
        if self.not_before is not None:
            shown["not_before"] = self.not_before.isoformat()
        return shown


def sign_pass_token(
    *,
    key: SigningKey,
    issuer: str,
    serial: str,
    pass_type: str,
    holder: Mapping[str, str],
    issued_at: datetime,
    expires_at: datetime,
    not_before: datetime | None = None,
    status_idx: int,
    status_uri: str,
) -> str:
    """Sign a data-minimal pass token with ``key`` (which must be allowed for the type)."""
    if not key.info.allows(pass_type):
        raise SigningKeyError(f"key {key.kid} is not allowed to sign {pass_type} passes")
    if not key.info.covers(issued_at):
        raise SigningKeyError(f"key {key.kid} is outside its signing window")
    if not SERIAL_RE.fullmatch(serial):
        raise ValueError("serial must be 8-64 base64url characters")
    if expires_at <= issued_at or (not_before is not None and not_before >= expires_at):
        raise ValueError("a pass must expire after it is issued and after it starts")
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": serial,
        "pt": pass_type,
        "iat": _unix(issued_at),
        "exp": _unix(expires_at),
    }
    if not_before is not None and not_before > issued_at:
        claims["nbf"] = _unix(not_before)
    claims["h"] = dict(holder)
    claims["status"] = {"status_list": {"idx": status_idx, "uri": status_uri}}
    return sign_jws(claims, key, typ=PASS_TYP)


def _time_claim(payload: Mapping[str, Any], name: str) -> int:
    value = payload.get(name)
    if type(value) is not int or not 0 < value < MAX_TIMESTAMP:  # type() also refuses bool
        what = "is missing" if value is None else "is not a sensible Unix time"
        raise ClaimError(f"the {name} claim {what}")
    return value


def _pass_claims(payload: Mapping[str, Any], kid: str) -> PassClaims:
    """Shape of the claims, before any judgement of time or status."""
    issuer, serial, pass_type = payload.get("iss"), payload.get("sub"), payload.get("pt")
    if type(issuer) is not str or type(serial) is not str or type(pass_type) is not str:
        raise ClaimError("the iss, sub and pt claims must be text")
    if not SERIAL_RE.fullmatch(serial):
        raise ClaimError("the serial (sub) is malformed")
    iat, exp = _time_claim(payload, "iat"), _time_claim(payload, "exp")
    nbf = _time_claim(payload, "nbf") if "nbf" in payload else None
    if not iat < exp <= iat + _MAX_VALIDITY_SECONDS:
        raise ClaimError("the expiry (exp) is not within the longest validity after iat")
    holder = payload.get("h", {})
    if type(holder) is not dict or not all(
        type(k) is str and type(v) is str for k, v in holder.items()
    ):
        raise ClaimError("the holder claim (h) must map field names to text")
    status = payload.get("status")
    ref = status.get("status_list") if type(status) is dict else None
    if type(ref) is not dict or ref.keys() != {"idx", "uri"}:
        raise ClaimError("the status claim must be {status_list: {idx, uri}}")
    idx, uri = ref["idx"], ref["uri"]
    if type(idx) is not int or idx < 0 or type(uri) is not str:
        raise ClaimError("the status reference needs a whole-number idx and a uri")
    return PassClaims(
        issuer=issuer,
        serial=serial,
        pass_type=pass_type,
        issued_at=datetime.fromtimestamp(iat, UTC),
        expires_at=datetime.fromtimestamp(exp, UTC),
        not_before=None if nbf is None else datetime.fromtimestamp(nbf, UTC),
        holder=holder,
        status_idx=idx,
        status_uri=uri,
        kid=kid,
    )


class PassTokenVerifier:
    """Verifies pass tokens of one issuer against a key ring, many times over."""

    def __init__(self, keys: KeyRing, *, issuer: str) -> None:
        self.issuer = issuer
        self._jws = JWSVerifier(keys, typ=PASS_TYP, max_length=MAX_PASS_TOKEN_LENGTH)

    def verify(self, token: object, *, now: datetime) -> PassClaims:
        """Return the claims of a genuine, currently valid pass token.

        :raises TokenRejected: (a subclass) naming why the token is not trusted;
            errors raised after the signature checked out carry the claims.
        """
        return self._judge(self._jws.verify(token), now)

    def verify_parts(
        self, header: bytes, payload: bytes, signature: bytes, *, now: datetime
    ) -> PassClaims:
        """The same for a token given as its decoded parts (from QR text)."""
        return self._judge(self._jws.verify_parts(header, payload, signature), now)

    def _judge(self, verified: VerifiedJWS, now: datetime) -> PassClaims:
        claims = _pass_claims(verified.payload, verified.key.kid)
        key = verified.key
        try:
            if claims.issuer != self.issuer:
                raise WrongIssuerError(f"the pass was issued by {claims.issuer[:80]!r}")
            _check_key_for(key, claims.issued_at)
            if not key.info.allows(claims.pass_type):
                raise KeyNotAllowedError(
                    f"key {key.kid} may not sign {claims.pass_type[:32]} passes"
                )
            if claims.issued_at > now + LEEWAY:
                raise IssuedInFutureError("the pass claims to be issued in the future")
            if claims.not_before is not None and claims.not_before > now + LEEWAY:
                raise NotYetValidError("the pass is not valid yet")
            if now >= claims.expires_at + LEEWAY:
                raise ExpiredError("the pass has expired")
        except TokenRejected as exc:
            exc.claims = claims.display()  # the signature is genuine: show what it says
            raise
        return claims


def verify_pass_token(token: object, keys: KeyRing, *, issuer: str, now: datetime) -> PassClaims:
    """Verify one pass token (see :class:`PassTokenVerifier`)."""
    return PassTokenVerifier(keys, issuer=issuer).verify(token, now=now)


# -- status list tokens ------------------------------------------------------


@dataclass(frozen=True)
class StatusListToken:
    """A verified status list token (draft-ietf-oauth-status-list)."""

    uri: str
    issued_at: datetime
    expires_at: datetime
    ttl: int | None
    status_list: StatusList
    kid: str

    def is_stale(self, now: datetime) -> bool:
        return now >= self.expires_at


def sign_status_list_token(
    *,
    key: SigningKey,
    issuer: str,
    uri: str,
    status_list: StatusList,
    issued_at: datetime,
    lifetime: timedelta,
    ttl: timedelta,
) -> str:
    """A ``statuslist+jwt`` token with ``sub``, ``iat``, ``exp`` and ``ttl``."""
    if key.info.role is not KeyRole.PASS:
        raise SigningKeyError(f"key {key.kid} does not sign status lists")
    claims = {
        "iss": issuer,
        "sub": uri,
        "iat": _unix(issued_at),
        "exp": _unix(issued_at + lifetime),
        "ttl": int(ttl.total_seconds()),
        "status_list": status_list.to_claim(),
    }
    return sign_jws(claims, key, typ=STATUS_LIST_TYP)


def verify_status_list_token(
    token: object, keys: KeyRing, *, issuer: str, uri: str
) -> StatusListToken:
    """Check a status list token's signature, subject and shape (not its age)."""
    verified = verify_jws(token, keys, typ=STATUS_LIST_TYP, max_length=MAX_STATUS_LIST_TOKEN_LENGTH)
    payload = verified.payload
    if payload.get("sub") != uri:
        raise StatusListSubjectError("the status list's subject differs from the pass's uri")
    if payload.get("iss") != issuer:
        raise WrongIssuerError("the status list names another issuer, or none")
    issued_at = _timestamp(payload, "iat", required=True)
    # exp is only RECOMMENDED by the draft, but without it a copy never goes stale.
    expires_at = _timestamp(payload, "exp", required=True)
    assert issued_at is not None and expires_at is not None
    _check_key_for(verified.key, issued_at)
    ttl = payload.get("ttl")
    if ttl is not None and (not isinstance(ttl, int) or isinstance(ttl, bool) or ttl <= 0):
        raise ClaimError("the status list's ttl must be a positive whole number")
    try:
        status_list = StatusList.from_claim(payload.get("status_list"))
    except StatusListError as exc:
        raise ClaimError(f"the status list is malformed: {exc}") from exc
    return StatusListToken(
        uri=uri,
        issued_at=issued_at,
        expires_at=expires_at,
        ttl=ttl,
        status_list=status_list,
        kid=verified.key.kid,
    )


def signature_keys(keys: Iterable[PublicKey]) -> KeyRing:
    """The ring a verifier checks passes with: every pass key, revoked ones included."""
    return KeyRing(k for k in keys if k.info.role is KeyRole.PASS)


def new_serial() -> str:
    """An opaque pass serial: 96 random bits, so serials reveal no issue order.

    Serials starting with "-" are drawn again: a command line would read them
    as an option.
    """
    while True:
        serial = _b64url(secrets.token_bytes(12))
        if not serial.startswith("-"):
            return serial
