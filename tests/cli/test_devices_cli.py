"""``wallet devices``: list the paired phones, revoke a lost one."""

from __future__ import annotations

import json

from tests.cli.admin import (
    OS_ACTOR,
    Wallet,
    wallet_fixture,  # noqa: F401 - the `wallet` fixture
)
from tests.factories import NOW
from wallet.domain import DeviceState, Role
from wallet.services import audit, devices
from wallet.services.context import Services
from wallet.store.db import Database


def _paired(db: Database, services: Services) -> str:
    with db.transaction(write=True) as session:
        pairing = devices.start_pairing(
            session, name="Handy Außendienst 3", role="verifier", actor="user:vera",
            actor_role=Role.VERIFIER, audit_key=services.audit_key, now=NOW,
        )  # fmt: skip
        devices.complete_pairing(session, code=pairing.code, audit_key=services.audit_key, now=NOW)
    return pairing.device.device_id


def test_a_lost_phone_is_listed_and_revoked_from_the_cli(
    wallet: Wallet, db: Database, services: Services
) -> None:
    device_id = _paired(db, services)
    table = wallet.ok("devices", "list").stdout
    assert device_id in table and "Handy Außendienst 3" in table and "active" in table
    listed = json.loads(wallet.ok("devices", "list", "--json").stdout)
    assert [(d["device_id"], d["state"], d["role"]) for d in listed] == [
        (device_id, "active", "verifier")
    ]
    assert "can no longer sync" in wallet.ok("devices", "revoke", device_id).stdout
    with db.transaction(write=False) as session:
        device = devices.get_device(session, device_id)
        actors = [e.actor for e in audit.trail(session, f"device:{device_id}")]
    assert device.state is DeviceState.REVOKED
    assert actors[0] == OS_ACTOR  # newest first: the revocation, by whoever ran the command


def test_revoking_an_unknown_or_revoked_device_says_so_and_fails(
    wallet: Wallet, db: Database, services: Services
) -> None:
    unknown = wallet("devices", "revoke", "dev_nosuchdev1")
    assert unknown.exit_code != 0 and "no device" in unknown.output
    device_id = _paired(db, services)
    wallet.ok("devices", "revoke", device_id)
    again = wallet("devices", "revoke", device_id)
    assert again.exit_code != 0 and "revoked already" in again.output
