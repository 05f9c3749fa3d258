"""The durable outbox: a committed change reaches Apple devices and Google Wallet,
through outages, crashes and concurrent workers, and nothing is delivered twice."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.concurrency import run_together
from tests.factories import NOW
from tests.standins.apns import ApnsStandIn, Pki, Reply
from tests.standins.google_wallet import GoogleWalletStandIn
from tests.wallets.conftest import PASS_TYPE_ID, StoredPass
from wallet.config import Settings
from wallet.formats import google
from wallet.push.apns import ApnsClient, load_token_auth
from wallet.services import apple, doctor, outbox, passes
from wallet.services.context import Services
from wallet.store.db import Database
from wallet.store.models import AppleRegistrationRow, AuditEntryRow, OutboxRow

Issue = Callable[..., StoredPass]
Change = Callable[..., None]


def token_for(n: int) -> str:
    return f"{n:02x}" * 32


def register(db: Database, services: Services, row: passes.PassRow, n: int) -> str:
    push_token = token_for(n)
    with db.transaction(write=True) as session:
        apple.register_device(
            session, services, device_id=f"device{n}", pass_type_id=PASS_TYPE_ID,
            serial=row.serial, authorization=f"ApplePass {row.apple_auth_token}",
            push_token=push_token, now=NOW,
        )  # fmt: skip
    return push_token


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def drain(db: Database, deliverers: outbox.Deliverers, clock: Callable[[], datetime] = lambda: NOW):
    return outbox.drain(lambda: db.transaction(write=True), deliverers, clock=clock)


def rows(db: Database) -> list[OutboxRow]:
    with db.transaction(write=False) as session:
        found = list(session.scalars(select(OutboxRow).order_by(OutboxRow.id)))
        session.expunge_all()
        return found


def registration_count(db: Database) -> int:
    with db.transaction(write=False) as session:
        return int(session.scalar(select(func.count()).select_from(AppleRegistrationRow)) or 0)


def test_revoking_queues_a_push_per_registered_device_and_a_google_update(
    db: Database, wallet_services: Services, issue: Issue, change: Change
) -> None:
    row = issue().row
    tokens = {register(db, wallet_services, row, n) for n in (1, 2)}
    assert rows(db) == []  # registering queues nothing
    change(row.serial, "revoke", "lost")
    queued = rows(db)
    assert sorted(r.kind for r in queued) == ["apns", "apns", "google_state"]
    assert {r.payload["push_token"] for r in queued if r.kind == "apns"} == tokens
    assert all(r.state == "pending" and r.pass_id == row.id for r in queued)


def test_nothing_is_queued_for_platforms_that_are_not_set_up(
    db: Database, services: Services
) -> None:
    with db.transaction(write=True) as session:
        row = passes.issue_pass(
            session, services, type_id="library",
            holder={"card_number": "100200300400", "name": "Erika"}, actor="t", now=NOW,
        ).record  # fmt: skip
    with db.transaction(write=True) as session:
        passes.change_state(
            session, services, row.serial, action="revoke", reason=None, actor="t", now=NOW
        )
    assert rows(db) == []


def test_a_failed_change_queues_nothing(
    db: Database, wallet_services: Services, issue: Issue, change: Change
) -> None:
    row = issue().row
    register(db, wallet_services, row, 1)
    change(row.serial, "revoke")
    before = len(rows(db))
    with pytest.raises(passes.StateConflictError):
        change(row.serial, "revoke")
    assert len(rows(db)) == before


def test_the_worker_pushes_a_revocation_to_every_registered_device_over_http2(
    db: Database,
    wallet_services: Services,
    issue: Issue,
    change: Change,
    apns_server: ApnsStandIn,
    deliverers: outbox.Deliverers,
) -> None:
    row = issue().row
    tokens = {register(db, wallet_services, row, n) for n in (1, 2, 3)}
    change(row.serial, "revoke")
    report = drain(db, deliverers)
    assert (report.delivered, report.retried, report.failed) == (4, 0, 0)  # 3 pushes + Google
    pushes = apns_server.wait_for(3)
    assert {p.device_token for p in pushes} == tokens
    for push in pushes:
        assert push.http_version == "2" or push.http_version.endswith("2")
        assert push.headers["apns-topic"] == PASS_TYPE_ID
        assert json.loads(push.body) == {}
        assert push.status == 200
    assert len(apns_server.connections) == 1  # one reused HTTP/2 connection
    assert {r.state for r in rows(db)} == {"done"}
    assert drain(db, deliverers).handled == 0  # nothing is delivered twice


def test_a_revoked_pass_reaches_the_device_voided_end_to_end(
    db: Database,
    wallet_client: FlaskClient,
    issue: Issue,
    change: Change,
    apns_server: ApnsStandIn,
    deliverers: outbox.Deliverers,
) -> None:
    issued = issue()
    secret, serial = issued.claim_secret, issued.row.serial
    # The citizen adds the pass; Wallet on the phone registers for updates.
    download = wallet_client.get(f"/p/{secret}/pass.pkpass")
    with zipfile.ZipFile(io.BytesIO(download.data)) as archive:
        document = json.loads(archive.read("pass.json"))
    device, push_token = "0123456789abcdef0123456789abcdef", "ef" * 32
    auth = {"Authorization": f"ApplePass {document['authenticationToken']}"}
    base = "/apple/v1"
    assert document["webServiceURL"].endswith("/apple") and "voided" not in document
    registered = wallet_client.post(
        f"{base}/devices/{device}/registrations/{document['passTypeIdentifier']}/{serial}",
        json={"pushToken": push_token},
        headers=auth,
    )
    assert registered.status_code == 201
    listed = wallet_client.get(f"{base}/devices/{device}/registrations/{PASS_TYPE_ID}").get_json()
    tag = listed["lastUpdated"]

    change(serial, "revoke", "reported stolen")
    drain(db, deliverers)

    (push,) = apns_server.wait_for(1)
    assert push.device_token == push_token
    changed = wallet_client.get(
        f"{base}/devices/{device}/registrations/{PASS_TYPE_ID}?passesUpdatedSince={tag}"
    ).get_json()
    assert changed["serialNumbers"] == [serial]
    latest = wallet_client.get(f"{base}/passes/{PASS_TYPE_ID}/{serial}", headers=auth)
    with zipfile.ZipFile(io.BytesIO(latest.data)) as archive:
        assert json.loads(archive.read("pass.json"))["voided"] is True


def test_google_objects_follow_suspend_and_reinstate_end_to_end(
    db: Database,
    wallet_client: FlaskClient,
    wallet_services: Services,
    issue: Issue,
    change: Change,
    google_wallet_server: GoogleWalletStandIn,
    deliverers: outbox.Deliverers,
) -> None:
    issued = issue("parking")
    object_id = google.object_id(wallet_services.settings.google_issuer_id, issued.row.serial)
    saved = wallet_client.get(f"/p/{issued.claim_secret}/google-wallet")
    assert saved.status_code == 303
    assert google_wallet_server.objects[object_id]["state"] == "ACTIVE"

    change(issued.row.serial, "suspend", "unpaid fee")
    drain(db, deliverers)
    assert google_wallet_server.objects[object_id]["state"] == "INACTIVE"
    assert "unpaid fee" not in json.dumps(google_wallet_server.objects[object_id])

    change(issued.row.serial, "reinstate")
    drain(db, deliverers)
    assert google_wallet_server.objects[object_id]["state"] == "ACTIVE"

    change(issued.row.serial, "revoke")
    drain(db, deliverers)
    assert google_wallet_server.objects[object_id]["state"] == "INACTIVE"
    assert {r.state for r in rows(db)} == {"done"}


def test_a_google_object_never_saved_needs_no_update(
    db: Database, issue: Issue, change: Change, deliverers: outbox.Deliverers,
    google_wallet_server: GoogleWalletStandIn,
) -> None:  # fmt: skip
    row = issue().row
    change(row.serial, "revoke")
    report = drain(db, deliverers)
    assert (report.delivered, report.failed) == (1, 0)
    assert google_wallet_server.objects == {}


def test_an_unregistered_device_is_forgotten(
    db: Database,
    wallet_services: Services,
    issue: Issue,
    change: Change,
    apns_server: ApnsStandIn,
    deliverers: outbox.Deliverers,
) -> None:
    row = issue().row
    dead = register(db, wallet_services, row, 1)
    register(db, wallet_services, row, 2)
    apns_server.script(dead, Reply(410, "Unregistered", timestamp_ms=1_700_000_000_000))
    change(row.serial, "revoke")
    report = drain(db, deliverers)
    assert report.failed == 0
    assert registration_count(db) == 1


def test_an_apns_outage_never_loses_the_push(
    db: Database,
    wallet_services: Services,
    issue: Issue,
    change: Change,
    apns_server: ApnsStandIn,
    deliverers: outbox.Deliverers,
) -> None:
    row = issue().row
    push_token = register(db, wallet_services, row, 1)
    apns_server.script(
        push_token, Reply(503, "ServiceUnavailable"), Reply(500, "InternalServerError")
    )
    change(row.serial, "revoke")
    clock = Clock(NOW)

    first = drain(db, deliverers, clock)
    assert first.retried == 1
    (pending,) = [r for r in rows(db) if r.kind == "apns"]
    assert pending.state == "pending" and pending.attempts == 1
    assert pending.next_attempt_at > NOW and "ServiceUnavailable" in (pending.last_error or "")
    assert drain(db, deliverers, clock).handled == 0  # not due yet: backing off

    clock.now = pending.next_attempt_at
    assert drain(db, deliverers, clock).retried == 1
    (pending,) = [r for r in rows(db) if r.kind == "apns"]
    assert pending.next_attempt_at - clock.now > timedelta(seconds=7)  # the wait doubled

    clock.now = pending.next_attempt_at
    assert drain(db, deliverers, clock).delivered == 1
    assert [p.status for p in apns_server.pushes] == [503, 500, 200]
    assert {r.state for r in rows(db)} == {"done"}


def test_an_unreachable_apns_is_retried_later(
    db: Database,
    wallet_services: Services,
    issue: Issue,
    change: Change,
    apns_server: ApnsStandIn,
) -> None:
    row = issue().row
    register(db, wallet_services, row, 1)
    change(row.serial, "revoke")
    settings = wallet_services.settings
    assert settings.apns_key is not None
    auth = load_token_auth(settings.apns_key, key_id=settings.apns_key_id, team_id="DEF123GHIJ")
    with socket_closed_port() as port:
        client = ApnsClient(
            auth=auth, base_url=f"https://127.0.0.1:{port}", ca_file=apns_server.ca_file, timeout=2
        )
        with client:
            report = drain(db, outbox.Deliverers(apns=client, apple_topic=PASS_TYPE_ID))
    assert report.delivered == 0 and report.failed == 0
    (pending,) = [r for r in rows(db) if r.kind == "apns"]
    assert pending.state == "pending" and "cannot reach APNs" in (pending.last_error or "")


def socket_closed_port():  # type: ignore[no-untyped-def]
    import contextlib
    import socket

    @contextlib.contextmanager
    def closed():  # type: ignore[no-untyped-def]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        yield port

    return closed()


def test_a_rejected_push_is_given_up_and_reported_by_the_doctor(
    db: Database,
    wallet_services: Services,
    issue: Issue,
    change: Change,
    apns_server: ApnsStandIn,
    deliverers: outbox.Deliverers,
) -> None:
    row = issue().row
    push_token = register(db, wallet_services, row, 1)
    apns_server.script(push_token, Reply(400, "BadTopic"))
    change(row.serial, "revoke")
    report = drain(db, deliverers)
    assert report.failed == 1 and "BadTopic" in report.errors[0]
    (failed,) = [r for r in rows(db) if r.kind == "apns"]
    assert failed.state == "failed" and "BadTopic" in (failed.last_error or "")
    with db.transaction(write=False) as session:
        codes = [f.code for f in doctor.check_outbox(session, now=NOW)]
    assert codes == ["outbox-failed"]


def test_retries_end_after_the_last_attempt(
    db: Database, wallet_services: Services, issue: Issue, change: Change,
    apns_server: ApnsStandIn, deliverers: outbox.Deliverers,
) -> None:  # fmt: skip
    row = issue().row
    push_token = register(db, wallet_services, row, 1)
    change(row.serial, "revoke")
    with db.transaction(write=True) as session:
        session.execute(
            OutboxRow.__table__.update()
            .where(OutboxRow.kind == "apns")
            .values(attempts=outbox.MAX_ATTEMPTS - 1)
        )
    apns_server.script(push_token, Reply(503, "ServiceUnavailable"))
    assert drain(db, deliverers).failed == 1


def test_a_worker_that_dies_mid_delivery_leaves_the_push_to_another(
    db: Database, wallet_services: Services, issue: Issue, change: Change,
    apns_server: ApnsStandIn, deliverers: outbox.Deliverers,
) -> None:  # fmt: skip
    row = issue().row
    register(db, wallet_services, row, 1)
    change(row.serial, "revoke")
    with db.transaction(write=True) as session:  # claimed, then the worker is killed
        assert len(outbox._claim(session, now=NOW, limit=10)) == 2
    assert drain(db, deliverers).handled == 0  # leased: nobody else takes it yet
    later = Clock(NOW + outbox.LEASE + timedelta(seconds=1))
    assert drain(db, deliverers, later).delivered == 2
    assert len(apns_server.wait_for(1)) == 1


def test_concurrent_workers_deliver_each_push_exactly_once(
    db: Database,
    wallet_services: Services,
    issue: Issue,
    change: Change,
    apns_server: ApnsStandIn,
) -> None:
    row = issue().row
    tokens = [register(db, wallet_services, row, n) for n in range(1, 25)]
    change(row.serial, "revoke")
    from wallet.cli.worker import build_deliverers

    def work() -> None:
        with ExitStack() as stack:
            mine = build_deliverers(wallet_services, stack)
            for _ in range(5):
                outbox.drain(lambda: db.transaction(write=True), mine, clock=lambda: NOW, limit=4)

    run_together(work, threads=3)
    pushed = [p.device_token for p in apns_server.wait_for(len(tokens))]
    assert sorted(pushed) == sorted(tokens)  # each once, none twice
    assert {r.state for r in rows(db)} == {"done"}


def test_a_google_outage_is_retried(
    db: Database, issue: Issue, change: Change, wallet_client: FlaskClient,
    google_wallet_server: GoogleWalletStandIn, deliverers: outbox.Deliverers,
) -> None:  # fmt: skip
    issued = issue()
    wallet_client.get(f"/p/{issued.claim_secret}/google-wallet")
    change(issued.row.serial, "revoke")
    google_wallet_server.fail_next(1, status=503)
    assert drain(db, deliverers).retried == 1
    (pending,) = rows(db)
    clock = Clock(pending.next_attempt_at)
    assert drain(db, deliverers, clock).delivered == 1
    (stored,) = google_wallet_server.objects.values()
    assert stored["state"] == "INACTIVE"


def test_backoff_grows_and_is_capped() -> None:
    import random

    rng = random.Random(1)
    waits = [outbox.backoff(n, rng=rng).total_seconds() for n in (1, 2, 3, 10, 50)]
    assert 4 <= waits[0] <= 6 and 8 <= waits[1] <= 12 and 16 <= waits[2] <= 24
    assert waits[3] <= 1800 * 1.2 and waits[4] <= 1800 * 1.2 and waits[4] >= 1800 * 0.8


def test_the_worker_command_delivers_and_seals(
    db: Database, wallet_services: Services, issue: Issue, change: Change,
    apns_server: ApnsStandIn,
) -> None:  # fmt: skip
    """`wallet worker --once` with the configuration in the environment, as it runs for real."""
    from click.testing import CliRunner

    from wallet.cli import cli

    row = issue().row
    register(db, wallet_services, row, 7)
    change(row.serial, "revoke")
    with db.transaction(write=True) as session:  # the command runs on the wall clock, not NOW
        session.execute(
            OutboxRow.__table__.update().values(
                next_attempt_at=datetime.now(UTC) - timedelta(minutes=1)
            )
        )
    env = cli_env(db, wallet_services.settings)
    result = CliRunner().invoke(cli, ["worker", "--once"], env=env)
    assert result.exit_code == 0, result.output
    (push,) = apns_server.wait_for(1)
    assert push.device_token == token_for(7)
    assert {r.state for r in rows(db)} == {"done"}
    with db.transaction(write=False) as session:
        from wallet.services import audit

        report = audit.verify_chain(session, key=wallet_services.audit_key)
    assert report.intact and report.unsealed == 0


def cli_env(db: Database, s: Settings) -> dict[str, str]:
    """The environment `wallet ...` needs to reach this test's database and stand-ins."""
    return {
        "WALLET_DATABASE_URL": db.engine.url.render_as_string(hide_password=False),
        "WALLET_INSTANCE_DIR": str(s.instance_dir),
        "WALLET_SIGNING_KEYS_DIR": str(s.signing_keys_dir),
        "WALLET_DEV_MODE": "1",
        "WALLET_PUBLIC_URL": s.public_url,
        "WALLET_APPLE_TEAM_ID": s.apple_team_id,
        "WALLET_APNS_URL": s.apns_url,
        "WALLET_APNS_CA_FILE": str(s.apns_ca_file),
        "WALLET_APNS_KEY": str(s.apns_key),
        "WALLET_APNS_KEY_ID": s.apns_key_id,
        "WALLET_GOOGLE_SERVICE_ACCOUNT": str(s.google_service_account),
        "WALLET_GOOGLE_ISSUER_ID": s.google_issuer_id,
        "WALLET_GOOGLE_API_URL": s.google_api_url,
        "WALLET_GOOGLE_TOKEN_URL": s.google_token_url,
        "WALLET_ACTOR": "admin:test",
    }


