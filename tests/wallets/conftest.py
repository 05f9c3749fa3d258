"""The service with Apple and Google Wallet set up against local stand-ins.

APNs is the HTTP/2 TLS stand-in (token auth with a test .p8 key), Google is
the local REST stand-in (service account with a test RSA key), and Apple
passes are signed by a development chain shaped like Apple's.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.factories import NOW, fresh_holder, stored_row
from tests.standins.apns import (  # noqa: F401 - fixtures
    TEAM_ID,
    ApnsStandIn,
    ProviderKey,
    _apns_server_module,
    apns_pki,
    apns_server,
    provider_key,
)
from tests.standins.google_wallet import (  # noqa: F401 - fixtures
    ISSUER_ID,
    GoogleWalletStandIn,
    google_wallet_server,
    service_account_file,
)
from wallet.config import Settings
from wallet.formats.apple_dev_ca import create_dev_chain
from wallet.services import outbox, passes
from wallet.services.context import Services
from wallet.services.credentials import APPLE_DEV_FOLDER
from wallet.store.db import Database
from wallet.store.models import PassRow
from wallet.web import create_app

PASS_TYPE_ID = Settings.apple_pass_type_id
LIBRARY = {"card_number": "100200300400", "name": "Erika Mustermann"}
PARKING = {"plate": "D-AB 1234", "zone": "12"}


@pytest.fixture(scope="session")
def dev_chain_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One development chain for the session (RSA keys take a moment to make)."""
    folder = tmp_path_factory.mktemp("apple-dev")
    create_dev_chain(
        folder, team_id=TEAM_ID, pass_type_id=PASS_TYPE_ID, now=NOW - timedelta(days=1)
    )
    return folder


@pytest.fixture
def wallet_services(
    services: Services,
    dev_chain_folder: Path,
    apns_server: ApnsStandIn,  # noqa: F811
    provider_key: ProviderKey,  # noqa: F811
    google_wallet_server: GoogleWalletStandIn,  # noqa: F811
    service_account_file: Path,  # noqa: F811
) -> Services:
    settings = services.settings
    shutil.copytree(dev_chain_folder, settings.instance_dir / APPLE_DEV_FOLDER)
    settings = replace(
        settings,
        apple_team_id=TEAM_ID,
        apns_url=apns_server.base_url,
        apns_ca_file=apns_server.ca_file,
        apns_key=provider_key.path,
        apns_key_id=provider_key.key_id,
        google_service_account=service_account_file,
        google_issuer_id=ISSUER_ID,
        google_api_url=google_wallet_server.base_url,
        google_token_url=google_wallet_server.token_url,
    )
    return Services(settings=settings, keys=services.keys, pass_types=services.pass_types)


@pytest.fixture
def wallet_app(db: Database, wallet_services: Services) -> Iterator[Flask]:
    yield create_app(
        wallet_services.settings,
        services=wallet_services,
        db=db,
        clock=lambda: NOW,
        config={"TESTING": True, "RATELIMIT_ENABLED": False},
    )


@pytest.fixture
def wallet_client(wallet_app: Flask) -> FlaskClient:
    return wallet_app.test_client()


@pytest.fixture
def issue(db: Database, wallet_services: Services) -> Callable[..., StoredPass]:
    """Issue a pass; the test gets its stored row, Apple's per-pass token included,
    since these tests play the wallet app that holds that token."""

    def make(type_id: str = "library") -> StoredPass:
        holder = LIBRARY if type_id == "library" else fresh_holder(type_id)
        with db.transaction(write=True) as session:
            issued = passes.issue_pass(
                session, wallet_services, type_id=type_id, holder=holder, actor="admin:test",
                now=NOW,
            )  # fmt: skip
        return StoredPass(stored_row(db, issued.record.serial), issued.claim_secret)

    return make


@dataclass(frozen=True)
class StoredPass:
    row: PassRow
    claim_secret: str


@pytest.fixture
def change(db: Database, wallet_services: Services) -> Callable[..., None]:
    def make(serial: str, action: str, reason: str | None = None) -> None:
        with db.transaction(write=True) as session:
            passes.change_state(
                session, wallet_services, serial, action=action, reason=reason,
                actor="admin:test", now=NOW,
            )  # fmt: skip

    return make


@pytest.fixture
def deliverers(wallet_services: Services) -> Iterator[outbox.Deliverers]:
    """The clients `wallet worker` builds, pointed at the stand-ins."""
    from contextlib import ExitStack

    from wallet.cli.worker import build_deliverers

    with ExitStack() as stack:
        yield build_deliverers(wallet_services, stack)
