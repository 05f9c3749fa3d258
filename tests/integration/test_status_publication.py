"""Status lists published from their changes equal lists rebuilt from every pass."""

from __future__ import annotations

import random
import threading
from datetime import timedelta

import jwt
import pytest
from sqlalchemy import select

from tests.concurrency import run_together
from tests.factories import NOW, fresh_holder
from wallet.errors import StateConflictError
from wallet.services import passes, publishing
from wallet.services.context import Services
from wallet.status import StatusList
from wallet.store.db import Database
from wallet.store.models import StatusListRow

SEEDS = (1, 2, 3)


def _issue(db: Database, services: Services, count: int) -> list[str]:
    serials = []
    for _ in range(count):
        with db.transaction(write=True) as session:
            issued = passes.issue_pass(
                session,
                services,
                type_id="parking",
                holder=fresh_holder("parking"),
                actor="t",
                now=NOW,
            )
        serials.append(issued.record.serial)
    return serials


def _change(db: Database, services: Services, serial: str, action: str) -> bool:
    try:
        with db.transaction(write=True) as session:
            passes.change_state(
                session, services, serial, action=action, reason=None, actor="t", now=NOW
            )
    except StateConflictError:  # a transition the pass's state does not allow
        return False
    return True


def _published(token: str) -> StatusList:
    claims = jwt.decode(token, options={"verify_signature": False})
    return StatusList.from_claim(claims["status_list"])


def _check_against_full_rebuild(db: Database, *, expect_version: bool = True) -> int:
    with db.transaction(write=False) as session:
        rows = session.scalars(select(StatusListRow).order_by(StatusListRow.id)).all()
        for row in rows:
            assert row.published_token is not None
            full = publishing.build_status_list(session, row)
            assert _published(row.published_token) == full, row.name
            assert row.published_bits == full.to_bytes(), row.name
            if expect_version:
                assert row.published_version == row.version, row.name
        return len(rows)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_list_published_from_changes_equals_a_full_rebuild(
    db: Database, services: Services, seed: int
) -> None:
    rng = random.Random(seed)
    serials = _issue(db, services, 12)
    publications = changes = 0
    for step in range(60):
        if rng.random() < 0.2:
            serials += _issue(db, services, 1)
        action = rng.choice(("revoke", "suspend", "reinstate", "reinstate", "suspend"))
        changes += _change(db, services, rng.choice(serials), action)
        if rng.random() < 0.3 or step == 59:
            moment = NOW + timedelta(seconds=step)  # a later signature each time
            with db.transaction(write=True) as session:
                for name in publishing.list_names(session):
                    publishing.publish_status_list(session, services, name, now=moment)
            publications += 1
            assert _check_against_full_rebuild(db) == 1
    assert publications >= 5 and changes >= 10


def test_a_list_published_before_changes_were_recorded_is_rebuilt_whole(
    db: Database, services: Services
) -> None:
    """Stored bits that do not fit the list (or none, as after 0003) mean a full rebuild."""
    serials = _issue(db, services, 3)
    _change(db, services, serials[0], "revoke")
    with db.transaction(write=True) as session:
        session.execute(
            StatusListRow.__table__.update().values(published_bits=b"\xff", published_version=99)
        )
        (name,) = publishing.list_names(session)
        publishing.publish_status_list(session, services, name, now=NOW, force=True)
    _check_against_full_rebuild(db, expect_version=False)


def test_publishing_while_passes_change_never_loses_a_change(
    db: Database, services: Services
) -> None:
    """Publishers and revokers at once: every publication, and the last, matches the passes."""
    serials = _issue(db, services, 16)
    stop = threading.Event()
    actions = iter(
        [(s, "suspend") for s in serials[:8]]
        + [(s, "revoke") for s in serials]
        + [(s, "reinstate") for s in serials[:8]]
    )
    lock = threading.Lock()
    versions: list[int] = []

    def work() -> None:
        while True:
            with lock:
                step = next(actions, None)
            if step is None:
                break
            _change(db, services, *step)
            with db.transaction(write=False) as session:
                names = publishing.list_names(session)
            moment = NOW + timedelta(microseconds=len(versions))
            publishing.refresh_status_lists(
                lambda write: db.transaction(write=write), services, names, now=moment
            )
            with db.transaction(write=False) as session:
                versions.append(publishing.status_list_row(session, names[0]).published_version)
        stop.set()

    run_together(work, threads=6)
    assert stop.is_set() and len(versions) == 32
    with db.transaction(write=False) as session:
        names = publishing.list_names(session)
    publishing.refresh_status_lists(
        lambda write: db.transaction(write=write), services, names, now=NOW + timedelta(hours=1)
    )
    _check_against_full_rebuild(db)
    with db.transaction(write=False) as session:
        row = publishing.status_list_row(session, names[0])
        full = publishing.build_status_list(session, row)
    assert sum(full.get(i) != 0 for i in range(len(full))) == 16  # every pass ended revoked