def test_given_up_deliveries_are_listed_and_can_be_retried_after_a_fix(
    db: Database, wallet_services: Services, issue: Issue, change: Change,
    apns_server: ApnsStandIn, deliverers: outbox.Deliverers,
) -> None:  # fmt: skip
    from click.testing import CliRunner

    from wallet.cli import cli

    row = issue().row
    push_token = register(db, wallet_services, row, 3)
    apns_server.script(push_token, Reply(400, "BadTopic"))  # a set-up mistake, fixed below
    change(row.serial, "revoke")
    drain(db, deliverers)
    env = cli_env(db, wallet_services.settings)
    runner = CliRunner()
    at_now = lambda: NOW  # noqa: E731 - the CLI reads the test's clock, as drain() does

    listed = runner.invoke(cli, ["outbox", "list"], env=env, obj=at_now)
    assert listed.exit_code == 0, listed.output
    assert row.serial in listed.output and "BadTopic" in listed.output
    shown = runner.invoke(cli, ["passes", "show", row.serial], env=env, obj=at_now)
    assert "1 delivered, 1 given up" in shown.output

    retried = runner.invoke(cli, ["outbox", "retry"], env=env, obj=at_now)
    assert retried.exit_code == 0 and "1 deliveries queued again" in retried.output
    assert "nothing to retry" in runner.invoke(cli, ["outbox", "retry"], env=env, obj=at_now).output
    assert drain(db, deliverers).delivered == 1
    assert [p.status for p in apns_server.pushes] == [400, 200]
    with db.transaction(write=False) as session:
        retries = session.scalars(
            select(AuditEntryRow).where(AuditEntryRow.action == "outbox.retry")
        ).all()
        assert [(e.actor, e.details) for e in retries] == [("admin:test", {"count": 1})]


