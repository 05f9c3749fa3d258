"""Staff users (argon2-hashed passwords), their console sessions and API tokens.

Secrets a client holds (API tokens, console session ids) are stored only as
SHA-256. Console sessions live in the database, not only in the cookie:
logout deletes the session's row, and a new password, a new role or a
disabled account deletes all of the user's rows, so every copy of a cookie
stops working at once.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from passlib.hash import argon2
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from wallet.auditkey import AuditKey
from wallet.domain import ApiToken, Role, StaffUser
from wallet.errors import InputError, NotFoundError, StateConflictError
from wallet.services import audit, metrics
from wallet.store.models import ApiTokenRow, AuditEntryRow, StaffSessionRow, StaffUserRow

ROLES = tuple(role.value for role in Role)
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


def _user(row: StaffUserRow) -> StaffUser:
    return StaffUser(
        username=row.username,
        role=Role(row.role),
        disabled=row.disabled,
        created_at=row.created_at,
        last_login_at=row.last_login_at,
    )


def _token(row: ApiTokenRow) -> ApiToken:
    return ApiToken(
        name=row.name,
        role=Role(row.role),
        prefix=row.prefix,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def add_user(
    session: Session,
    *,
    username: object,
    password: object,
    role: object,
    actor: str,
    audit_key: AuditKey,
    now: datetime,
) -> StaffUser:
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
    return _user(row)


def get_user(session: Session, username: str) -> StaffUser:
    return _user(_user_row(session, username))


def _user_row(session: Session, username: str) -> StaffUserRow:
    if not _NAME_RE.fullmatch(username):  # never send NUL or other junk to the database
        raise NotFoundError(f"no user {username[:64]!r}")
    row = session.scalars(select(StaffUserRow).where(StaffUserRow.username == username)).first()
    if row is None:
        raise NotFoundError(f"no user {username}")
    return row


def list_users(session: Session) -> list[StaffUser]:
    return [_user(row) for row in _user_rows(session)]


def _user_rows(session: Session) -> list[StaffUserRow]:
    return list(session.scalars(select(StaffUserRow).order_by(StaffUserRow.username)))


def set_password(
    session: Session,
    *,
    username: str,
    password: object,
    actor: str,
    audit_key: AuditKey,
    now: datetime,
) -> StaffUser:
    row = _user_row(session, username)
    row.password_hash = argon2.hash(_check_password(password))
    end_all_sessions(session, user_id=row.id)
    audit.record(session, key=audit_key, actor=actor, action="user.passwd",
                 target=f"user:{username}", now=now)  # fmt: skip
    return _user(row)


def _refuse_last_admin(session: Session, row: StaffUserRow) -> None:
    """The last active admin can be neither disabled nor demoted: nobody could undo it."""
    if row.role != Role.ADMIN or row.disabled:
        return
    admins = [u for u in _user_rows(session) if u.role == Role.ADMIN and not u.disabled]
    if len(admins) == 1:
        raise StateConflictError(
            f"{row.username} is the last active admin; add another admin first "
            "(`wallet users add NAME --role admin`)"
        )


def set_role(
    session: Session,
    *,
    username: str,
    role: object,
    actor: str,
    audit_key: AuditKey,
    now: datetime,
) -> StaffUser:
    """A new role; open sessions end, so the user signs in again under it."""
    row = _user_row(session, username)
    new_role = _check_role(role)
    if new_role == row.role:
        return _user(row)
    _refuse_last_admin(session, row)
    old_role, row.role = row.role, new_role
    end_all_sessions(session, user_id=row.id)
    audit.record(session, key=audit_key, actor=actor, action="user.role",
                 target=f"user:{username}", details={"role": new_role, "was": old_role},
                 now=now)  # fmt: skip
    return _user(row)


def disable_user(
    session: Session, *, username: str, actor: str, audit_key: AuditKey, now: datetime
) -> StaffUser:
    row = _user_row(session, username)
    _refuse_last_admin(session, row)
    row.disabled = True
    end_all_sessions(session, user_id=row.id)
    audit.record(session, key=audit_key, actor=actor, action="user.disable",
                 target=f"user:{username}", now=now)  # fmt: skip
    return _user(row)


def authenticate_user(
    session: Session, *, username: object, password: object, now: datetime
) -> StaffUser | None:
    """The user if the password is right and the account enabled; None otherwise.

    Read-only, so the slow password hash never holds a write lock; the edge
    records the login with :func:`record_login` in a short write transaction.
    A refusal counts as a failed sign-in (``wallet_login_failures_total``).
    """
    user = confirm_password(session, username=username, password=password)
    if user is None:
        metrics.login_failed("local")
    return user


def confirm_password(session: Session, *, username: object, password: object) -> StaffUser | None:
    """As :func:`authenticate_user`, for a signed-in account confirming a change with its
    password: not a sign-in, so not counted as a failed one."""
    if not isinstance(username, str) or not isinstance(password, str) or len(password) > 1024:
        return None
    row = None
    if _NAME_RE.fullmatch(username):  # a NUL would reach PostgreSQL as an error
        row = session.scalars(select(StaffUserRow).where(StaffUserRow.username == username)).first()
    if row is None or row.oidc_subject is not None:  # provider accounts have no password
        argon2.verify(password, _DUMMY_HASH)
        return None
    if not argon2.verify(password, row.password_hash) or row.disabled:
        return None
    return _user(row)


def record_login(session: Session, *, username: str, now: datetime) -> None:
    session.execute(
        update(StaffUserRow).where(StaffUserRow.username == username).values(last_login_at=now)
    )


def report_login_throttling(
    session: Session,
    *,
    username: str,
    quiet_for: timedelta,
    audit_key: AuditKey,
    now: datetime,
) -> bool:
    """Tell the admins, in the audit log, that sign-ins to an account are being throttled.

    At most one entry per account and ``quiet_for``, and only for accounts that
    exist, so an attacker cannot flood the audit log. True when one was written.
    """
    if not _NAME_RE.fullmatch(username):
        return False
    if (
        session.scalars(select(StaffUserRow.id).where(StaffUserRow.username == username)).first()
        is None
    ):
        return False
    target = f"user:{username}"
    recent = session.scalars(
        select(AuditEntryRow.id)
        .where(
            AuditEntryRow.target == target,
            AuditEntryRow.action == "user.login_throttled",
            AuditEntryRow.at > now - quiet_for,
        )
        .limit(1)
    ).first()
    if recent is not None:
        return False
    audit.record(session, key=audit_key, actor="web:login-limit",
                 action="user.login_throttled", target=target,
                 details={"why": "many failed sign-ins from browsers this account never used"},
                 now=now)  # fmt: skip
    return True


# -- console sessions -------------------------------------------------------------


def start_session(session: Session, *, username: str, lifetime: timedelta, now: datetime) -> str:
    """A new console session for the user; returns its secret (for the cookie only).

    The user's expired sessions are swept here, so the table stays small.
    """
    row = _user_row(session, username)
    session.execute(
        delete(StaffSessionRow).where(
            StaffSessionRow.user_id == row.id, StaffSessionRow.expires_at <= now
        )
    )
    secret = secrets.token_urlsafe(32)
    session.add(
        StaffSessionRow(
            user_id=row.id, token_hash=token_hash(secret), created_at=now, expires_at=now + lifetime
        )
    )
    return secret


def session_user(session: Session, secret: object, *, now: datetime) -> StaffUser | None:
    """The enabled user of a live console session, or None (ended, expired, unknown)."""
    if not isinstance(secret, str) or not 20 <= len(secret) <= 100:
        return None
    found = session.execute(
        select(StaffUserRow, StaffSessionRow.expires_at)
        .join(StaffSessionRow, StaffSessionRow.user_id == StaffUserRow.id)
        .where(StaffSessionRow.token_hash == token_hash(secret))
    ).first()
    if found is None:
        return None
    user, expires_at = found
    if expires_at <= now or user.disabled:
        return None
    return _user(user)


def end_session(session: Session, secret: object) -> None:
    """Logout: this session's row goes, so a copy of its cookie is worthless."""
    if isinstance(secret, str):
        session.execute(
            delete(StaffSessionRow).where(StaffSessionRow.token_hash == token_hash(secret))
        )


