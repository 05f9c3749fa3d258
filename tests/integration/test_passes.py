"""Issuing and changing passes against real SQLite and PostgreSQL databases."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.concurrency import run_together
from tests.factories import NOW, fresh_holder, stored_row
from wallet.bundle import root_public_key, verify_bundle
from wallet.errors import HolderDataError, InputError, NotFoundError, StateConflictError
from wallet.services import audit, passes, publishing
from wallet.services.context import Services
from wallet.store.db import Database
from wallet.store.models import AuditEntryRow, ClaimLinkRow, PassRow
from wallet.verifier import Verifier

LIBRARY = {"card_number": "100200300400", "name": "Erika Mustermann"}
PARKING = {"plate": "D-AB 1234", "zone": "12"}


def issue(
    db: Database, services: Services, type_id: str = "library", **kw: object
) -> passes.IssuedPass:
    holder = kw.pop("holder", LIBRARY if type_id == "library" else fresh_holder(type_id))
    with db.transaction(write=True) as session:
        return passes.issue_pass(
            session, services, type_id=type_id, holder=holder, actor="admin:test", now=NOW, **kw
        )


def offline_verifier(db: Database, services: Services, *, at: object = NOW) -> Verifier:
    with db.transaction(write=True) as session:
        token = publishing.publish_bundle(session, services, now=at).token  # type: ignore[arg-type]
    root = root_public_key(services.keys.root_public_key(now=NOW).pem())
    return Verifier(verify_bundle(token, root, now=at))  # type: ignore[arg-type]


def change(db: Database, services: Services, serial: str, action: str) -> None:
    with db.transaction(write=True) as session:
        passes.change_state(
            session, services, serial, action=action, reason="test", actor="admin:test", now=NOW
        )


def test_issued_pass_verifies_offline_and_opens_by_claim_link(
    db: Database, services: Services
) -> None:
    issued = issue(db, services)
    assert issued.record.state == "valid" and len(issued.claim_secret) >= 32
    result = offline_verifier(db, services).check(issued.qr_text, now=NOW)
    assert (result.state, result.claims["serial"]) == ("valid", issued.record.serial)
    with db.transaction(write=False) as session:
        opened = passes.pass_by_claim_secret(session, issued.claim_secret, now=NOW)
        assert opened.serial == issued.record.serial
        stored = session.scalars(select(ClaimLinkRow.token_hash)).one()
        assert issued.claim_secret not in stored  # only the hash is kept
        with pytest.raises(NotFoundError):
            passes.pass_by_claim_secret(session, issued.claim_secret, now=NOW + timedelta(days=91))
        with pytest.raises(NotFoundError):
            passes.pass_by_claim_secret(session, issued.claim_secret + "x", now=NOW)


def test_revocation_reaches_the_next_status_list_and_bundle(
    db: Database, services: Services
) -> None:
    issued = issue(db, services, "parking")
    before = offline_verifier(db, services)
    assert before.check(issued.qr_text, now=NOW).state == "valid"
    change(db, services, issued.record.serial, "suspend")
    assert offline_verifier(db, services).check(issued.qr_text, now=NOW).state == "suspended"
    change(db, services, issued.record.serial, "reinstate")
    assert offline_verifier(db, services).check(issued.qr_text, now=NOW).state == "valid"
    change(db, services, issued.record.serial, "revoke")
    after = offline_verifier(db, services)
    assert after.check(issued.qr_text, now=NOW).state == "revoked"
    assert after.bundle.version > before.bundle.version
    with pytest.raises(StateConflictError, match="revoked"):
        change(db, services, issued.record.serial, "reinstate")


def test_library_passes_cannot_be_suspended(db: Database, services: Services) -> None:
    issued = issue(db, services)
    with pytest.raises(StateConflictError, match="cannot be suspended"):
        change(db, services, issued.record.serial, "suspend")


def test_reissue_revokes_the_old_pass_in_the_same_transaction(
    db: Database, services: Services
) -> None:
    old = issue(db, services)
    with db.transaction(write=True) as session:
        new = passes.reissue_pass(
            session, services, old.record.serial, reason=None, actor="admin:test", now=NOW
        )
    verifier = offline_verifier(db, services)
    assert verifier.check(old.qr_text, now=NOW).state == "revoked"
    assert verifier.check(new.qr_text, now=NOW).state == "valid"
    with db.transaction(write=False) as session:
        stored_old = passes.get_pass(session, old.record.serial)
        assert stored_old.replaced_by == new.record.serial
        assert passes.get_pass(session, new.record.serial).replaces == old.record.serial
        assert stored_old.valid_until == passes.get_pass(session, new.record.serial).valid_until


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"type_id": "pool"}, "type"),
        ({"holder": {"card_number": "123", "name": "Erika"}}, "card_number"),
        ({"holder": "Erika"}, "holder"),
        ({"valid_until": NOW + timedelta(days=800)}, "valid_until"),
        ({"valid_until": NOW - timedelta(days=1)}, "valid_until"),
        ({"valid_from": NOW - timedelta(days=3)}, "valid_from"),
        ({"valid_from": NOW.replace(year=9999, month=6)}, "valid_from"),
        ({"holder": {"card_number": "100200300400", "name": "Erika\x00"}}, "name"),
        ({"holder": {"card_number": "100200300400", "name": "Erika \ud800"}}, "name"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(
    db: Database, services: Services, kwargs: dict[str, object], field: str
) -> None:
    kwargs = {"type_id": "library", "holder": LIBRARY, **kwargs}
    with pytest.raises(InputError) as info, db.transaction(write=True) as session:
        passes.issue_pass(session, services, actor="admin:test", now=NOW, **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    with db.transaction(write=False) as session:
        for table in (PassRow, AuditEntryRow, ClaimLinkRow):
            assert session.scalar(select(func.count()).select_from(table)) == 0


def test_reason_with_control_characters_is_refused(db: Database, services: Services) -> None:
    issued = issue(db, services)
    with pytest.raises(InputError) as info, db.transaction(write=True) as session:
        passes.change_state(
            session, services, issued.record.serial, action="revoke", reason="lost\x00",
            actor="admin:test", now=NOW,
        )  # fmt: skip
    assert info.value.field == "reason"
    with db.transaction(write=False) as session:
        assert passes.get_pass(session, issued.record.serial).state == "valid"


def test_holder_errors_are_input_errors() -> None:
    assert issubclass(HolderDataError, InputError)


def test_concurrent_issuance_never_shares_a_status_slot(db: Database, services: Services) -> None:
    issued: list[passes.IssuedPass] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(6):
            one = issue(db, services, "parking")
            with lock:
                issued.append(one)

    run_together(worker, threads=8)
    rows = [stored_row(db, p.record.serial) for p in issued]
    slots = {(r.status_list_id, r.status_idx) for r in rows}
    assert len(slots) == len(issued) == 48
    sealed = audit.seal_all(
        lambda: db.transaction(write=True), key=services.audit_key, checkpoint_file=None,
        clock=lambda: NOW,
    )  # fmt: skip
    assert sealed.sealed == 48
    with db.transaction(write=False) as session:
        report = audit.verify_chain(session, key=services.audit_key)
    assert (report.intact, report.entries, report.unsealed) == (True, 48, 0)


def test_a_new_counter_bumped_by_many_at_once_counts_each_exactly_once(db: Database) -> None:
    """The first bumps of a counter race to create its row; none may fail or repeat."""
    values: list[int] = []

    def bump() -> None:
        with db.transaction(write=True) as session:
            values.append(publishing.next_counter(session, "race"))

    run_together(bump, threads=6)
    assert sorted(values) == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("signed_by_cli_with", [timedelta(hours=1), timedelta(days=1)])
def test_server_never_serves_a_bundle_expired_by_its_own_lifetime(
    db: Database, services: Services, signed_by_cli_with: timedelta
) -> None:
    """A CLI with a shorter WALLET_BUNDLE_LIFETIME signed the stored bundle; the server's
    longer setting must not keep serving it until devices refuse it as expired."""
    from dataclasses import replace

    short = replace(
        services,
        settings=replace(
            services.settings, bundle_lifetime=int(signed_by_cli_with.total_seconds())
        ),
    )
    with db.transaction(write=True) as session:
        publishing.publish_bundle(session, short, now=NOW)
    root = root_public_key(services.keys.root_public_key(now=NOW).pem())
    for later in (signed_by_cli_with * 0.6, signed_by_cli_with * 1.5):
        with db.transaction(write=True) as session:
            served = publishing.cached_bundle(session, services, now=NOW + later) or (
                publishing.publish_bundle(session, services, now=NOW + later).token
            )
        bundle = verify_bundle(served, root, now=NOW + later)
        assert (
            bundle.expires_at - (NOW + later)
            >= timedelta(seconds=services.settings.bundle_lifetime) / 2
        )


@pytest.mark.parametrize(
    ("action", "words"),
    [
        ("suspend", "cannot be suspended"),
        ("revoke", "cannot be revoked"),
        ("reinstate", "cannot be reinstated"),
    ],
)
def test_state_conflicts_name_the_action_in_plain_words(
    db: Database, services: Services, action: str, words: str
) -> None:
    """A message read "it cannot be suspendd"."""
    serial = issue(db, services, "parking").record.serial
    change(db, services, serial, "revoke")
    with pytest.raises(StateConflictError) as caught:
        change(db, services, serial, action)
    assert caught.value.message.endswith(f"is revoked; it {words}")


def test_server_never_serves_a_status_list_stale_by_its_own_lifetime(
    db: Database, services: Services
) -> None:
    """The same for a status list a CLI signed with a shorter WALLET_STATUS_LIST_LIFETIME."""
    from dataclasses import replace

    from wallet.codec import b64url_decode, parse_json_object

    issue(db, services)
    short = replace(services, settings=replace(services.settings, status_list_lifetime=3600))
    with db.transaction(write=True) as session:
        (name,) = publishing.list_names(session)
        publishing.publish_status_list(session, short, name, now=NOW)
    later = NOW + timedelta(minutes=45)  # past half of its own hour, long before the server's
    with db.transaction(write=True) as session:
        row = publishing.cached_status_list(session, services, name, now=later) or (
            publishing.publish_status_list(session, services, name, now=later)
        )
        token = row.token
    assert token is not None
    claims = parse_json_object(b64url_decode(token.split(".")[1], what="p"), what="p")
    assert claims["exp"] - later.timestamp() >= services.settings.status_list_lifetime / 2


def test_a_bulk_issue_whose_slot_a_concurrent_issuer_took_issues_that_pass_on_its_own(
    db: Database, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Imports insert a batch in one statement; a slot taken meanwhile loses nothing."""
    first = issue(db, services, "parking")
    taken = stored_row(db, first.record.serial).status_idx
    draws = [taken]  # as if another process had issued into it since
    fresh = services.open_lists.draw
    monkeypatch.setattr(
        services.open_lists, "draw", lambda slot: draws.pop() if draws else fresh(slot)
    )
    holders = [({"plate": f"D-AB {n}", "zone": "12"}, f"D-AB {n}|12") for n in (11, 12, 13)]
    with db.transaction(write=True) as session:
        issued = passes.issue_passes(
            session, services, type_id="parking", holders=holders, actor="cli:import", now=NOW
        )
    assert [p.record.holder["plate"] for p in issued] == ["D-AB 11", "D-AB 12", "D-AB 13"]
    slots = {stored_row(db, p.record.serial).status_idx for p in issued} | {taken}
    assert len(slots) == 4  # each pass its own slot
    verifier = offline_verifier(db, services)
    assert {verifier.check(p.qr_text, now=NOW).state for p in issued} == {"valid"}
    with db.transaction(write=False) as session:
        links = session.scalar(select(func.count()).select_from(ClaimLinkRow))
        entries = session.scalar(
            select(func.count())
            .select_from(AuditEntryRow)
            .where(AuditEntryRow.action == "pass.issue")
        )
        for one in issued:
            assert passes.pass_by_claim_secret(session, one.claim_secret, now=NOW).serial == (
                one.record.serial
            )
    assert (links, entries) == (4, 4) and draws == []
