"""The tables. Passes are never deleted: their status indices must never be reused."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on SQLite (which keeps no zone) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: use aware UTC datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


class StatusListRow(Base):
    """One status list; its bits are derived from the passes that point into it."""

    __tablename__ = "status_lists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)  # "<type>-<n>", the URI's last part
    pass_type: Mapped[str] = mapped_column(String(32), index=True)
    bits: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer)
    # Passes in the list when an issuer last counted them (a lower bound): issuers
    # count every so often instead of updating one hot row with every pass.
    used: Mapped[int] = mapped_column(Integer, default=0)
    # Bumped in the same transaction as every status change of a pass in the list.
    version: Mapped[int] = mapped_column(BigInteger, default=1)
    published_version: Mapped[int] = mapped_column(BigInteger, default=0)
    published_token: Mapped[str | None] = mapped_column(Text, default=None)
    published_at: Mapped[datetime | None] = mapped_column(default=None)
    # The uncompressed byte array of the published token: the next publication
    # applies only the passes changed since (PassRow.status_version), not all.
    # Deferred: only publication reads it.
    published_bits: Mapped[bytes | None] = mapped_column(LargeBinary, default=None, deferred=True)
    created_at: Mapped[datetime]


class PassRow(Base):
    __tablename__ = "passes"
    __table_args__ = (
        UniqueConstraint("status_list_id", "status_idx", name="uq_passes_status_slot"),
        Index("ix_passes_type_state", "pass_type", "state"),
        # Publication reads the passes of one list changed since its last token.
        # Partial: passes never changed (nearly all) cost the index nothing.
        Index(
            "ix_passes_status_changes",
            "status_list_id",
            "status_version",
            postgresql_where=text("status_version IS NOT NULL"),
            sqlite_where=text("status_version IS NOT NULL"),
        ),
        # An imported holder's key in the city's own system (card number, plate + zone):
        # one pass per key and type, so running an import again issues nothing twice.
        Index(
            "uq_passes_external_key",
            "pass_type",
            "external_key",
            unique=True,
            postgresql_where=text("external_key IS NOT NULL"),
            sqlite_where=text("external_key IS NOT NULL"),
        ),
        Index("ix_passes_wallet_serial", "wallet_serial"),
        # The worker looks for renewed passes whose grace period is over.
        Index(
            "ix_passes_retire_at",
            "retire_at",
            postgresql_where=text("retire_at IS NOT NULL"),
            sqlite_where=text("retire_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    serial: Mapped[str] = mapped_column(String(64), unique=True)
    pass_type: Mapped[str] = mapped_column(String(32))
    holder: Mapped[dict[str, Any]]
    holder_search: Mapped[str] = mapped_column(Text)  # lower-cased holder values, for search
    state: Mapped[str] = mapped_column(String(16))  # valid | suspended | revoked
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime]
    status_list_id: Mapped[int] = mapped_column(ForeignKey("status_lists.id"))
    status_idx: Mapped[int] = mapped_column(Integer)
    # The list's version this pass's status last changed at (None: never changed).
    status_version: Mapped[int | None] = mapped_column(BigInteger, default=None)
    kid: Mapped[str] = mapped_column(String(64))
    token: Mapped[str] = mapped_column(Text)
    # Wallets ask "what changed since tag N"; bumped on every change a holder should see.
    # The value of the global "pass_updates" counter at this pass's last change
    # (0: unchanged since issue). Apple's passesUpdatedSince compares it.
    update_tag: Mapped[int] = mapped_column(BigInteger, default=0, index=True)
    # Apple Wallet's per-pass secret for the update web service (>= 16 characters).
    apple_auth_token: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    replaced_by: Mapped[str | None] = mapped_column(String(64), default=None)
    replaces: Mapped[str | None] = mapped_column(String(64), default=None)
    external_key: Mapped[str | None] = mapped_column(String(200), default=None)
    # A renewal lives in the holder's wallets under the first pass's serial, so Apple
    # and Google update the pass in place (None: under its own serial).
    wallet_serial: Mapped[str | None] = mapped_column(String(64), default=None)
    # Set on a renewed pass: its token is revoked when the successor is claimed or at
    # this time (the pass type's grace period), whichever comes first.
    retire_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    @property
    def wallet_id(self) -> str:
        """The serial the holder's Apple and Google passes carry."""
        return self.wallet_serial or self.serial

    status_list: Mapped[StatusListRow] = relationship()


