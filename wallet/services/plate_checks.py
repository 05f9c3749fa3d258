"""Checking a parked car's permit by its plate, online (issue 11, section 2).

The answer says only what an officer beside the car must know: whether the
plate has a permit for this zone, its state, the zone(s) it has one for, and
until when. Never the holder, the serial or anything else on the pass.

A plate typed without a separator (``DAB1234``) may be read as more than one
car; if permits exist for more than one reading, the answer is "ambiguous"
and the officer types the plate as it is written on the car.

The verdict itself is :func:`wallet.plateindex.judge`, the rule a device also
applies to its offline index: online and offline, one plate gets one verdict.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from wallet.errors import InputError
from wallet.passtypes import ENFORCEMENT_SEPARATOR, split_enforcement_value
from wallet.plateindex import Found, PlateCheck, judge, plate_readings
from wallet.plates import normalise_zone
from wallet.services.context import Services
from wallet.store.models import EnforcementKeyRow, PassRow, PlateLookupRow

# Lookups per device and day above which the console warns of a device that may be
# used to enumerate plates (an officer on a long shift checks a few hundred).
ALERT_PER_DAY = 500
# Above this the device gets no more answers that day (429): enumeration stops here.
LIMIT_PER_DAY = 2000
# Daily counts are kept this long (to look back at a device that was misused), then go.
KEEP_COUNTS = timedelta(days=90)


def check_plate(
    session: Session, services: Services, plate: object, zone: object, *, now: datetime
) -> PlateCheck:
    """The verdict for ``plate`` parked in ``zone``: :func:`wallet.plateindex.judge` over the
    live permits in the database, the rule a device applies to its offline index.

    :raises InputError: the plate cannot be a German plate, or the zone is not one.
    """
    found = plate_readings(plate)
    types = [t for t in services.pass_types.values() if t.enforcement_plate]
    if not types:
        raise InputError("no pass type of this service is checked by plate", field="plate")
    where = normalise_zone(zone)
    hits = {plate: _permits(session, [t.id for t in types], plate) for plate in found}
    return judge(hits, where, now=now)


# The live permits holding a plate: its keys are the values that begin "<plate>|", that
# is from "<plate>|" up to "<plate>}" ("}" follows "|"), one range of the unique index
# (byte order on both databases, see models). A key exists only while its permit is live.
# Two statements, not a join: without statistics SQLite would walk every pass of the
# type and probe the keys of each (15 ms at 50,000 permits instead of 0.04 ms).
_KEYS = select(EnforcementKeyRow.pass_id, EnforcementKeyRow.value).where(
    EnforcementKeyRow.value >= bindparam("low"),
    EnforcementKeyRow.value < bindparam("high"),
)
_PERMITS = select(PassRow.id, PassRow.state, PassRow.valid_from, PassRow.valid_until).where(
    PassRow.id.in_(bindparam("ids", expanding=True)),
    PassRow.pass_type.in_(bindparam("type_ids", expanding=True)),
)
_AFTER_SEPARATOR = chr(ord(ENFORCEMENT_SEPARATOR) + 1)


def _permits(session: Session, type_ids: list[str], plate: str) -> list[Found]:
    """Every live permit of ``plate`` (stored form), one per zone: a permit with two
    plates is found by either."""
    connection = session.connection()
    bounds = {"low": plate + ENFORCEMENT_SEPARATOR, "high": plate + _AFTER_SEPARATOR}
    keys = {int(pass_id): str(value) for pass_id, value in connection.execute(_KEYS, bounds)}
    if not keys:
        return []
    rows = connection.execute(_PERMITS, {"ids": list(keys), "type_ids": type_ids}).all()
    return [
        Found(split_enforcement_value(keys[pass_id])[1], str(state), start, end)
        for pass_id, state, start, end in rows
    ]


def count_lookup(session: Session, device_id: str, *, now: datetime) -> int:
    """Count one plate lookup for the device today; returns today's count so far."""
    values = {"device_id": device_id, "day": now.date().isoformat(), "count": 1}
    table = PlateLookupRow.__table__
    dialect = postgresql if session.connection().dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(table)
        .values(values)
        .on_conflict_do_update(
            index_elements=["device_id", "day"], set_={"count": table.c["count"] + 1}
        )
        .returning(table.c["count"])
    )
    return int(session.execute(statement).scalar_one())


def lookups_on(session: Session, *, now: datetime) -> dict[str, int]:
    """Device id -> plate lookups today, for the console's device list."""
    day = now.date().isoformat()
    rows = session.execute(
        select(PlateLookupRow.device_id, PlateLookupRow.count).where(PlateLookupRow.day == day)
    )
    return {device: int(count) for device, count in rows.all()}


def prune_counts(session: Session, *, now: datetime) -> int:
    """Forget the daily lookup counts older than ``KEEP_COUNTS``; how many rows went."""
    oldest = (now - KEEP_COUNTS).date().isoformat()
    result = session.execute(delete(PlateLookupRow).where(PlateLookupRow.day < oldest))
    return int(getattr(result, "rowcount", 0) or 0)
