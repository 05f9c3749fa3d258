"""A renewed pass updates in the holder's Apple and Google Wallet (issue 10, renewals)."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta

from flask.testing import FlaskClient
from sqlalchemy import update

from tests.factories import NOW, stored_row
from tests.standins.apns import ApnsStandIn
from tests.standins.google_wallet import GoogleWalletStandIn
from tests.wallets.conftest import PASS_TYPE_ID
from tests.wallets.test_apple_web_service import Issue
from tests.wallets.test_outbox import cli_env, drain
from wallet.formats import google
from wallet.services import outbox, renewals
from wallet.services.context import Services
from wallet.store.db import Database
from wallet.store.models import PassRow

DEVICE, PUSH_TOKEN = "0123456789abcdef0123456789abcdef", "ef" * 32
BASE = "/apple/v1"


def pass_json(data: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return json.loads(archive.read("pass.json"))


def renew(db: Database, services: Services, serial: str) -> renewals.Renewal:
    with db.transaction(write=True) as session:
        return renewals.renew_pass(session, services, serial, actor="admin:test", now=NOW)


def test_a_renewal_reaches_the_apple_pass_in_place_and_retires_the_old_token_on_fetch(
    db: Database,
    wallet_client: FlaskClient,
    wallet_services: Services,
    issue: Issue,
    apns_server: ApnsStandIn,
    deliverers: outbox.Deliverers,
) -> None:
    old = issue()
    serial = old.row.serial
    document = pass_json(wallet_client.get(f"/p/{old.claim_secret}/pass.pkpass").data)
    auth = {"Authorization": f"ApplePass {document['authenticationToken']}"}
    registration = f"{BASE}/devices/{DEVICE}/registrations/{PASS_TYPE_ID}"
    assert wallet_client.post(
        f"{registration}/{serial}", json={"pushToken": PUSH_TOKEN}, headers=auth
    ).status_code == 201  # fmt: skip
    tag = wallet_client.get(registration).get_json()["lastUpdated"]

    renewal = renew(db, wallet_services, serial)
    new = renewal.issued.record
    drain(db, deliverers)
    (push,) = apns_server.wait_for(1)
    assert push.device_token == PUSH_TOKEN  # the registration moved to the successor
    # The phone asks what changed: the same serial it holds, nothing new to add.
    changed = wallet_client.get(f"{registration}?passesUpdatedSince={tag}").get_json()
    assert changed["serialNumbers"] == [serial]
    assert stored_row(db, serial).state == "valid"  # not yet on the phone
    latest = wallet_client.get(f"{BASE}/passes/{PASS_TYPE_ID}/{serial}", headers=auth)
    assert latest.status_code == 200
    updated = pass_json(latest.data)
    assert updated["serialNumber"] == serial  # same pass in Wallet, updated in place
    assert updated["authenticationToken"] == document["authenticationToken"]
    assert updated["barcodes"][0]["message"] == new.token != old.row.token
    assert updated["expirationDate"] != document["expirationDate"]
    # The new pass reached the phone: the old token is revoked, the new one stays valid.
    assert stored_row(db, serial).state == "revoked"
    assert stored_row(db, new.serial).state == "valid"
    # The retirement of the old token is not pushed over the pass that replaced it.
    drain(db, deliverers)
    assert len(apns_server.wait_for(1)) == 1
    again = wallet_client.get(f"{BASE}/passes/{PASS_TYPE_ID}/{serial}", headers=auth)
    assert "voided" not in pass_json(again.data)
    # A stranger with the serial but without the pass's secret still gets nothing.
    stranger = {"Authorization": "ApplePass " + "x" * 32}
    assert (
        wallet_client.get(f"{BASE}/passes/{PASS_TYPE_ID}/{serial}", headers=stranger).status_code
        == 401
    )


def test_a_renewal_reaches_the_saved_google_pass_and_the_retired_token_never_overwrites_it(
    db: Database,
    wallet_client: FlaskClient,
    wallet_services: Services,
    issue: Issue,
    google_wallet_server: GoogleWalletStandIn,
    deliverers: outbox.Deliverers,
) -> None:
    old = issue("parking")
    object_id = google.object_id(wallet_services.settings.google_issuer_id, old.row.serial)
    assert wallet_client.get(f"/p/{old.claim_secret}/google-wallet").status_code == 303
    renewal = renew(db, wallet_services, old.row.serial)
    new = renewal.issued.record
    drain(db, deliverers)
    saved = google_wallet_server.objects[object_id]
    assert saved["barcode"]["value"] == new.token
    assert saved["validTimeInterval"]["end"]["date"].startswith(f"{new.valid_until:%Y-%m-%d}")
    assert saved["state"] == "ACTIVE"

    # Never claimed through a link: the grace period ends and the old token retires.
    with db.transaction(write=True) as session:
        assert renewals.retire_due(session, wallet_services, now=renewal.retire_at) == 1
    report = drain(db, deliverers, clock=lambda: renewal.retire_at)
    assert (report.delivered, report.failed) == (0, 0)  # nothing queued over the successor
    saved = google_wallet_server.objects[object_id]
    assert (saved["state"], saved["barcode"]["value"]) == ("ACTIVE", new.token)
    assert stored_row(db, old.row.serial).state == "revoked"
    assert len(google_wallet_server.objects) == 1  # no second object: the same pass


def test_the_successors_own_link_claims_it_and_retires_the_old_token(
    db: Database, wallet_client: FlaskClient, wallet_services: Services, issue: Issue
) -> None:
    old = issue()
    renewal = renew(db, wallet_services, old.row.serial)
    secret = renewal.issued.claim_secret
    assert wallet_client.get(f"/p/{secret}").status_code == 200
    assert stored_row(db, old.row.serial).state == "valid"  # opening the page is not taking it
    card = wallet_client.get(f"/p/{secret}/card.pdf")
    assert card.status_code == 200 and card.data.startswith(b"%PDF")
    assert stored_row(db, old.row.serial).state == "revoked"
    # The successor's Apple pass is the holder's existing one: same serial, same secret.
    document = pass_json(wallet_client.get(f"/p/{secret}/pass.pkpass").data)
    assert document["serialNumber"] == old.row.serial
    assert document["authenticationToken"] == old.row.apple_auth_token
    assert renewal.retire_at == NOW + timedelta(days=28)


def test_the_worker_command_retires_renewed_passes_whose_grace_period_is_over(
    db: Database, wallet_services: Services, issue: Issue
) -> None:
    from click.testing import CliRunner

    from wallet.cli import cli

    due, waiting = issue(), issue("parking")
    for old in (due, waiting):
        renew(db, wallet_services, old.row.serial)
    wall_clock = datetime.now(UTC)  # the command runs on the wall clock, not NOW
    with db.transaction(write=True) as session:
        for old, retire_at in ((due, wall_clock - timedelta(minutes=1)),
                               (waiting, wall_clock + timedelta(days=1))):  # fmt: skip
            session.execute(
                update(PassRow).where(PassRow.serial == old.row.serial).values(retire_at=retire_at)
            )
    result = CliRunner().invoke(
        cli, ["worker", "--once"], env=cli_env(db, wallet_services.settings)
    )
    assert result.exit_code == 0, result.output
    assert stored_row(db, due.row.serial).state == "revoked"
    assert stored_row(db, waiting.row.serial).state == "valid"
