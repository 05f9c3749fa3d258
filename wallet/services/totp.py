"""TOTP (RFC 6238) as the second factor of local console accounts.

What authenticator apps expect: SHA-1, 6 digits, 30-second steps, a 160-bit
secret. The secret is sealed with the instance key (:mod:`sealing`), bound to
its account, and never logged. A code is accepted for the step before, the
current and the next one (clocks drift); the step of an accepted code is
stored and only a later step is accepted afterwards, atomically, so a code
works once even when two app servers see it at the same moment.

An account may switch its own factor on in the console: the new secret then
travels in the enrolment form sealed (:func:`seal_enrolment`), bound to the
account and to a short lifetime, so nothing is stored before a code confirms it
and any app server can finish it. Switching off needs a current code, and is
refused where WALLET_TOTP_REQUIRED makes the factor compulsory for the account.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor import InvalidToken
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from wallet.auditkey import AuditKey
from wallet.domain import Role
from wallet.errors import InputError, NotFoundError, StateConflictError, WalletError
from wallet.services import accounts, audit
from wallet.services.sealing import seal, unseal
from wallet.store.models import StaffUserRow

STEP_SECONDS = 30
DIGITS = 6
SECRET_BYTES = 20
POLICIES = ("enrolled", "admins", "all")
# From showing a new secret to confirming it with a code: scanning takes a minute,
# finding the phone a few more.
ENROLMENT_LIFETIME = timedelta(minutes=15)
_ENROLMENT_CLOCK_SKEW = timedelta(minutes=1)  # app servers' clocks may differ this much
_MAX_SEALED = 200  # characters of a sealed enrolment (it is about 70)
_CODE_RE = re.compile(r"[0-9]{6}")


def _totp(secret: bytes) -> TOTP:
    return TOTP(secret, DIGITS, SHA1(), STEP_SECONDS, enforce_key_length=True)  # noqa: S303


def _aad(row: StaffUserRow) -> bytes:
    return f"wallet totp secret v1:user:{row.id}".encode()


def _enrolment_aad(row: StaffUserRow) -> bytes:
    return f"wallet totp enrolment v1:user:{row.id}".encode()


@dataclass(frozen=True)
class Enrolment:
    """A new secret, not stored until a code from the app confirms it."""

    secret: bytes = field(repr=False)

    @classmethod
    def new(cls) -> Enrolment:
        return cls(os.urandom(SECRET_BYTES))

    def uri(self, *, account: str, issuer: str) -> str:
        """The otpauth:// URI an authenticator app scans (it holds the secret)."""
        return _totp(self.secret).get_provisioning_uri(account, issuer)

    def code_at(self, moment: datetime) -> str:
        return _totp(self.secret).generate(int(moment.timestamp())).decode("ascii")


def normalise_code(code: object) -> str | None:
    """Six digits (spaces a user typed removed), or None."""
    if not isinstance(code, str) or len(code) > 20:
        return None
    digits = code.replace(" ", "").replace("-", "")
    return digits if _CODE_RE.fullmatch(digits) else None


def _matching_step(secret: bytes, code: str, now: datetime) -> int | None:
    current = int(now.timestamp()) // STEP_SECONDS
    for step in (current - 1, current, current + 1):
        try:
            _totp(secret).verify(code.encode("ascii"), step * STEP_SECONDS)
        except InvalidToken:
            continue
        return step
    return None


def _row(session: Session, username: str) -> StaffUserRow:
    row = session.scalars(select(StaffUserRow).where(StaffUserRow.username == username)).first()
    if row is None:
        raise NotFoundError(f"no user {username[:64]}")
    return row


def _refuse_provider_account(row: StaffUserRow) -> None:
    if row.oidc_subject is not None:
        raise StateConflictError(
            f"{row.username} signs in through the city's identity provider, whose own second "
            "factor applies; TOTP is for local accounts"
        )


def factor_of(session: Session, username: str) -> str:
    """The account's second factor: totp, none, or provider (see :func:`second_factors`)."""
    row = _row(session, username)
    if row.oidc_subject is not None:
        return "provider"
    return "totp" if row.totp_secret is not None else "none"


def seal_enrolment(
    session: Session, *, username: str, enrolment: Enrolment, audit_key: AuditKey, now: datetime
) -> str:
    """An enrolment under way, sealed for the console's form: it opens only for this
    account and only for ENROLMENT_LIFETIME, so the server keeps nothing until a code
    confirms the secret (the page showing it is never cached)."""
    row = _row(session, username)
    _refuse_provider_account(row)
    started = int(now.timestamp()).to_bytes(8, "big")
    return seal(audit_key, started + enrolment.secret, aad=_enrolment_aad(row))


def open_enrolment(
    session: Session, *, username: str, sealed: object, audit_key: AuditKey, now: datetime
) -> Enrolment | None:
    """The enrolment sealed by :func:`seal_enrolment` for this account, or None when it is
    too old, for another account, or not one at all."""
    if not isinstance(sealed, str) or len(sealed) > _MAX_SEALED:
        return None
    row = _row(session, username)
    try:
        raw = unseal(audit_key, sealed, aad=_enrolment_aad(row), what="the enrolment")
    except WalletError:
        return None
    if len(raw) != 8 + SECRET_BYTES:
        return None
    age = now - datetime.fromtimestamp(int.from_bytes(raw[:8], "big"), tz=now.tzinfo)
    if not -_ENROLMENT_CLOCK_SKEW <= age <= ENROLMENT_LIFETIME:
        return None
    return Enrolment(raw[8:])


