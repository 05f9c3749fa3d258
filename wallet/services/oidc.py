"""Staff accounts of the city's OpenID Connect provider: the ID token's checks, roles, sign-in.

The web layer runs the Authorization Code flow (Authlib, PKCE, state, nonce)
and hands the ID token here. Everything that decides whether it may sign
someone in is checked here with the service's clock: the signature against
the provider's published keys, issuer, audience (and ``azp``), expiry, issue
time and nonce. An account is the provider's issuer and ``sub``; its role is
taken from the configured group mapping at every sign-in, so a change in the
provider takes effect at the next one. Nothing personal is logged or audited:
a subject appears only as a short keyed-free hash (:func:`subject_tag`), and the
account is stored under that hash. The person's name from the ID token
(:func:`display_name`) is for the console's header of that one session: the web
layer keeps it in the session cookie only, never in the database or a log.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from wallet.auditkey import AuditKey
from wallet.domain import Role, StaffUser
from wallet.errors import WalletError
from wallet.services import accounts, audit
from wallet.services.sealing import seal, unseal
from wallet.store.models import OidcLoginRow, StaffUserRow

log = logging.getLogger(__name__)

# Asymmetric algorithms only: an HS256 ID token would be "signed" with our own client secret.
SAFE_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
CLOCK_LEEWAY = timedelta(seconds=60)  # the provider's and our clocks may differ this much
MAX_TOKEN_AGE = timedelta(minutes=10)  # an ID token comes straight from the token endpoint
LOGIN_LIFETIME = timedelta(minutes=10)  # from leaving for the provider to coming back
_RANK = (Role.VERIFIER, Role.ISSUER, Role.ADMIN)
MAX_DISPLAY_NAME = 64  # characters; the session cookie has little room
_NAME_CLAIMS = ("name", "preferred_username")  # the friendliest first
NO_PASSWORD = "!oidc"  # noqa: S105 - not a hash: no password ever matches it


class SignInRefused(WalletError):
    """The provider's answer cannot sign anyone in; ``reason`` is a slug for the log."""

    code = "oidc_refused"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class NoRoleError(SignInRefused):
    """A genuine account of the provider whose groups map to no role of this service."""

    code = "oidc_no_role"


@dataclass(frozen=True)
class Identity:
    """Who the provider vouched for, as this service keeps it."""

    issuer: str
    subject: str
    groups: tuple[str, ...]


def subject_tag(issuer: str, subject: str) -> str:
    """A short hash naming an account in logs without naming the person."""
    return hashlib.sha256(f"{issuer}\0{subject}".encode()).hexdigest()[:12]


def _key_for(header: Mapping[str, Any], jwks: Mapping[str, Any], alg: str) -> Any:
    keys = [k for k in jwks.get("keys", []) if isinstance(k, dict)]
    kid = header.get("kid")
    if kid is not None:
        keys = [k for k in keys if k.get("kid") == kid]
    keys = [k for k in keys if k.get("use", "sig") == "sig" and k.get("alg", alg) == alg]
    if len(keys) != 1:
        raise SignInRefused(
            "the ID token's key is not among the provider's published keys", reason="unknown_key"
        )
    try:
        return jwt.PyJWK(keys[0], algorithm=alg).key
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise SignInRefused(
            "the provider's key for the ID token is unusable", reason="unknown_key"
        ) from exc


