"""Staff users (argon2-hashed passwords) and API tokens (stored as SHA-256, shown once)."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from passlib.hash import argon2
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from wallet.auditkey import AuditKey
from wallet.errors import InputError, NotFoundError, StateConflictError
from wallet.services import audit
from wallet.store.models import ApiTokenRow, StaffUserRow

ROLES = ("admin", "issuer", "verifier")
TOKEN_PREFIX = "wpt_"  # noqa: S105 - a visible marker, not a secret
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
_NAME_RE = re.compile(r"[A-Za-z0-9._@-]{2,64}")
# Verifying against this keeps the time of a login for an unknown user like a real one.
_DUMMY_HASH = argon2.hash(secrets.token_urlsafe(16))


def _check_role(role: object) -> str:
    if role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)}", field="role")
    return str(role)


def _check_name(name: object, field: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InputError(f"{field} must be 2-64 letters, digits or . _ @ -", field=field)
    return name


def _check_password(password: object) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise InputError(
            f"the password must have at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InputError(
            f"the password is too long (at most {MAX_PASSWORD_LENGTH} characters)",
            field="password",
        )
    return password


def add_user(
    session: Session,
    *,
    username: object,
    password: object,
    role: object,
    actor: str,
    audit_key: AuditKey,
    now: datetime,
) -> StaffUserRow:
    name = _check_name(username, "username")
    row = StaffUserRow(
        username=name,
        password_hash=argon2.hash(_check_password(password)),
        role=_check_role(role),
        disabled=False,
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError as exc:
        raise StateConflictError(f"a user {name} exists already") from exc
    audit.record(session, key=audit_key, actor=actor, action="user.add", target=f"user:{name}",
                 details={"role": row.role}, now=now)  # fmt: skip
    return row


def get_user(session: Session, username: str) -> StaffUserRow:
    if not _NAME_RE.fullmatch(username):  # never send NUL or other junk to the database
        raise NotFoundError(f"no user {username[:64]!r}")
    row = session.scalars(select(StaffUserRow).where(StaffUserRow.username == username)).first()
    if row is None:
        raise NotFoundError(f"no user {username}")
    return row


def list_users(session: Session) -> list[StaffUserRow]:
    return list(session.scalars(select(StaffUserRow).order_by(StaffUserRow.username)))


def set_password(
    session: Session,
    *,
    username: str,
    password: object,
    actor: str,
    audit_key: AuditKey,
    now: datetime,
) -> StaffUserRow:
    row = get_user(session, username)
    row.password_hash = argon2.hash(_check_password(password))
    audit.record(session, key=audit_key, actor=actor, action="user.passwd",
                 target=f"user:{username}", now=now)  # fmt: skip
    return row


def disable_user(
    session: Session, *, username: str, actor: str, audit_key: AuditKey, now: datetime
) -> StaffUserRow:
    row = get_user(session, username)
    row.disabled = True
    audit.record(session, key=audit_key, actor=actor, action="user.disable",
                 target=f"user:{username}", now=now)  # fmt: skip
    return row


def authenticate_user(
    session: Session, *, username: object, password: object, now: datetime
) -> StaffUserRow | None:
    """The user if the password is right and the account enabled; None otherwise.

    Read-only, so the slow password hash never holds a write lock; the edge
    records the login with :func:`record_login` in a short write transaction.
    """
    if not isinstance(username, str) or not isinstance(password, str) or len(password) > 1024:
        return None
    row = None
    if _NAME_RE.fullmatch(username):  # a NUL would reach PostgreSQL as an error
        row = session.scalars(select(StaffUserRow).where(StaffUserRow.username == username)).first()
    if row is None:
        argon2.verify(password, _DUMMY_HASH)
        return None
    if not argon2.verify(password, row.password_hash) or row.disabled:
        return None
    return row


def record_login(session: Session, *, username: str, now: datetime) -> None:
    session.execute(
        update(StaffUserRow).where(StaffUserRow.username == username).values(last_login_at=now)
    )


@dataclass(frozen=True)
class NewApiToken:
    row: ApiTokenRow
    secret: str  # shown once, never stored


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_api_token(
    session: Session, *, name: object, role: object, actor: str, audit_key: AuditKey, now: datetime
) -> NewApiToken:
    label = _check_name(name, "name")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiTokenRow(
        name=label,
        role=_check_role(role),
        prefix=secret[: len(TOKEN_PREFIX) + 6],
        token_hash=token_hash(secret),
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError as exc:
        raise StateConflictError(f"an API token named {label} exists already") from exc
    audit.record(session, key=audit_key, actor=actor, action="api_token.create",
                 target=f"token:{label}", details={"role": row.role}, now=now)  # fmt: skip
    return NewApiToken(row=row, secret=secret)


def list_api_tokens(session: Session) -> list[ApiTokenRow]:
    return list(session.scalars(select(ApiTokenRow).order_by(ApiTokenRow.name)))


def revoke_api_token(
    session: Session, *, name: str, actor: str, audit_key: AuditKey, now: datetime
) -> ApiTokenRow:
    row = None
    if _NAME_RE.fullmatch(name):
        row = session.scalars(select(ApiTokenRow).where(ApiTokenRow.name == name)).first()
    if row is None:
        raise NotFoundError(f"no API token named {name}")
    if row.revoked_at is None:
        row.revoked_at = now
        audit.record(session, key=audit_key, actor=actor, action="api_token.revoke",
                     target=f"token:{name}", now=now)  # fmt: skip
    return row


def authenticate_token(session: Session, secret: object) -> ApiTokenRow | None:
    """The live token row for a bearer secret, or None."""
    if not isinstance(secret, str) or not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    row = session.scalars(
        select(ApiTokenRow).where(ApiTokenRow.token_hash == token_hash(secret))
    ).first()
    if row is None or row.revoked_at is not None:
        return None
    return row