# Byte order on PostgreSQL as on SQLite, whatever the database's collation: a plate's
# keys ("D-AB 1234|" up to "D-AB 1234}") are then one range of the unique index.
_ENFORCEMENT_VALUE = String(64).with_variant(String(64, collation="C"), "postgresql")


class EnforcementKeyRow(Base):
    """A plate and zone a live permit holds (``D-AB 1234|12``): one row per plate
    (wallet.passtypes PassType.enforcement_values), so plain uniqueness gives one live
    permit per plate and zone for every plate of every permit.

    A row exists exactly while its permit is live: inserted when the permit is issued,
    deleted when it is revoked (passes.change_state) and when a renewed permit lets go
    of its plates for its successor (renewals.renew_pass). A suspended permit keeps its
    rows: it is still the plate's permit. Unique whatever the pass type: an officer's
    verdict is about a plate in a zone, so two types checked by plate cannot both hold it.
    """

    __tablename__ = "enforcement_keys"
    __table_args__ = (UniqueConstraint("value", name="uq_enforcement_keys_value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pass_id: Mapped[int] = mapped_column(ForeignKey("passes.id"), index=True)
    value: Mapped[str] = mapped_column(_ENFORCEMENT_VALUE)


class ClaimLinkRow(Base):
    """A citizen's link to a pass: only the SHA-256 of its secret is kept."""

    __tablename__ = "claim_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pass_id: Mapped[int] = mapped_column(ForeignKey("passes.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime]
    # Set when staff made a new link for the holder: this one then says "replaced".
    replaced_at: Mapped[datetime | None] = mapped_column(default=None)

    pass_: Mapped[PassRow] = relationship()


class HolderContactRow(Base):
    """How to reach the holder of an imported pass: their address and language.

    Kept apart from the pass (never in its token or wallet copies) and only as far
    as the city's export gave it; used to send the claim link and reminders.
    """

    __tablename__ = "holder_contacts"

    pass_id: Mapped[int] = mapped_column(ForeignKey("passes.id"), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(254), default=None)
    street: Mapped[str | None] = mapped_column(String(200), default=None)
    postcode: Mapped[str | None] = mapped_column(String(16), default=None)
    city: Mapped[str | None] = mapped_column(String(100), default=None)
    lang: Mapped[str] = mapped_column(String(2), default="de")
    # The holder agreed to reminders before expiry: only then is the address kept
    # after the claim link went out (see wallet.services.contacts).
    reminders: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]


class ReminderRow(Base):
    """A renewal reminder queued for a pass: one per pass and lead time, never two."""

    __tablename__ = "reminders_sent"

    pass_id: Mapped[int] = mapped_column(ForeignKey("passes.id"), primary_key=True)
    days_before: Mapped[int] = mapped_column(Integer, primary_key=True)
    sent_at: Mapped[datetime]


class StaffUserRow(Base):
    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)
    # An account of the city's OpenID Connect provider: its issuer and subject (no password).
    oidc_issuer: Mapped[str | None] = mapped_column(String(255), default=None)
    oidc_subject: Mapped[str | None] = mapped_column(String(255), default=None)
    # TOTP (second factor of local accounts): the secret sealed with the instance key,
    # and the last time step a code was accepted for, so a code works only once.
    totp_secret: Mapped[str | None] = mapped_column(Text, default=None)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, default=None)

    __table_args__ = (
        Index("uq_staff_users_oidc_identity", "oidc_issuer", "oidc_subject", unique=True),
    )


class OidcLoginRow(Base):
    """A sign-in started at the city's identity provider and not yet come back.

    Held server-side so that its state works once on any app server: the
    callback deletes the row as it reads it. ``data`` (nonce, PKCE verifier) is sealed.
    """

    __tablename__ = "oidc_logins"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class PlateLookupRow(Base):
    """How many plates a device checked on a day (UTC date): the only trace a lookup leaves."""

    __tablename__ = "plate_lookups"

    device_id: Mapped[str] = mapped_column(
        String(16), ForeignKey("devices.device_id"), primary_key=True
    )
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD
    count: Mapped[int] = mapped_column(Integer)