def _int_claim(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise SignInRefused(f"the ID token has no valid {name}", reason=f"missing_{name}")
    return int(value)


def verify_id_token(
    id_token: object,
    *,
    jwks: Mapping[str, Any],
    issuer: str,
    client_id: str,
    nonce: str,
    algorithms: Sequence[str] | None,
    now: datetime,
) -> dict[str, Any]:
    """The claims of an ID token this service may trust (OpenID Connect Core 3.1.3.7).

    :raises SignInRefused: naming (``reason``) the first check that failed.
    """
    if not isinstance(id_token, str) or len(id_token) > 16_384:
        raise SignInRefused("the provider sent no ID token", reason="no_id_token")
    allowed = SAFE_ALGORITHMS & set(algorithms or ("RS256",))
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.PyJWTError as exc:
        raise SignInRefused("the ID token is malformed", reason="malformed") from exc
    alg = header.get("alg")
    if alg not in allowed:
        raise SignInRefused(f"the ID token's algorithm {alg!r} is not allowed", reason="alg")
    key = _key_for(header, jwks, str(alg))
    try:
        claims: dict[str, Any] = jwt.decode(
            id_token,
            key,
            algorithms=[str(alg)],
            options={
                "verify_signature": True,
                "verify_exp": False,  # checked below with the service's clock
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
            },
        )
    except jwt.InvalidSignatureError as exc:
        raise SignInRefused("the ID token's signature is wrong", reason="signature") from exc
    except jwt.PyJWTError as exc:
        raise SignInRefused("the ID token is malformed", reason="malformed") from exc
    if claims.get("iss") != issuer:
        raise SignInRefused("the ID token is from another issuer", reason="issuer")
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(audiences, list) or client_id not in audiences:
        raise SignInRefused("the ID token is meant for another client", reason="audience")
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != client_id:
        raise SignInRefused("the ID token was issued to another client", reason="azp")
    moment = int(now.timestamp())
    leeway = int(CLOCK_LEEWAY.total_seconds())
    if _int_claim(claims, "exp") + leeway <= moment:
        raise SignInRefused("the ID token has expired", reason="expired")
    issued = _int_claim(claims, "iat")
    if issued - leeway > moment:
        raise SignInRefused("the ID token is issued in the future", reason="iat_future")
    if moment - issued > MAX_TOKEN_AGE.total_seconds() + leeway:
        raise SignInRefused("the ID token is too old", reason="iat_old")
    if "nbf" in claims and _int_claim(claims, "nbf") - leeway > moment:
        raise SignInRefused("the ID token is not valid yet", reason="nbf")
    token_nonce = claims.get("nonce")
    if not isinstance(token_nonce, str) or not hmac.compare_digest(
        token_nonce.encode(), nonce.encode()
    ):
        raise SignInRefused("the ID token's nonce is not this sign-in's", reason="nonce")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not 0 < len(subject) <= 255:
        raise SignInRefused("the ID token names no subject", reason="sub")
    return claims


def groups_of(claims: Mapping[str, Any], claim: str) -> tuple[str, ...]:
    """The groups (or roles) in ``claim``: a name, or a dotted path into objects."""
    value: Any = claims.get(claim)
    if value is None and "." in claim:
        value = claims
        for part in claim.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str))


def display_name(claims: Mapping[str, Any]) -> str | None:
    """The name to show the signed-in person (``name``, else ``preferred_username``), or None.

    Control and format characters go (a right-to-left override would reorder the
    header), runs of white space become one space, and it is cut to MAX_DISPLAY_NAME.
    """
    for claim in _NAME_CLAIMS:
        value = claims.get(claim)
        if not isinstance(value, str):
            continue
        shown = " ".join("".join(c if c.isprintable() else " " for c in value[:1024]).split())
        if shown:
            return shown[:MAX_DISPLAY_NAME].rstrip()
    return None


def role_for(groups: Sequence[str], mapping: Sequence[tuple[str, str]]) -> Role | None:
    """The highest role any of the groups maps to, or None."""
    roles = {Role(role) for group, role in mapping if group in groups}
    for role in reversed(_RANK):
        if role in roles:
            return role
    return None


def _username(issuer: str, subject: str) -> str:
    return f"oidc-{subject_tag(issuer, subject)}"


def _row(session: Session, issuer: str, subject: str) -> StaffUserRow | None:
    return session.scalars(
        select(StaffUserRow).where(
            StaffUserRow.oidc_issuer == issuer, StaffUserRow.oidc_subject == subject
        )
    ).first()


