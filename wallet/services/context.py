"""What the use cases need besides a database session, built once at the edge."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from wallet.config import Settings
from wallet.errors import InputError
from wallet.keystore import KeyStore
from wallet.passtypes import PassType

if TYPE_CHECKING:
    from wallet.services.passes import OpenLists
    from wallet.services.wallets import WalletFormats


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
        from wallet.services.wallets import WalletFormats

        return WalletFormats(self.settings, dict(self.pass_types))

    @cached_property
    def open_lists(self) -> OpenLists:
        """The status list each pass type fills, remembered by this process."""
        from wallet.services.passes import OpenLists

        return OpenLists()

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