def is_enrolled(session: Session, username: str) -> bool:
    row = session.scalars(
        select(StaffUserRow.totp_secret).where(StaffUserRow.username == username)
    ).first()
    return row is not None


def required(policy: str, *, role: str, enrolled: bool) -> bool:
    """Whether a local account must give a code (an enrolled account always does)."""
    return enrolled or policy == "all" or (policy == "admins" and role == Role.ADMIN)


def enrol(
    session: Session,
    *,
    username: str,
    enrolment: Enrolment,
    code: object,
    actor: str,
    audit_key: AuditKey,
    now: datetime,
    replace: bool = True,
    keep_session: str | None = None,
) -> None:
    """Store the secret once a code from the app shows it was scanned correctly.

    ``replace=False`` (the account itself, in the console) refuses to replace a
    secret already set: a stolen session must not swap the owner's phone for its own.
    The account's other sessions end (all but ``keep_session``, the console's own):
    one signed in with the password alone, perhaps by whoever made the owner switch
    the factor on, must not outlive the change.

    :raises InputError: (field ``code``) the code does not match.
    :raises StateConflictError: a provider's account, or (``replace=False``) one enrolled.
    """
    row = _row(session, username)
    _refuse_provider_account(row)
    if not replace and row.totp_secret is not None:
        raise StateConflictError(f"{username} has a second factor already; turn it off first")
    digits = normalise_code(code)
    step = _matching_step(enrolment.secret, digits, now) if digits else None
    if step is None:
        raise InputError(
            "the code does not match: check the device's clock and type the code the app shows now",
            field="code",
        )
    row.totp_secret = seal(audit_key, enrolment.secret, aad=_aad(row))
    row.totp_last_step = step  # the confirming code is used up
    accounts.end_all_sessions(session, user_id=row.id, keep=keep_session)
    audit.record(session, key=audit_key, actor=actor, action="user.totp",
                 target=f"user:{username}", details={"totp": "enrolled"}, now=now)  # fmt: skip


def remove(
    session: Session, *, username: str, actor: str, audit_key: AuditKey, now: datetime,
    keep_session: str | None = None,
) -> bool:  # fmt: skip
    """Forget an account's TOTP secret (a lost phone); False when it had none.

    The account's sessions end but ``keep_session`` (as :func:`enrol` does): whoever
    holds the lost phone may hold a session too.
    """
    row = _row(session, username)
    if row.totp_secret is None:
        return False
    row.totp_secret = None
    row.totp_last_step = None
    accounts.end_all_sessions(session, user_id=row.id, keep=keep_session)
    audit.record(session, key=audit_key, actor=actor, action="user.totp",
                 target=f"user:{username}", details={"totp": "removed"}, now=now)  # fmt: skip
    return True


def turn_off(
    session: Session,
    *,
    username: str,
    code: object,
    policy: str,
    actor: str,
    audit_key: AuditKey,
    now: datetime,
    keep_session: str | None = None,
) -> None:
    """The account's own switching off in the console (its password checked by the edge):
    a current code is needed, and the policy must not require a factor for the account.
    Its other sessions end, as with any change of the factor.

    :raises StateConflictError: a provider's account, none set up, or the policy requires one.
    :raises InputError: (field ``code``) the code is wrong or used already.
    """
    row = _row(session, username)
    _refuse_provider_account(row)
    if row.totp_secret is None:
        raise StateConflictError(f"{username} has no second factor to turn off")
    if required(policy, role=row.role, enrolled=False):
        raise StateConflictError(
            f"WALLET_TOTP_REQUIRED={policy} requires a second factor for {username}; "
            "an administrator can reset it with `wallet users totp NAME --remove`"
        )
    if not check_code(session, username=username, code=code, audit_key=audit_key, now=now):
        raise InputError("the code is not correct or was used already", field="code")
    remove(session, username=username, actor=actor, audit_key=audit_key, now=now,
           keep_session=keep_session)  # fmt: skip


def check_code(
    session: Session, *, username: str, code: object, audit_key: AuditKey, now: datetime
) -> bool:
    """True once for a right code of a step later than the last one used (in a write
    transaction: the step is recorded with a conditional update)."""
    digits = normalise_code(code)
    row = session.scalars(select(StaffUserRow).where(StaffUserRow.username == username)).first()
    if digits is None or row is None or row.totp_secret is None:
        return False
    secret = unseal(audit_key, row.totp_secret, aad=_aad(row), what="the TOTP secret")
    step = _matching_step(secret, digits, now)
    if step is None:
        return False
    used = session.execute(
        update(StaffUserRow)
        .where(
            StaffUserRow.id == row.id,
            or_(StaffUserRow.totp_last_step.is_(None), StaffUserRow.totp_last_step < step),
        )
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(used, "rowcount", 0) == 1)


def second_factors(session: Session) -> dict[str, str]:
    """Each account's second factor, for listings: totp, none, or provider (an account of
    the city's identity provider, whose own factors apply)."""
    rows = session.execute(
        select(StaffUserRow.username, StaffUserRow.oidc_subject, StaffUserRow.totp_secret)
    )
    return {
        name: "provider" if subject is not None else ("totp" if secret is not None else "none")
        for name, subject, secret in rows
    }
