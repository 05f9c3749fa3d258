"""Running the admin CLI against the test database (each backend) and the test keys."""

from __future__ import annotations

import getpass
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from wallet.cli import cli
from wallet.services.context import Services
from wallet.store.db import Database
from wallet.store.models import AuditEntryRow

LIBRARY_FIELDS = ("--field", "card_number=100200300400", "--field", "name=Erika Mustermann")
PARKING_FIELDS = ("--field", "plate=D-AB 1234", "--field", "zone=12")
PASSWORD = "correct horse battery staple"
OS_ACTOR = f"cli:{getpass.getuser()}"

Env = Mapping[str, str | None]


@dataclass(frozen=True)
class Wallet:
    """``wallet ...`` in-process, with the environment a test chose."""

    runner: CliRunner
    env: Env
    # The commands' one wall-clock read (``Context.clock``); None: the real clock.
    clock: Callable[[], datetime] | None = None

    def __call__(self, *args: str, input: str | None = None, **env: str | None) -> Result:
        result = self.runner.invoke(
            cli, list(args), env={**self.env, **env}, input=input, obj=self.clock
        )
        assert "Traceback" not in result.output, result.output
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    def ok(self, *args: str, input: str | None = None, **env: str | None) -> Result:
        result = self(*args, input=input, **env)
        assert result.exit_code == 0, result.output
        return result


def cli_env(
    db: Database, keys_dir: Path, instance_dir: Path, public_url: str
) -> dict[str, str | None]:
    return {
        "WALLET_DATABASE_URL": db.url,
        "WALLET_SIGNING_KEYS_DIR": str(keys_dir),
        "WALLET_INSTANCE_DIR": str(instance_dir),
        "WALLET_PUBLIC_URL": public_url,
        "WALLET_ISSUER": None,
        "WALLET_DEV_MODE": "1",
        "WALLET_KEY_PASSPHRASE": None,
        "WALLET_SECRET_KEY": None,
        "WALLET_ACTOR": None,
        "WALLET_PASS_TYPES_DIR": None,
    }


@pytest.fixture(name="wallet")
def wallet_fixture(db: Database, services: Services, tmp_path: Path) -> Wallet:
    """The CLI on the ``db`` fixture's database with the ``services`` fixture's keys."""
    settings = services.settings
    env = cli_env(db, settings.signing_keys_dir, tmp_path / "instance", settings.public_url)
    return Wallet(CliRunner(), env)


def audit_entries(db: Database, action: str | None = None) -> list[AuditEntryRow]:
    with db.transaction(write=False) as session:
        query = select(AuditEntryRow).order_by(AuditEntryRow.id)
        if action is not None:
            query = query.where(AuditEntryRow.action == action)
        return list(session.scalars(query))


def issue(wallet: Wallet, type_id: str = "library") -> str:
    """Issue a pass through the CLI; returns its serial."""
    fields = LIBRARY_FIELDS if type_id == "library" else PARKING_FIELDS
    result = wallet("passes", "issue", "--type", type_id, *fields)
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"issued {type_id} pass ")
    return first.rsplit(" ", 1)[1]
