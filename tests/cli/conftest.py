"""CLI fixtures: an isolated keys folder and verifier folder per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "WALLET_SIGNING_KEYS_DIR": str(tmp_path / "keys"),
        "WALLET_KEY_PASSPHRASE": "a passphrase for the tests",
        "WALLET_DEV_MODE": "0",
        "WALLET_VERIFIER_DIR": str(tmp_path / "device"),
        "WALLET_INSTANCE_DIR": str(tmp_path / "instance"),
        "WALLET_PUBLIC_URL": "https://pass.stadt-musterstadt.de",
    }


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()