def end_all_sessions(session: Session, *, user_id: int, keep: object = None) -> None:
    """End the account's sessions; `keep` is the secret of one to spare (the caller's own)."""
    ending = delete(StaffSessionRow).where(StaffSessionRow.user_id == user_id)
    if isinstance(keep, str):
        ending = ending.where(StaffSessionRow.token_hash != token_hash(keep))
    session.execute(ending)


@dataclass(frozen=True)
class NewApiToken:
    token: ApiToken
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
    return NewApiToken(token=_token(row), secret=secret)


def list_api_tokens(session: Session) -> list[ApiToken]:
    return [_token(row) for row in session.scalars(select(ApiTokenRow).order_by(ApiTokenRow.name))]


def revoke_api_token(
    session: Session, *, name: str, actor: str, audit_key: AuditKey, now: datetime
) -> ApiToken:
    row = None
    if _NAME_RE.fullmatch(name):
        row = session.scalars(select(ApiTokenRow).where(ApiTokenRow.name == name)).first()
    if row is None:
        raise NotFoundError(f"no API token named {name}")
    if row.revoked_at is None:
        row.revoked_at = now
        audit.record(session, key=audit_key, actor=actor, action="api_token.revoke",
                     target=f"token:{name}", now=now)  # fmt: skip
    return _token(row)


def authenticate_token(session: Session, secret: object) -> ApiToken | None:
    """The live token for a bearer secret, or None."""
    if not isinstance(secret, str) or not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    row = session.scalars(
        select(ApiTokenRow).where(ApiTokenRow.token_hash == token_hash(secret))
    ).first()
    if row is None or row.revoked_at is not None:
        return None
    return _token(row)
