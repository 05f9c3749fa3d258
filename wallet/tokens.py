"""Pass tokens and status list tokens: what their claims must say, on top of the JWS layer.

:mod:`wallet.jws` checks that a token is a genuine JWS of its type from a
trusted key; this module checks its claims (issuer, times, the holder fields,
the status reference) and the key's right to sign them.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from wallet.codec import b64url_encode
from wallet.errors import (
    ClaimError,
    ExpiredError,
    IssuedInFutureError,
    KeyNotAllowedError,
    KeyRevokedError,
    KeyWindowError,
    NotYetValidError,
    SigningKeyError,
    StatusListError,
    StatusListSubjectError,
    TokenRejected,
    WrongIssuerError,
)
from wallet.jws import JWSVerifier, VerifiedJWS, sign_jws, verify_jws
from wallet.keys import KeyRing, KeyRole, KeyState, PublicKey, SigningKey
from wallet.status import StatusList

__all__ = [
    "MAX_PASS_TOKEN_LENGTH",
    "MAX_STATUS_LIST_TOKEN_LENGTH",
    "PASS_TYP",
    "SERIAL_RE",
    "STATUS_LIST_TYP",
    "PassClaims",
    "PassTokenVerifier",
    "ShownClaims",
    "StatusListToken",
    "new_serial",
    "sign_pass_token",
    "sign_status_list_token",
    "signature_keys",
    "verify_pass_token",
    "verify_status_list_token",
]

PASS_TYP = "pass+jwt"  # noqa: S105 - a media type, not a password
STATUS_LIST_TYP = "statuslist+jwt"
MAX_PASS_TOKEN_LENGTH = 2048
MAX_STATUS_LIST_TOKEN_LENGTH = 4 * 1024 * 1024
LEEWAY = timedelta(seconds=60)
_LEEWAY_SECONDS = int(LEEWAY.total_seconds())
MAX_VALIDITY = timedelta(days=11 * 366)  # longest pass type validity (10 years) + margin
_MAX_VALIDITY_SECONDS = int(MAX_VALIDITY.total_seconds())
MAX_TIMESTAMP = 2**34  # about the year 2514; anything later is nonsense

# What a pass serial looks like (new_serial makes 16 characters of base64url).
SERIAL_RE = re.compile(r"[A-Za-z0-9_-]{8,64}")
_STATUS_REF_MEMBERS = frozenset({"idx", "uri"})


# -- claims helpers ----------------------------------------------------------


def _time_claim(payload: Mapping[str, Any], name: str) -> int:
    """A required NumericDate claim: a whole number of seconds, no bool, no float."""
    value = payload.get(name)
    if type(value) is not int or not 0 < value < MAX_TIMESTAMP:  # type() also refuses bool
        what = "is missing" if value is None else "is not a sensible Unix time"
        raise ClaimError(f"the {name} claim {what}")
    return value


def _aware_timestamp(moment: datetime) -> float:
    """``moment.timestamp()``, refusing a naive datetime (it would be read as local time)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: use aware UTC datetimes")
    return moment.timestamp()


def _unix(moment: datetime) -> int:
    return int(_aware_timestamp(moment))


def _check_key_for(key: PublicKey, issued_at: int) -> None:
    """The key's own rules: not revoked, role, signing window."""
    if key.info.state is KeyState.REVOKED:
        raise KeyRevokedError(f"key {key.kid} has been revoked")
    if key.info.role is not KeyRole.PASS:
        raise KeyNotAllowedError(f"key {key.kid} does not sign passes or status lists")
    if not key.info.covers_unix(issued_at):
        raise KeyWindowError(f"key {key.kid} was not valid for signing at the token's issue time")


# -- pass tokens -------------------------------------------------------------


class PassClaims(NamedTuple):
    """The verified content of a pass token.

    A NamedTuple rather than a frozen dataclass: as immutable, and built on every
    scan at less than half the cost (measured in ``scripts/bench``).
    """

    issuer: str
    serial: str
    pass_type: str
    # The NumericDates as signed (whole seconds). The checks compare these; the
    # datetimes below are built only when someone reads them: three of them
    # cost more per scan than every time check together.
    iat: int
    exp: int
    nbf: int | None
    holder: Mapping[str, str]
    status_idx: int
    status_uri: str
    kid: str = ""

    @property
    def issued_at(self) -> datetime:
        return datetime.fromtimestamp(self.iat, UTC)

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.exp, UTC)

    @property
    def not_before(self) -> datetime | None:
        return None if self.nbf is None else datetime.fromtimestamp(self.nbf, UTC)

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


class ShownClaims(Mapping[str, Any]):
    """:meth:`PassClaims.display`, built on first read.

    A verdict carries the claims to show, but a gate that only needs ``admit``
    never reads them, and formatting the dates costs more per scan than all the
    checks of the claims together. Read-only like the verdict that holds it.
    """

    __slots__ = ("_claims", "_shown")

    def __init__(self, claims: PassClaims) -> None:
        self._claims = claims
        self._shown: dict[str, Any] | None = None

    def _dict(self) -> dict[str, Any]:
        if self._shown is None:
            self._shown = self._claims.display()
        return self._shown

    def __getitem__(self, name: str) -> Any:
        return self._dict()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict())

    def __len__(self) -> int:
        return len(self._dict())

    def __repr__(self) -> str:
        return repr(self._dict())


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
    # JSON object keys are always text; the values must be text too (exact str:
    # JSON yields no subclasses). map() keeps this check out of Python bytecode.
    if type(holder) is not dict or not all(map(str.__instancecheck__, holder.values())):
        raise ClaimError("the holder claim (h) must map field names to text")
    status = payload.get("status")
    ref = status.get("status_list") if type(status) is dict else None
    if type(ref) is not dict or ref.keys() != _STATUS_REF_MEMBERS:
        raise ClaimError("the status claim must be {status_list: {idx, uri}}")
    idx, uri = ref["idx"], ref["uri"]
    if type(idx) is not int or idx < 0 or type(uri) is not str:
        raise ClaimError("the status reference needs a whole-number idx and a uri")
    # Positional, in field order: keywords double the cost of building it, on every scan.
    return PassClaims(
        issuer,
        serial,
        pass_type,
        iat,
        exp,
        nbf,
        holder,
        idx,
        uri,
        kid,
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
            _check_key_for(key, claims.iat)
            if not key.info.allows(claims.pass_type):
                raise KeyNotAllowedError(
                    f"key {key.kid} may not sign {claims.pass_type[:32]} passes"
                )
            # In Unix seconds, as the claims are signed: now.timestamp() keeps the
            # microseconds, so every comparison is the one of datetimes.
            moment = _aware_timestamp(now)
            latest = moment + _LEEWAY_SECONDS
            if claims.iat > latest:
                raise IssuedInFutureError("the pass claims to be issued in the future")
            if claims.nbf is not None and claims.nbf > latest:
                raise NotYetValidError("the pass is not valid yet")
            if moment >= claims.exp + _LEEWAY_SECONDS:
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
    iat = _time_claim(payload, "iat")
    # exp is only RECOMMENDED by the draft, but without it a copy never goes stale.
    expires_at = datetime.fromtimestamp(_time_claim(payload, "exp"), UTC)
    _check_key_for(verified.key, iat)
    issued_at = datetime.fromtimestamp(iat, UTC)
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
        serial = b64url_encode(secrets.token_bytes(12))
        if not serial.startswith("-"):
            return serial
