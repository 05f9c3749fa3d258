"""The daily plate lookup counts are kept for a while, then forgotten (data minimisation)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests.factories import NOW
from tests.web.test_devices import start
from wallet.services import plate_checks
from wallet.services.context import Services
from wallet.store.db import Database
from wallet.store.models import PlateLookupRow


def test_lookup_counts_older_than_the_keeping_time_are_forgotten(
    db: Database, services: Services
) -> None:
    keep = plate_checks.KEEP_COUNTS
    device_id = start(db, services).device.device_id
    with db.transaction(write=True) as session:
        for age in (timedelta(0), keep - timedelta(days=1), keep + timedelta(days=1)):
            plate_checks.count_lookup(session, device_id, now=NOW - age)
    with db.transaction(write=True) as session:
        removed = plate_checks.prune_counts(session, now=NOW)
    with db.transaction(write=False) as session:
        days = sorted(session.scalars(select(PlateLookupRow.day)))
    assert removed == 1
    assert days == sorted(
        [NOW.date().isoformat(), (NOW - keep + timedelta(days=1)).date().isoformat()]
    )