def test_old_finished_deliveries_and_device_logs_are_pruned(
    db: Database, wallet_services: Services, issue: Issue, change: Change,
    apns_server: ApnsStandIn, deliverers: outbox.Deliverers,
) -> None:  # fmt: skip
    row = issue("parking").row
    dead = register(db, wallet_services, row, 1)
    register(db, wallet_services, row, 2)
    apns_server.script(dead, Reply(400, "BadTopic"))
    change(row.serial, "suspend")
    drain(db, deliverers)  # one push failed for good, the other and Google delivered
    change(row.serial, "reinstate")  # pending: never pruned
    with db.transaction(write=True) as session:
        apple.record_log(session, ["old trouble"], now=NOW - timedelta(days=31))
        apple.record_log(session, ["new trouble"], now=NOW)

    def prune(at: datetime) -> int:
        with db.transaction(write=True) as session:
            return outbox.prune(session, now=at) + apple.prune_logs(session, now=at)

    assert prune(NOW) == 1  # only the month-old device log
    states = sorted(r.state for r in rows(db))
    assert states == ["done", "done", "failed", "pending", "pending", "pending"]
    assert prune(NOW + outbox.KEEP_DELIVERED + timedelta(seconds=1)) == 3  # the delivered + a log
    assert sorted(r.state for r in rows(db)) == ["failed", "pending", "pending", "pending"]
    assert prune(NOW + outbox.KEEP_FAILED + timedelta(seconds=1)) == 1
    assert sorted(r.state for r in rows(db)) == ["pending", "pending", "pending"]


