"""Every rule about a pass, once: states, actions and their transitions, roles, limits,
and the pass value with its one JSON shape.

Services return these values and enforce these rules; web and cli show them.
No layer above spells a state as a bare string or writes its own limit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cached_property
from typing import Any

from wallet.errors import InputError
from wallet.passtypes import PassType, Text
from wallet.plates import normalise_zone
from wallet.qrtext import encode_qr_text

__all__ = [
    "LANGUAGES",
    "MAX_DEVICE_NAME_LENGTH",
    "MAX_DEVICE_ZONES",
    "MAX_EMAIL_LENGTH",
    "MAX_LIST_LIMIT",
    "MAX_REASON_LENGTH",
    "PAIRING_LIFETIME",
    "PASS_STATES",
    "Action",
    "ApiToken",
    "AuditEntry",
    "Device",
    "DeviceState",
    "HolderField",
    "PassRecord",
    "PassState",
    "Role",
    "StaffUser",
    "WalletPass",
    "allowed_actions",
    "check_email_address",
    "check_language",
    "claim_url",
    "device_zones",
    "transition",
]


class PassState(StrEnum):
    VALID = "valid"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


# The states as plain text, for checking input and for documents (OpenAPI, forms).
PASS_STATES: tuple[str, ...] = tuple(state.value for state in PassState)


class Action(StrEnum):
    """What staff can do to an issued pass (reissue is revoke plus a new pass)."""

    REVOKE = "revoke"
    SUSPEND = "suspend"
    REINSTATE = "reinstate"

    @property
    def done(self) -> str:
        """For messages: "it cannot be suspended" (never "suspendd")."""
        return _DONE[self]


_DONE = {Action.REVOKE: "revoked", Action.SUSPEND: "suspended", Action.REINSTATE: "reinstated"}


class Role(StrEnum):
    """What a staff account or API token may do (admin > issuer > verifier)."""

    ADMIN = "admin"
    ISSUER = "issuer"
    VERIFIER = "verifier"


# action -> (states it may start from, the state it leads to)
_TRANSITIONS: Mapping[Action, tuple[frozenset[PassState], PassState]] = {
    Action.REVOKE: (frozenset({PassState.VALID, PassState.SUSPENDED}), PassState.REVOKED),
    Action.SUSPEND: (frozenset({PassState.VALID}), PassState.SUSPENDED),
    Action.REINSTATE: (frozenset({PassState.SUSPENDED}), PassState.VALID),
}

# Free text staff give (a revocation reason) and the longest page of a listing.
MAX_REASON_LENGTH = 500
MAX_LIST_LIMIT = 500


def allowed_actions(state: PassState | str, *, suspendable: bool) -> tuple[Action, ...]:
    """The actions a pass in ``state`` allows, in the order staff see them."""
    return tuple(
        action
        for action, (sources, _) in _TRANSITIONS.items()
        if state in sources and (suspendable or action is not Action.SUSPEND)
    )


def transition(state: PassState | str, action: Action, *, suspendable: bool) -> PassState | None:
    """The state ``action`` leads to from ``state``, or None if it is not allowed."""
    if action not in allowed_actions(state, suspendable=suspendable):
        return None
    return _TRANSITIONS[action][1]


def claim_url(public_url: str, secret: str) -> str:
    """The citizen's link to their pass (the secret is shown once, stored hashed)."""
    return f"{public_url}/p/{secret}"


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else _time(moment)


@dataclass(frozen=True)
class PassRecord:
    """An issued pass as staff see it: everything to reprint it, never its claim secret
    (nor Apple's per-pass token, nor where its status bit sits)."""

    serial: str
    pass_type: str
    state: PassState
    holder: Mapping[str, str]
    valid_from: datetime
    valid_until: datetime
    reason: str | None
    replaces: str | None
    replaced_by: str | None
    created_at: datetime
    updated_at: datetime
    kid: str
    token: str

    @cached_property
    def qr_text(self) -> str:
        """What the QR code holds: derived from the token when first read (a list of
        passes, or an issuance under SQLite's write lock, need not encode it)."""
        return encode_qr_text(self.token)

    def to_json(self) -> dict[str, Any]:
        """The one JSON shape of a pass: the API's, the CLI's ``--json`` and the console's."""
        return {
            "serial": self.serial,
            "type": self.pass_type,
            "state": self.state.value,
            "holder": dict(self.holder),
            "valid_from": _time(self.valid_from),
            "valid_until": _time(self.valid_until),
            "reason": self.reason,
            "replaces": self.replaces,
            "replaced_by": self.replaced_by,
            "created_at": _time(self.created_at),
            "updated_at": _time(self.updated_at),
            "kid": self.kid,
            "token": self.token,
            "qr_text": self.qr_text,
        }


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit trail as staff read it."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    details: Mapping[str, Any]
    seq: int | None
    hash: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "details": dict(self.details),
            "seq": self.seq,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class StaffUser:
    """A console account as staff and admins see it (never its password hash)."""

    username: str
    role: Role
    disabled: bool
    created_at: datetime
    last_login_at: datetime | None


