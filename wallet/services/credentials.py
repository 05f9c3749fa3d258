"""Wallet credentials and designs: what the wrappings need, loaded once per process.

Apart from :mod:`wallet.services.wallets` (which builds the wrappings) so that
:class:`~wallet.services.context.Services` can hold them without an import
circle. A missing or broken credential is a ConfigError that names what to fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from wallet.config import Settings
from wallet.errors import ConfigError
from wallet.formats import google
from wallet.formats.apple_dev_ca import create_dev_chain
from wallet.formats.pkpass import AppleDesign, AppleSigner, load_apple_design
from wallet.formats.pkpass import load_apple_signer as _load_signer
from wallet.passtypes import PassType

if TYPE_CHECKING:  # reportlab and Pillow load with the first card printed, not every worker
    from wallet.formats import printable

__all__ = [
    "APPLE_DEV_FOLDER",
    "AppleSetup",
    "WalletFormats",
    "apple_available",
    "ensure_dev_chain",
    "load_apple_signer",
]

APPLE_DEV_FOLDER = "apple-dev"


@dataclass(frozen=True)
class AppleSetup:
    signer: AppleSigner
    designs: dict[str, AppleDesign]
    development: bool


def apple_available(settings: Settings) -> bool:
    """Whether passes can be signed: real credentials, or the development chain exists."""
    if settings.apple_configured:
        return True
    return settings.dev_mode and (settings.instance_dir / APPLE_DEV_FOLDER / "pass.pem").exists()


def ensure_dev_chain(settings: Settings, *, now: datetime) -> Path | None:
    """In development mode, create the local Apple-shaped chain once; its folder."""
    if settings.apple_configured or not settings.dev_mode:
        return None
    folder = settings.instance_dir / APPLE_DEV_FOLDER
    if not (folder / "pass.pem").exists():
        folder.mkdir(parents=True, exist_ok=True)
        create_dev_chain(
            folder,
            team_id=settings.apple_team_id,
            pass_type_id=settings.apple_pass_type_id,
            now=now,
        )
    return folder


def load_apple_signer(settings: Settings) -> tuple[AppleSigner, bool]:
    """The configured signer, or the development chain; (signer, is_development)."""
    if settings.apple_configured:
        assert settings.apple_pass_key is not None and settings.apple_wwdr_cert is not None
        assert settings.apple_pass_cert is not None
        signer = _load_signer(
            certificate=settings.apple_pass_cert,
            key=settings.apple_pass_key,
            wwdr=settings.apple_wwdr_cert,
            passphrase=settings.apple_pass_key_passphrase,
        )
        return signer, False
    folder = settings.instance_dir / APPLE_DEV_FOLDER
    if not settings.dev_mode or not (folder / "pass.pem").exists():
        raise ConfigError(
            "Apple Wallet is not set up: set WALLET_APPLE_PASS_CERT, WALLET_APPLE_PASS_KEY and "
            "WALLET_APPLE_WWDR_CERT (see the README), or run `wallet setup` in development mode"
        )
    signer = _load_signer(
        certificate=folder / "pass.pem",
        key=folder / "pass.key.pem",
        wwdr=folder / "wwdr.pem",
        passphrase=None,
    )
    return signer, True


class WalletFormats:
    """Per-process cache of what the wrappings need, loaded on first use.

    Two threads racing on first use may each load a part once; both results
    are equal, so no lock is needed.
    """

    def __init__(self, settings: Settings, pass_types: dict[str, PassType]) -> None:
        self._settings = settings
        self._types = pass_types
        self.google_classes_ensured: set[str] = set()

    @cached_property
    def apple(self) -> AppleSetup:
        signer, development = load_apple_signer(self._settings)
        folder = self._settings.pass_types_dir
        designs = {t: load_apple_design(folder / t / "apple") for t in self._types}
        return AppleSetup(signer=signer, designs=designs, development=development)

    @cached_property
    def google_account(self) -> google.ServiceAccount:
        path = self._settings.google_service_account
        if path is None:
            raise ConfigError(
                "Google Wallet is not set up: set WALLET_GOOGLE_SERVICE_ACCOUNT and "
                "WALLET_GOOGLE_ISSUER_ID (see the README)"
            )
        return google.load_service_account(path)

    @cached_property
    def google_designs(self) -> dict[str, google.GoogleDesign]:
        folder = self._settings.pass_types_dir
        return {t: google.load_google_design(folder / t) for t in self._types}

    @cached_property
    def print_designs(self) -> dict[str, printable.PrintDesign]:
        folder = self._settings.pass_types_dir
        from wallet.formats import printable

        return {t: printable.load_print_design(folder / t) for t in self._types}