def test_without_an_apns_key_the_pass_certificate_authenticates_the_pushes(
    db: Database, wallet_services: Services, issue: Issue, change: Change,
    apns_pki: Pki, dev_chain_folder: Path, tmp_path: Path,
) -> None:  # fmt: skip
    """Apple's pass documentation: the Pass Type ID certificate is also the APNs client."""
    from dataclasses import replace

    trusted = tmp_path / "apple-chain.pem"  # what APNs trusts: Apple's CA and the WWDR
    trusted.write_bytes(
        (dev_chain_folder / "wwdr.pem").read_bytes() + (dev_chain_folder / "root.pem").read_bytes()
    )
    with ApnsStandIn(apns_pki, client_ca=trusted) as server:
        settings = replace(
            wallet_services.settings,
            apns_key=None,
            apns_key_id="",
            apns_url=server.base_url,
            apns_ca_file=server.ca_file,
        )
        services = Services(
            settings=settings, keys=wallet_services.keys, pass_types=wallet_services.pass_types
        )
        row = issue().row
        push_token = register(db, services, row, 4)
        change(row.serial, "revoke")
        with ExitStack() as stack:
            from wallet.cli.worker import build_deliverers

            report = drain(db, build_deliverers(services, stack))
        (push,) = server.wait_for(1)
    assert push.device_token == push_token and push.bearer is None
    assert report.delivered == 2 and report.failed == 0


def test_a_surprise_in_a_client_keeps_the_push_and_the_worker(
    db: Database, wallet_services: Services, issue: Issue, change: Change
) -> None:
    class Broken:
        def send(self, device_token: str, *, topic: str) -> object:
            raise RuntimeError("a library surprise")

    row = issue().row
    register(db, wallet_services, row, 5)
    change(row.serial, "revoke")
    report = drain(db, outbox.Deliverers(apns=Broken(), apple_topic=PASS_TYPE_ID))
    assert report.failed == 0
    (pending,) = [r for r in rows(db) if r.kind == "apns"]
    assert pending.state == "pending" and "unexpected RuntimeError" in (pending.last_error or "")
