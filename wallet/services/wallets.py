"""A stored pass in its wrappings: Apple .pkpass, Google save link, printable card.

Every wrapping carries the same signed token, so the offline verifier checks
them all alike. Credentials and designs are loaded once per process, on first
use, and a missing or broken one is a ConfigError that names what to fix.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wallet.config import Settings
from wallet.errors import ConfigError
from wallet.formats import google
from wallet.formats.apple_dev_ca import create_dev_chain
from wallet.formats.pkpass import AppleDesign, AppleSigner, build_pkpass, load_apple_design
from wallet.formats.pkpass import load_apple_signer as _load_signer
from wallet.formats.walletpass import WalletPass
from wallet.passtypes import PassType
from wallet.push.apns import ApnsClient, CertificateAuth, TokenAuth, load_token_auth
from wallet.push.google_api import GoogleWalletClient
from wallet.qrtext import encode_qr_text
from wallet.services.context import Services
from wallet.store.models import PassRow

if TYPE_CHECKING:  # reportlab and Pillow load with the first card printed, not every worker
    from wallet.formats import printable

__all__ = [
    "APPLE_DEV_FOLDER",
    "AppleSetup",
    "WalletFormats",
    "apple_available",
    "apple_web_service_url",
    "ensure_dev_chain",
    "google_save_link",
    "pkpass_for",
    "wallet_pass",
]

APPLE_DEV_FOLDER = "apple-dev"
APPLE_WEB_SERVICE_PATH = "/apple"


def apple_web_service_url(settings: Settings) -> str:
    """Where devices reach the update web service (Apple appends /v1/...)."""
    return settings.public_url + APPLE_WEB_SERVICE_PATH


def wallet_pass(services: Services, row: PassRow) -> WalletPass:
    """The value every wrapping is built from."""
    pass_type = services.pass_type(row.pass_type)
    return WalletPass.from_holder(
        pass_type,
        row.holder,
        serial=row.serial,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        state=row.state,
        reason=row.reason,
        token=row.token,
        qr_text=encode_qr_text(row.token),
        updated_at=row.updated_at,
        authentication_token=row.apple_auth_token,
    )


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


def pkpass_for(services: Services, row: PassRow, *, now: datetime) -> bytes:
    apple = services.formats.apple
    return build_pkpass(
        wallet_pass(services, row),
        design=apple.designs[row.pass_type],
        signer=apple.signer,
        web_service_url=apple_web_service_url(services.settings),
        now=now,
    )


def google_object(services: Services, row: PassRow) -> dict[str, Any]:
    settings = services.settings
    return google.generic_object(
        wallet_pass(services, row),
        issuer_id=settings.google_issuer_id,
        design=services.formats.google_designs[row.pass_type],
        public_base_url=settings.public_url,
    )


def google_class(services: Services, type_id: str) -> dict[str, Any]:
    settings = services.settings
    return google.generic_class(
        issuer_id=settings.google_issuer_id,
        pass_type=services.pass_type(type_id),
        design=services.formats.google_designs[type_id],
        public_base_url=settings.public_url,
    )


def google_state_patch(services: Services, row: PassRow) -> tuple[str, dict[str, Any]]:
    """Object id and PATCH body carrying the pass's current state (for the outbox)."""
    object_id = google.object_id(services.settings.google_issuer_id, row.serial)
    return object_id, google.state_patch(wallet_pass(services, row))


def google_save_link(
    services: Services,
    row: PassRow,
    *,
    now: datetime,
    client: Callable[[], GoogleWalletClient],
) -> str:
    """The "Add to Google Wallet" link; inserts the object over REST first if it must.

    A whole object in the link needs no API call; when the link would exceed
    Google's 1,800 characters, the class and object are inserted first and
    the link names only the object's id.
    """
    account = services.formats.google_account
    origins = [services.settings.public_url]
    body = google_object(services, row)
    link = google.save_url(account, objects=[body], origins=origins, now=now)
    if link is not None:
        return link
    with client() as api:
        # Once per process and type: the class carries the design, which changes
        # only with a deployment (and then the process restarts).
        if row.pass_type not in services.formats.google_classes_ensured:
            api.ensure_class(google_class(services, row.pass_type))
            services.formats.google_classes_ensured.add(row.pass_type)
        api.insert_object(body)
    short = google.save_url(account, object_ids=[body["id"]], origins=origins, now=now)
    if short is None:  # an id alone is far below the limit
        raise ConfigError("the Google save link is too long even with only the object id")
    return short


def card(services: Services, row: PassRow, *, kind: str, lang: str, now: datetime) -> bytes:
    """The printable card: kind is "pdf" (ID-1), "sheet" (A4 with cut marks) or "png"."""
    from wallet.formats import printable

    design = services.formats.print_designs[row.pass_type]
    value = wallet_pass(services, row)
    if kind == "pdf":
        return printable.card_pdf(value, design=design, lang=lang, now=now)
    if kind == "sheet":
        return printable.sheet_pdf(value, design=design, lang=lang, now=now)
    return printable.card_png(value, design=design, lang=lang, now=now)


def google_client(services: Services) -> GoogleWalletClient:
    """A REST client for the configured Google Wallet issuer (caller closes it)."""
    settings = services.settings
    verify: ssl.SSLContext | bool = True
    if settings.google_ca_file is not None:
        verify = ssl.create_default_context(cafile=str(settings.google_ca_file))
    return GoogleWalletClient(
        services.formats.google_account,
        base_url=settings.google_api_url,
        token_url=settings.google_token_url or None,
        verify=verify,
    )


def apns_client(services: Services) -> ApnsClient:
    """An APNs client: token auth with the .p8 key if set, else the pass certificate."""
    settings = services.settings
    auth: TokenAuth | CertificateAuth
    if settings.apns_key is not None:
        auth = load_token_auth(
            settings.apns_key, key_id=settings.apns_key_id, team_id=settings.apple_team_id
        )
    else:
        auth = _certificate_auth(settings)
    return ApnsClient(auth=auth, base_url=settings.apns_url, ca_file=settings.apns_ca_file)


def _certificate_auth(settings: Settings) -> CertificateAuth:
    if settings.apple_configured:
        assert settings.apple_pass_cert is not None
        return CertificateAuth(
            settings.apple_pass_cert,
            settings.apple_pass_key,
            passphrase=settings.apple_pass_key_passphrase,
        )
    folder = settings.instance_dir / APPLE_DEV_FOLDER
    return CertificateAuth(folder / "pass.pem", folder / "pass.key.pem", passphrase=None)
