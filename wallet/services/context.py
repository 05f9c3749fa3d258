"""What the use cases need besides a database session, built once at the edge."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from wallet.auditkey import AUDIT_CHECKPOINT_FILE, AuditKey
from wallet.config import Settings
from wallet.errors import InputError
from wallet.keystore import KeyStore
from wallet.passtypes import PassType
from wallet.services.credentials import WalletFormats
from wallet.services.open_lists import OpenLists


@dataclass(frozen=True)
class Services:
    """Settings, keys and pass types: the collaborators every use case takes."""

    settings: Settings
    keys: KeyStore
    pass_types: Mapping[str, PassType]

    @cached_property
    def formats(self) -> WalletFormats:
        """Wallet credentials and designs, loaded on first use (two racing threads
        may each load them once; both results are equal)."""
        return WalletFormats(self.settings, dict(self.pass_types))

    @cached_property
    def audit_key(self) -> AuditKey:
        """The key every audit entry is written with (see wallet.services.audit)."""
        return self.keys.audit_key()

    @cached_property
    def open_lists(self) -> OpenLists:
        """The status list each pass type fills, remembered by this process."""
        return OpenLists()

    @property
    def audit_checkpoint_file(self) -> Path:
        """Where the newest audit checkpoint is kept outside the database."""
        return self.settings.instance_dir / AUDIT_CHECKPOINT_FILE

    def pass_type(self, type_id: object) -> PassType:
        if not isinstance(type_id, str) or type_id not in self.pass_types:
            known = ", ".join(sorted(self.pass_types))
            raise InputError(f"unknown pass type {type_id!r}; known types: {known}", field="type")
        return self.pass_types[type_id]

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        from wallet.passtypes import load_pass_types

        return cls(
            settings=settings,
            keys=KeyStore(
                settings.signing_keys_dir,
                passphrase=settings.key_passphrase,
                dev_mode=settings.dev_mode,
            ),
            pass_types=load_pass_types(settings.pass_types_dir),
        )