class StaffSessionRow(Base):
    """A console sign-in, held server-side: the cookie carries only its secret.

    Deleting the row ends the session whatever the cookie says: logout deletes
    one, a password, role or account change deletes all of the user's.
    """

    __tablename__ = "staff_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class ApiTokenRow(Base):
    """A bearer token for the API: only its SHA-256 is kept, shown once at creation."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class DeviceRow(Base):
    """A staff phone running the scanner. Only SHA-256 hashes of its one-time pairing
    code and of its credential are kept; both are shown once, to the device."""

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime]
    pairing_hash: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    pairing_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    credential_hash: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    paired_at: Mapped[datetime | None] = mapped_column(default=None)
    last_sync_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    # The zones its officer works in, comma-separated; empty: every zone.
    zones: Mapped[str] = mapped_column(String(400), default="")


class IdempotencyKeyRow(Base):
    """The first answer to a request with an Idempotency-Key, replayed on retries."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("actor", "key", name="uq_idempotency_actor_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    actor: Mapped[str] = mapped_column(String(80))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class AuditEntryRow(Base):
    """Append-only. An entry is written with the hash of its content; the sealer
    later gives it its place in the chain (``seq``) and the hash linking it to
    the entry before (see wallet.services.audit)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(128), index=True, default=None)
    details: Mapped[dict[str, Any]]
    content_hash: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True, default=None)
    prev_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    hash: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    # HMAC with the audit key (wallet.auditkey): NULL only on entries written
    # before entries were authenticated.
    mac: Mapped[str | None] = mapped_column(String(64), default=None)


class AuditCheckpointRow(Base):
    """A signed checkpoint of the audit chain, one per sealing round; the newest
    is also kept outside the database (wallet.services.audit)."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, index=True)
    head: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    signed: Mapped[str] = mapped_column(Text)


class CounterRow(Base):
    """Monotonic counters (the bundle version) shared by every worker."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class InstanceSettingRow(Base):
    """Settings every node and the admin CLI must share (the issuer and public URL):
    the database holds them, so a shell with other WALLET_* values is noticed."""

    __tablename__ = "instance_settings"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class WorkerHeartbeatRow(Base):
    """When each outbox worker last finished a round: readiness checks that one is alive.
    ``worker`` is host and process id; rows of stopped workers simply age."""

    __tablename__ = "worker_heartbeats"

    worker: Mapped[str] = mapped_column(String(120), primary_key=True)
    beat_at: Mapped[datetime]


class PlateIndexRow(Base):
    """The last signed plate index of a set of zones and its HMAC key, sealed with the
    audit seal key. ``scope`` names the zones (comma-separated; empty: every zone)."""

    __tablename__ = "plate_index"
    __table_args__ = (UniqueConstraint("scope", name="uq_plate_index_scope"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(400), default="")
    version: Mapped[int] = mapped_column(BigInteger)
    fingerprint: Mapped[str] = mapped_column(String(64))
    token: Mapped[str] = mapped_column(Text)
    sealed_key: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class PublishedBundleRow(Base):
    """The last signed trust bundle and what it was built from."""

    __tablename__ = "published_bundle"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    fingerprint: Mapped[str] = mapped_column(String(64))
    token: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class AppleRegistrationRow(Base):
    """A device that has a pass in Apple Wallet and wants pushes when it changes."""

    __tablename__ = "apple_registrations"
    __table_args__ = (UniqueConstraint("device_id", "pass_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(128), index=True)
    push_token: Mapped[str] = mapped_column(String(200))
    pass_id: Mapped[int] = mapped_column(ForeignKey("passes.id"), index=True)
    created_at: Mapped[datetime]


class OutboxRow(Base):
    """A push or remote update still to deliver; drained by ``wallet worker``.

    Written in the transaction of the change that needs it, so a committed
    revocation always has its pushes queued, whatever APNs or Google are doing.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # apns | google_state
    pass_id: Mapped[int | None] = mapped_column(ForeignKey("passes.id"), default=None)
    payload: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending|done|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime]
    done_at: Mapped[datetime | None] = mapped_column(default=None)


class AppleDeviceLogRow(Base):
    """A message a device sent to Apple's log endpoint (why an update failed)."""

    __tablename__ = "apple_device_logs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime]
    message: Mapped[str] = mapped_column(Text)


__all__ = [
    "ApiTokenRow",
    "AppleDeviceLogRow",
    "AppleRegistrationRow",
    "AuditEntryRow",
    "Base",
    "ClaimLinkRow",
    "CounterRow",
    "EnforcementKeyRow",
    "IdempotencyKeyRow",
    "OutboxRow",
    "PassRow",
    "PublishedBundleRow",
    "StaffUserRow",
    "StatusListRow",
]
