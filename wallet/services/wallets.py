"""A stored pass in its wrappings: Apple .pkpass, Google save link, printable card.

Every wrapping carries the same signed token, so the offline verifier checks
them all alike. Credentials and designs are loaded once per process, on first
use, and a missing or broken one is a ConfigError that names what to fix.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from datetime import datetime
from typing import Any

from wallet.config import Settings
from wallet.domain import PassState, WalletPass
from wallet.errors import ConfigError
from wallet.formats import google
from wallet.formats.pkpass import build_pkpass
from wallet.push.apns import ApnsClient, CertificateAuth, TokenAuth, load_token_auth
from wallet.push.google_api import GoogleWalletClient
from wallet.qrtext import encode_qr_text
from wallet.services.context import Services
from wallet.services.credentials import APPLE_DEV_FOLDER
from wallet.store.models import PassRow

__all__ = [
    "apple_web_service_url",
    "google_save_link",
    "pkpass_for",
    "wallet_pass",
]

APPLE_WEB_SERVICE_PATH = "/apple"


def apple_web_service_url(settings: Settings) -> str:
    """Where devices reach the update web service (Apple appends /v1/...)."""
    return settings.public_url + APPLE_WEB_SERVICE_PATH


def wallet_pass(services: Services, row: PassRow) -> WalletPass:
    """The value every wrapping is built from (services build it; web and cli get it)."""
    pass_type = services.pass_type(row.pass_type)
    return WalletPass.from_holder(
        pass_type,
        row.holder,
        serial=row.serial,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        state=PassState(row.state),
        reason=row.reason,
        token=row.token,
        qr_text=encode_qr_text(row.token),
        updated_at=row.updated_at,
        authentication_token=row.apple_auth_token,
        wallet_serial=row.wallet_serial or "",
    )


def pkpass_for(services: Services, value: WalletPass, *, now: datetime) -> bytes:
    apple = services.formats.apple
    return build_pkpass(
        value,
        design=apple.designs[value.pass_type.id],
        signer=apple.signer,
        web_service_url=apple_web_service_url(services.settings),
        now=now,
    )


def google_object(services: Services, value: WalletPass) -> dict[str, Any]:
    settings = services.settings
    return google.generic_object(
        value,
        issuer_id=settings.google_issuer_id,
        design=services.formats.google_designs[value.pass_type.id],
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


def google_state_patch(services: Services, value: WalletPass) -> tuple[str, dict[str, Any]]:
    """Object id and PATCH body carrying the pass's current state (for the outbox)."""
    object_id = google.object_id(services.settings.google_issuer_id, value.wallet_id)
    return object_id, google.state_patch(value)


def google_save_link(
    services: Services,
    value: WalletPass,
    *,
    now: datetime,
    client: Callable[[], GoogleWalletClient],
) -> str:
    """The "Add to Google Wallet" link; inserts the object over REST first if it must.

    Both ways create the class before the object: a whole object travels with
    its class in the link (no API call); when that link would exceed Google's
    1,800 characters, the class and object are inserted first and the link
    names only the object's id.
    """
    account = services.formats.google_account
    origins = [services.settings.public_url]
    type_id = value.pass_type.id
    body = google_object(services, value)
    classes = [google_class(services, type_id)]
    link = google.save_url(account, objects=[body], classes=classes, origins=origins, now=now)
    if link is not None:
        return link
    with client() as api:
        # Once per process and type: the class carries the design, which changes
        # only with a deployment (and then the process restarts).
        if type_id not in services.formats.google_classes_ensured:
            api.ensure_class(google_class(services, type_id))
            services.formats.google_classes_ensured.add(type_id)
        if not api.insert_object(body):
            # Saved before under this id (a renewal keeps its predecessor's): bring
            # Google's copy up to date rather than hand out the old token again.
            api.patch_object(body["id"], google.state_patch(value))
    short = google.save_url(account, object_ids=[body["id"]], origins=origins, now=now)
    if short is None:  # an id alone is far below the limit
        raise ConfigError("the Google save link is too long even with only the object id")
    return short


def card(services: Services, value: WalletPass, *, kind: str, lang: str, now: datetime) -> bytes:
    """The printable card: kind is "pdf" (ID-1), "sheet" (A4 with cut marks) or "png"."""
    from wallet.formats import printable  # reportlab and Pillow: loaded by the first card only

    design = services.formats.print_designs[value.pass_type.id]
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
