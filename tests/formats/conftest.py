"""Shared by the Apple format tests: one development chain and signer per module."""

from __future__ import annotations

import pytest

from tests.factories import NOW, PASS_TYPES, City
from wallet.config import PROJECT_ROOT
from wallet.formats.apple_dev_ca import DevChain, create_dev_chain
from wallet.formats.pkpass import AppleDesign, AppleSigner, load_apple_design, load_apple_signer

PASS_TYPE_ID = "pass.de.musterstadt.wallet"
TEAM_ID = "MUSTER1234"
DESIGNS = PROJECT_ROOT / "templates" / "passes"


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> DevChain:
    return create_dev_chain(
        tmp_path_factory.mktemp("apple"), team_id=TEAM_ID, pass_type_id=PASS_TYPE_ID, now=NOW
    )


@pytest.fixture(scope="module")
def signer(chain: DevChain) -> AppleSigner:
    return load_apple_signer(
        certificate=chain.certificate, key=chain.key, wwdr=chain.wwdr, passphrase=None
    )


@pytest.fixture(scope="module")
def designs() -> dict[str, AppleDesign]:
    return {t: load_apple_design(DESIGNS / t / "apple") for t in PASS_TYPES}


@pytest.fixture(scope="module")
def issuer() -> City:
    return City()