@dataclass(frozen=True)
class ApiToken:
    """An API token as admins see it: its name, role and prefix, never its secret."""

    name: str
    role: Role
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class HolderField:
    """One holder field as shown on a pass: its name, de/en label and value."""

    name: str
    label: Text
    value: str


@dataclass(frozen=True)
class WalletPass:
    """A pass as every wrapping (Apple, Google, printable card) shows it.

    ``token`` is the compact JWS; the wallet apps encode it in their own QR
    codes. ``qr_text`` is the compact numeric-mode QR text (``WP1...``) used
    where this service draws the QR code itself (page, PNG, printable card).
    Both verify offline with the same result.
    """

    serial: str
    pass_type: PassType
    holder: tuple[HolderField, ...]
    valid_from: datetime
    valid_until: datetime
    state: PassState
    reason: str | None
    token: str
    qr_text: str
    updated_at: datetime
    # Apple's per-pass secret for its web service (>= 16 characters).
    authentication_token: str
    # The serial the wallets know this pass by: a renewal keeps its predecessor's,
    # so Apple and Google update the holder's pass in place ("": its own serial).
    wallet_serial: str = ""

    @property
    def wallet_id(self) -> str:
        return self.wallet_serial or self.serial

    @classmethod
    def from_holder(
        cls, pass_type: PassType, holder: Mapping[str, str], **rest: object
    ) -> WalletPass:
        """Build with holder fields in the pass type's order and labels."""
        fields = tuple(
            HolderField(f.name, f.label, holder[f.name])
            for f in pass_type.fields
            if f.name in holder
        )
        return cls(pass_type=pass_type, holder=fields, **rest)  # type: ignore[arg-type]

    @property
    def alt_text(self) -> str:
        """Short human-readable text under a wallet's QR code."""
        return self.serial[:12]


# -- staff devices (the scanner app on a phone) -------------------------------------

# A pairing QR is shown on a screen where others may see it: it works once, briefly.
PAIRING_LIFETIME = timedelta(minutes=10)
MAX_DEVICE_NAME_LENGTH = 64
# The zones an officer works in; a device for no zone in particular gets every zone.
MAX_DEVICE_ZONES = 20
_DEVICE_ZONE_RE = re.compile(r"[0-9A-Z\u00c4\u00d6\u00dc-]+")


def device_zones(text: object) -> tuple[str, ...]:
    """The zones typed for a device (``"12, 13"``), sorted; none means every zone."""
    if not isinstance(text, str):
        raise InputError("list the zones separated by commas, for example 12, 13", field="zones")
    parts = [p for p in re.split(r"[,;\s]+", text) if p]
    if len(parts) > MAX_DEVICE_ZONES:
        raise InputError(f"a device can work in at most {MAX_DEVICE_ZONES} zones", field="zones")
    zones = {normalise_zone(p, field="zones") for p in parts}
    if any(not _DEVICE_ZONE_RE.fullmatch(zone) for zone in zones):
        raise InputError("a zone is letters and digits, for example 12 or 4A", field="zones")
    return tuple(sorted(zones))


class DeviceState(StrEnum):
    """pending (pairing QR shown, not scanned yet) -> active -> revoked."""

    PENDING = "pending"
    ACTIVE = "active"
    REVOKED = "revoked"


@dataclass(frozen=True)
class Device:
    """A paired staff phone as the console lists it: never its credential or pairing code."""

    device_id: str
    name: str
    role: Role
    state: DeviceState
    created_by: str
    created_at: datetime
    pairing_expires_at: datetime | None
    paired_at: datetime | None
    last_sync_at: datetime | None
    revoked_at: datetime | None
    zones: tuple[str, ...] = ()  # the zones its plate index covers; () = every zone

    def pairing_expired(self, now: datetime) -> bool:
        """A pending device whose pairing QR can no longer be used."""
        return (
            self.state is DeviceState.PENDING
            and self.pairing_expires_at is not None
            and now >= self.pairing_expires_at
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "name": self.name,
            "role": self.role.value,
            "state": self.state.value,
            "created_by": self.created_by,
            "created_at": _iso(self.created_at),
            "paired_at": _iso(self.paired_at),
            "last_sync_at": _iso(self.last_sync_at),
            "revoked_at": _iso(self.revoked_at),
            "zones": list(self.zones),
        }


# -- reaching holders -----------------------------------------------------------------

LANGUAGES = ("de", "en")  # a holder's language: German first
MAX_EMAIL_LENGTH = 254  # RFC 5321's limit on a forward path
# One address, no display name, no comments, no spaces: what a holder types into a form.
_EMAIL_RE = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,63}")


def check_email_address(value: object, *, field: str = "email") -> str:
    """A holder's e-mail address, trimmed; refused with an example when it is not one."""
    text = value.strip() if isinstance(value, str) else ""
    if len(text) > MAX_EMAIL_LENGTH or not _EMAIL_RE.fullmatch(text) or ".." in text:
        raise InputError("give one e-mail address like erika.mustermann@example.de", field=field)
    return text


def check_language(value: object, *, field: str = "lang") -> str:
    if value not in LANGUAGES:
        raise InputError(f"{field} must be one of {', '.join(LANGUAGES)}", field=field)
    return str(value)