def sign_in(
    session: Session,
    identity: Identity,
    *,
    mapping: Sequence[tuple[str, str]],
    audit_key: AuditKey,
    now: datetime,
) -> StaffUser:
    """The console account of a provider's account, its role set from its groups now.

    A new account is created on its first sign-in; one whose groups no longer
    map to a role loses its open sessions and is refused.

    :raises NoRoleError: the groups map to no role.
    :raises SignInRefused: the account is disabled here.
    """
    row = _row(session, identity.issuer, identity.subject)
    role = role_for(identity.groups, mapping)
    tag = subject_tag(identity.issuer, identity.subject)
    if role is None:
        if row is not None:
            accounts.end_all_sessions(session, user_id=row.id)
        audit.record(session, key=audit_key, actor="oidc", action="user.oidc_refused",
                     target=f"oidc:{tag}", details={"why": "no group maps to a role"},
                     now=now)  # fmt: skip
        raise NoRoleError("no group of this account maps to a role", reason="no_role")
    if row is None:
        row = StaffUserRow(
            username=_username(identity.issuer, identity.subject),
            password_hash=NO_PASSWORD,
            role=role.value,
            disabled=False,
            created_at=now,
            oidc_issuer=identity.issuer,
            oidc_subject=identity.subject,
        )
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError as exc:  # two first sign-ins at once: the other one won
            raise SignInRefused("the account is being created", reason="race") from exc
        audit.record(session, key=audit_key, actor="oidc", action="user.add",
                     target=f"user:{row.username}", details={"role": role.value, "via": "oidc"},
                     now=now)  # fmt: skip
    elif row.disabled:
        audit.record(session, key=audit_key, actor="oidc", action="user.oidc_refused",
                     target=f"user:{row.username}", details={"why": "account disabled"},
                     now=now)  # fmt: skip
        raise SignInRefused("the account is disabled in this service", reason="disabled")
    elif row.role != role.value:
        old_role, row.role = row.role, role.value
        accounts.end_all_sessions(session, user_id=row.id)
        audit.record(session, key=audit_key, actor="oidc", action="user.role",
                     target=f"user:{row.username}",
                     details={"role": role.value, "was": old_role, "via": "oidc"},
                     now=now)  # fmt: skip
    row.last_login_at = now
    session.flush()
    return accounts.get_user(session, row.username)


def is_oidc_account(session: Session, username: str) -> bool:
    row = session.scalars(
        select(StaffUserRow.oidc_subject).where(StaffUserRow.username == username)
    ).first()
    return row is not None


# -- sign-ins under way -------------------------------------------------------------


def _login_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def remember_login(
    session: Session, *, key: str, data: str, audit_key: AuditKey, now: datetime
) -> None:
    """Keep a sign-in's state data (nonce, PKCE verifier) until the provider sends the user back."""
    session.execute(delete(OidcLoginRow).where(OidcLoginRow.expires_at <= now))
    digest = _login_key(key)
    session.merge(
        OidcLoginRow(
            key_hash=digest,
            data=seal(
                audit_key, data.encode("utf-8"), aad=f"wallet oidc login v1:{digest}".encode()
            ),
            expires_at=now + LOGIN_LIFETIME,
        )
    )


def take_login(session: Session, *, key: str, audit_key: AuditKey, now: datetime) -> str | None:
    """A sign-in's state data, removed as it is read: a state works once, on any server."""
    digest = _login_key(key)
    found = session.execute(
        delete(OidcLoginRow)
        .where(OidcLoginRow.key_hash == digest)
        .returning(OidcLoginRow.data, OidcLoginRow.expires_at)
    ).first()
    if found is None or found.expires_at <= now:
        return None
    raw = unseal(audit_key, found.data, aad=f"wallet oidc login v1:{digest}".encode(),
                 what="a sign-in under way")  # fmt: skip
    return raw.decode("utf-8")
