"""What every wrapping of a pass (Apple, Google, printable card) is made from.

One value object, built by the services layer from a stored pass, so the
wallet formats never see the database and all show the same facts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from wallet.passtypes import PassType, Text

__all__ = ["HolderField", "PassState", "WalletPass"]

PassState = Literal["valid", "suspended", "revoked"]


@dataclass(frozen=True)
class HolderField:
    """One holder field as shown on a pass: its name, de/en label and value."""

    name: str
    label: Text
    value: str


@dataclass(frozen=True)
class WalletPass:
    """A pass as every wrapping shows it.

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
