"""Checking a parked car's permit by its plate, online (issue 11, section 2).

The answer says only what an officer beside the car must know: whether the
plate has a permit for this zone, its state, the zone(s) it has one for, and
until when. Never the holder, the serial or anything else on the pass.

A plate typed without a separator (``DAB1234``) may be read as more than one
car; if permits exist for more than one reading, the answer is "ambiguous"
and the officer types the plate as it is written on the car.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from wallet.domain import PassState
from wallet.errors import InputError
from wallet.passtypes import ENFORCEMENT_SEPARATOR, split_enforcement_value
from wallet.plates import readings
from wallet.services.context import Services
from wallet.store.models import PassRow, PlateLookupRow

# Lookups per device and day above which the console warns of a device that may be
# used to enumerate plates (an officer on a long shift checks a few hundred).
ALERT_PER_DAY = 500
# Above this the device gets no more answers that day (429): enumeration stops here.
LIMIT_PER_DAY = 2000


class PlateVerdict(StrEnum):
    VALID = "valid"
    WRONG_ZONE = "wrong_zone"  # a permit, but for another zone
    SUSPENDED = "suspended"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    UNKNOWN = "unknown"  # no live permit for this plate
    AMBIGUOUS = "ambiguous"  # several cars fit what was typed


@dataclass(frozen=True)
class PlateCheck:
    verdict: PlateVerdict
    plate: str | None = None  # the plate as read (what the officer typed, normalised)
    zones: tuple[str, ...] = ()  # the zones the plate has a live permit for
    valid_until: datetime | None = None  # of the permit the verdict is about

    def to_json(self) -> dict[str, object]:
        return {
            "verdict": self.verdict.value,
            "plate": self.plate,
            "zones": list(self.zones),
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
        }


def check_plate(
    session: Session, services: Services, plate: object, zone: object, *, now: datetime
) -> PlateCheck:
    """The verdict for ``plate`` parked in ``zone``.

    :raises InputError: the plate cannot be a German plate, or the zone is not one.
    """
    found = readings(plate)
    if not found:
        raise InputError(
            "type the plate as it is written on the car, for example D-AB 1234", field="plate"
        )
    types = [t for t in services.pass_types.values() if t.enforcement_plate]
    if not types:
        raise InputError("no pass type of this service is checked by plate", field="plate")
    where = _zone(zone)
    hits = {p.display: _permits(session, [t.id for t in types], p.display) for p in found}
    matching = {display: rows for display, rows in hits.items() if rows}
    if len(matching) > 1:
        return PlateCheck(PlateVerdict.AMBIGUOUS)
    if not matching:
        return PlateCheck(PlateVerdict.UNKNOWN, plate=found[0].display if len(found) == 1 else None)
    ((display, rows),) = matching.items()
    zones = tuple(sorted({_zone_of(row) for row in rows}))
    here = [row for row in rows if _zone_of(row) == where]
    if not here:
        return PlateCheck(PlateVerdict.WRONG_ZONE, plate=display, zones=zones)
    permit = here[0]  # one live permit per plate and zone
    return PlateCheck(_state(permit, now), display, zones, permit.valid_until)


def _zone(zone: object) -> str:
    if not isinstance(zone, str) or not zone.strip() or len(zone) > 16:
        raise InputError("give the zone you are checking, for example 12", field="zone")
    return " ".join(zone.split()).upper()


def _permits(session: Session, type_ids: list[str], display: str) -> list[PassRow]:
    prefix = display + ENFORCEMENT_SEPARATOR
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    query = select(PassRow).where(
        PassRow.pass_type.in_(type_ids),
        PassRow.enforcement_key.like(escaped + "%", escape="\\"),
        PassRow.state != PassState.REVOKED.value,
        PassRow.retire_at.is_(None),
    )
    return list(session.scalars(query))


def _zone_of(row: PassRow) -> str:
    return split_enforcement_value(row.enforcement_key or "")[1]


def _state(permit: PassRow, now: datetime) -> PlateVerdict:
    if permit.state == PassState.SUSPENDED:
        return PlateVerdict.SUSPENDED
    if permit.valid_until <= now:
        return PlateVerdict.EXPIRED
    if permit.valid_from > now:
        return PlateVerdict.NOT_YET_VALID
    return PlateVerdict.VALID


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
