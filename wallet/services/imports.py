"""Moving existing card holders over: a CSV export in, a pass per holder out.

First every row is checked, and nothing is issued from a file whose check
fails unless the admin says to skip the invalid rows. Then passes are issued
in batches, each batch one transaction with its audit entries; a run killed at
any moment leaves whole batches or nothing. Each row has an external key (the
card number, or plate and zone, as the pass type declares), stored unique on
the pass: running the same file again issues nothing twice and continues where
a killed run stopped. The library's card number stays the holder's number.

Claim links exist in clear only in the run's result (the caller writes it out);
with ``send_email`` a row that has an e-mail address gets its link by e-mail
instead, through the outbox.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from wallet.domain import check_email_address
from wallet.errors import HolderDataError, InputError
from wallet.formats.csvtable import Table
from wallet.passtypes import PassType, Text, header_key, split_enforcement_value
from wallet.services import audit, claim_mail, passes
from wallet.services.context import Services
from wallet.store.db import refresh_statistics
from wallet.store.models import EnforcementKeyRow, HolderContactRow, PassRow

__all__ = [
    "BATCH_SIZE", "MAX_ROWS", "RESULT_HEADER", "ImportCheck", "Outcome", "Problem", "check", "run",
]  # fmt: skip

MAX_ROWS = 200_000
BATCH_SIZE = 500
_CONTACT_HEADERS = {
    "email": ("E-Mail", "Email", "E-Mail-Adresse", "Mail", "E-mail address"),
    "lang": ("Sprache", "Language", "Bevorzugte Sprache", "Korrespondenzsprache"),
    "street": ("Straße", "Strasse", "Anschrift", "Straße und Hausnummer", "Street"),
    "postcode": ("PLZ", "Postleitzahl", "Postcode", "Postal code"),
    "city": ("Ort", "Wohnort", "Stadt", "City"),
    "reminders": ("Erinnerungen", "Einwilligung Erinnerung", "Erinnerung erwünscht", "Reminders"),
}
CONTACT_COLUMNS = {header_key(h): name for name, hs in _CONTACT_HEADERS.items() for h in hs}
_LANGUAGES = {"": "de", "de": "de", "deutsch": "de", "german": "de", "en": "en",
              "englisch": "en", "english": "en"}  # fmt: skip
_CONTACT_LIMITS = {"street": 200, "postcode": 16, "city": 100}
_CONSENT = {"": False, "nein": False, "no": False, "0": False, "ja": True, "yes": True,
            "1": True, "x": True}  # fmt: skip

# What a report says for each holder-field rule (wallet.errors.HolderDataError.kind).
_FIELD_PROBLEMS = {
    "empty": Text(de="ist leer", en="is empty"),
    "too_long": Text(de="ist zu lang (höchstens {n} Zeichen)", en="is too long (at most {n})"),
    "format": Text(
        de="hat nicht das erwartete Format (z. B. {example})",
        en="does not have the expected format (e.g. {example})",
    ),
    "invisible": Text(
        de="enthält ein unsichtbares Steuerzeichen", en="contains an invisible control character"
    ),
    "too_many_plates": Text(
        de="hat mehr als {plates} Einträge (höchstens {plates} Kennzeichen, durch Komma getrennt)",
        en="has more than {plates} entries (at most {plates} plates, separated by commas)",
    ),
    "duplicate_plate": Text(de="nennt ein Kennzeichen zweimal", en="names a plate twice"),
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a file, where Excel shows it: row, column, what, in de and en."""

    row: int
    column: str
    code: str
    message: Text

    def to_json(self) -> dict[str, object]:
        return {"row": self.row, "column": self.column, "code": self.code,
                "message": self.message.to_json()}  # fmt: skip


@dataclass(frozen=True)
class _Plan:
    row: int
    key: str
    holder: dict[str, str]
    contacts: dict[str, object]


@dataclass
class ImportCheck:
    """What a file would do: rows to issue, rows issued before, and every problem.

    It keeps counts and problems, not the rows: ``plans`` reads the file again,
    so checking and importing 100,000 rows costs the memory of one batch.
    """

    pass_type: PassType
    rows: int
    table: Table | None = field(default=None, repr=False)
    columns: dict[int, str] = field(default_factory=dict, repr=False)
    problems: list[Problem] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    to_issue: int = 0
    issued_before: int = 0

    @property
    def invalid_rows(self) -> set[int]:
        return {p.row for p in self.problems}

    def plans(self) -> Iterator[_Plan | Problem]:
        """Each row again, in file order: its plan, or (if it had one) its first problem."""
        if self.table is None:
            return
        problems: dict[int, Problem] = {}
        for problem in self.problems:
            problems.setdefault(problem.row, problem)
        for number, raw in self.table.rows():
            if number in problems:
                yield problems[number]
                continue
            cells = _cells(self.columns, raw)
            holder = self.pass_type.clean_holder(_holder_cells(self.pass_type, cells))
            contacts = _contacts(number, cells, [])
            yield _Plan(number, _key(self.pass_type, holder), holder, contacts)

    def to_json(self) -> dict[str, object]:
        return {
            "type": self.pass_type.id,
            "rows": self.rows,
            "to_issue": self.to_issue,
            "issued_before": self.issued_before,
            "invalid_rows": len(self.invalid_rows),
            "ignored_columns": self.ignored_columns,
            "problems": [p.to_json() for p in self.problems],
        }


RESULT_HEADER = {
    "de": ("Zeile", "Schlüssel", "Status", "Seriennummer", "Link zum Ausweis", "Kanal", "Fehler"),
    "en": ("Row", "Key", "Status", "Serial", "Claim link", "Channel", "Error"),
}
_STATUS_WORDS = {
    "issued": Text(de="ausgestellt", en="issued"),
    "issued_before": Text(de="bereits ausgestellt", en="issued before"),
    "skipped": Text(de="übersprungen", en="skipped"),
}


@dataclass(frozen=True)
class Outcome:
    """One input row after a run: what became of it (a line of the result file)."""

    row: int
    key: str
    status: str  # issued | issued_before | skipped
    serial: str = ""
    claim_url: str = ""  # a secret: only in the result file
    channel: str = ""  # link (in the result file) | email (queued) | "" (none)
    error: str = ""

    def cells(self, lang: str) -> tuple[str, ...]:
        """Its line of the result file, under ``RESULT_HEADER[lang]``."""
        status = _STATUS_WORDS[self.status].get(lang)
        return (str(self.row), self.key, status, self.serial, self.claim_url, self.channel,
                self.error)  # fmt: skip

    def to_json(self) -> dict[str, object]:
        return asdict(self)


Transaction = Callable[[], AbstractContextManager[Session]]
_INSERT_CONTACT = insert(HolderContactRow)
_NO_CONTACT = {"email": None, "street": None, "postcode": None, "city": None}


def _columns(pass_type: PassType, table: Table, report: ImportCheck) -> dict[int, str]:
    """Column index -> field or contact name; a field without a column is a problem."""
    mapping: dict[int, str] = {}
    for index, header in enumerate(table.header):
        name = pass_type.column_field(header) or CONTACT_COLUMNS.get(header_key(header))
        if name is None or name in mapping.values():
            report.ignored_columns.append(header)
        else:
            mapping[index] = name
    for one in pass_type.fields:
        if one.name not in mapping.values():
            report.problems.append(Problem(1, one.label.de, "missing_column", Text(
                de=f"Spalte für „{one.label.de}“ fehlt",
                en=f"there is no column for “{one.label.en}”")))  # fmt: skip
    return mapping


def _field_problem(pass_type: PassType, row: int, exc: HolderDataError) -> Problem:
    one = next((f for f in pass_type.fields if f.name == exc.field), None)
    label = one.label if one else Text(exc.field, exc.field)
    words = _FIELD_PROBLEMS.get(exc.kind, Text(de="ist ungültig", en="is not valid"))
    values = {"n": one.max_length if one else 0, "example": (one.example if one else "") or "—",
              "plates": one.max_plates if one else 1}  # fmt: skip
    message = Text(de=f"{label.de} " + words.de.format(**values),
                   en=f"{label.en} " + words.en.format(**values))  # fmt: skip
    return Problem(row, label.de, exc.kind, message)


def _contacts(row: int, cells: dict[str, str], problems: list[Problem]) -> dict[str, object]:
    contacts: dict[str, object] = {}
    consent = _CONSENT.get(cells.get("reminders", "").strip().casefold())
    if consent is None:
        problems.append(Problem(row, "Erinnerungen", "reminders", Text(
            de="Einwilligung in Erinnerungen: ja oder nein",
            en="reminders consent: yes or no")))  # fmt: skip
    contacts["reminders"] = bool(consent)
    email = cells.get("email", "").strip()
    if email:
        try:
            contacts["email"] = check_email_address(email)
        except InputError:
            problems.append(Problem(row, "E-Mail", "email", Text(
                de="E-Mail-Adresse ist keine (z. B. erika.mustermann@example.de)",
                en="e-mail address is not one (e.g. erika.mustermann@example.de)")))  # fmt: skip
    lang = _LANGUAGES.get(cells.get("lang", "").strip().casefold())
    if lang is None:
        problems.append(Problem(row, "Sprache", "lang", Text(
            de="Sprache unbekannt: de oder en", en="unknown language: de or en")))  # fmt: skip
    contacts["lang"] = lang or "de"
    for name, limit in _CONTACT_LIMITS.items():
        value = " ".join(cells.get(name, "").split())
        if len(value) > limit:
            problems.append(Problem(row, name, "too_long", Text(
                de=f"{name} ist zu lang", en=f"{name} is too long")))  # fmt: skip
        elif value:
            contacts[name] = value
    return contacts


def _cells(columns: dict[int, str], raw: tuple[str, ...]) -> dict[str, str]:
    return {name: raw[i] if i < len(raw) else "" for i, name in columns.items()}


def _holder_cells(pass_type: PassType, cells: dict[str, str]) -> dict[str, str]:
    return {f.name: cells.get(f.name, "") for f in pass_type.fields}


def _key(pass_type: PassType, holder: dict[str, str]) -> str:
    return "|".join(holder[name] for name in pass_type.import_key)


class _SeenKeys:
    """The keys a file has shown so far, in a private temporary SQLite file.

    An empty file name gives a database SQLite deletes when it is closed and keeps
    in its page cache (2 MB) until it is larger: memory stays flat however long the
    export. It holds 64-bit digests of the keys and their rows, never the keys.
    """

    def __init__(self) -> None:
        self._db = sqlite3.connect("")
        self._db.execute("CREATE TABLE seen (digest INTEGER PRIMARY KEY, row INTEGER NOT NULL)")

    def first_row(self, key: str, row: int) -> int:
        """The row that first had ``key``: ``row`` itself when it is new."""
        digest = int.from_bytes(
            hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big", signed=True
        )
        added = self._db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)", (digest, row))
        if added.rowcount == 1:
            return row
        return int(
            self._db.execute("SELECT row FROM seen WHERE digest = ?", (digest,)).fetchone()[0]
        )

    def close(self) -> None:
        self._db.close()


CHECK_CHUNK = 500  # keys looked up at once for "issued before"


def check(session: Session, services: Services, type_id: object, table: Table) -> ImportCheck:
    """Check every row of ``table`` for pass type ``type_id``; nothing is written."""
    pass_type = services.pass_type(type_id)
    report = ImportCheck(pass_type=pass_type, rows=table.row_count, table=table)
    report.columns = _columns(pass_type, table, report)
    if report.problems:
        return report  # without a column for a field, every row would say the same
    seen = _SeenKeys()
    try:
        _check_rows(session, report, seen)
    finally:
        seen.close()
    return report


def _check_rows(session: Session, report: ImportCheck, seen: _SeenKeys) -> None:
    pass_type, table = report.pass_type, report.table
    assert table is not None
    chunk: list[_Row] = []
    for number, raw in table.rows():
        cells = _cells(report.columns, raw)
        try:
            holder = pass_type.clean_holder(_holder_cells(pass_type, cells))
        except HolderDataError as exc:
            report.problems.append(_field_problem(pass_type, number, exc))
            continue
        contact_problems: list[Problem] = []
        _contacts(number, cells, contact_problems)
        report.problems.extend(contact_problems)
        key = _key(pass_type, holder)
        first = seen.first_row(key, number)
        if first != number:
            report.problems.append(Problem(number, "—", "duplicate", Text(
                de=f"doppelt in der Datei (wie Zeile {first})",
                en=f"twice in the file (like row {first})")))  # fmt: skip
            continue
        enforcement = pass_type.enforcement_values(holder)
        if (shared := _plate_in_earlier_row(seen, enforcement, number)) is not None:
            report.problems.append(shared)
            continue
        if contact_problems:
            continue
        chunk.append(_Row(number, key, enforcement))
        if len(chunk) >= CHECK_CHUNK:
            _count_issued(session, report, chunk)
            chunk = []
    _count_issued(session, report, chunk)


def _plate_in_earlier_row(seen: _SeenKeys, keys: tuple[str, ...], number: int) -> Problem | None:
    """A plate and zone an earlier row of the file has too (as its only or its second car):
    both rows cannot become live permits, and the database would refuse the batch."""
    for key in keys:
        first = seen.first_row("\x00plate\x00" + key, number)  # apart from the import keys
        if first != number:
            plate, zone = split_enforcement_value(key)
            return Problem(number, "—", "duplicate_plate", Text(
                de=f"{plate} steht für Zone {zone} schon in Zeile {first}",
                en=f"{plate} is in row {first} for zone {zone} already"))  # fmt: skip
    return None


@dataclass(frozen=True)
class _Row:
    number: int
    key: str
    enforcement: tuple[str, ...]  # plate and zone of each plate, for types enforced by plate


def _count_issued(session: Session, report: ImportCheck, rows: list[_Row]) -> None:
    """Count rows issued before; a plate whose zone has another live permit is a problem."""
    before = _issued_before(session, report.pass_type, [r.key for r in rows])
    fresh = [key for r in rows if r.key not in before for key in r.enforcement]
    live = _live_permits(session, fresh)
    for row in rows:
        taken = next((key for key in row.enforcement if key in live), None)
        if row.key in before:
            report.issued_before += 1
        elif taken is not None:
            plate, serial = split_enforcement_value(taken)[0], live[taken]
            report.problems.append(Problem(row.number, "—", "has_permit", Text(
                de=f"{plate} hat schon einen gültigen Ausweis ({serial}): verlängern "
                   "oder neu ausstellen statt importieren",
                en=f"{plate} has a live permit already ({serial}): renew or reissue "
                   "it instead of importing")))  # fmt: skip
        else:
            report.to_issue += 1


# A key exists only while its permit is live (models.EnforcementKeyRow).
_LIVE_PERMITS = (
    select(EnforcementKeyRow.value, PassRow.serial)
    .join_from(EnforcementKeyRow, PassRow, EnforcementKeyRow.pass_id == PassRow.id)
    .where(EnforcementKeyRow.value.in_(bindparam("keys", expanding=True)))
)


def _live_permits(session: Session, keys: list[str]) -> dict[str, str]:
    """Plate-and-zone key -> serial of the live permit holding it: one query for a chunk."""
    if not keys:
        return {}
    rows = session.connection().execute(_LIVE_PERMITS, {"keys": keys}).all()
    return {str(key): serial for key, serial in rows}


_ISSUED_BEFORE = select(PassRow.external_key, PassRow.serial).where(
    PassRow.pass_type == bindparam("pass_type"),
    PassRow.external_key.in_(bindparam("keys", expanding=True)),
    # The partial unique index's own condition, spelled out: PostgreSQL's generic
    # plan for this (prepared) statement can then use the index, not a scan that
    # grows with every batch an import adds.
    PassRow.external_key.is_not(None),
)


def _issued_before(session: Session, pass_type: PassType, keys: list[str]) -> dict[str, str]:
    """External key -> serial, for the keys an earlier import already issued."""
    found: dict[str, str] = {}
    connection = session.connection()  # plain rows: no ORM objects needed
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        rows = connection.execute(_ISSUED_BEFORE, {"pass_type": pass_type.id, "keys": chunk})
        for key, serial in rows.all():
            if key is not None:
                found[key] = serial
    return found


def run(
    transaction: Transaction,
    services: Services,
    report: ImportCheck,
    *,
    skip_invalid: bool,
    send_email: bool,
    actor: str,
    clock: Callable[[], datetime],
    batch_size: int = BATCH_SIZE,
) -> Iterator[list[Outcome]]:
    """Issue what ``report`` planned, batch by batch; yields each batch's outcomes once
    it is committed (the caller writes them out before asking for the next batch).

    :raises InputError: the check found problems and ``skip_invalid`` is not set.
    """
    if report.problems and not skip_invalid:
        raise InputError(
            f"the file has {len(report.invalid_rows) or 1} invalid rows and nothing was issued; "
            "fix them, or skip them with --skip-invalid",
            field="file",
        )
    if send_email and not services.settings.smtp_enabled:
        raise InputError("e-mail is not set up (WALLET_SMTP_*): import without sending e-mail",
                         field="send_email")  # fmt: skip
    batch: list[_Plan | Problem] = []
    done = 0
    for item in report.plans():
        batch.append(item)
        if len(batch) >= batch_size:
            yield _batch(transaction, services, report.pass_type, batch, send_email=send_email,
                         actor=actor, now=clock())  # fmt: skip
            batch = []
            done += 1
            if done & (done - 1) == 0:  # after batch 1, 2, 4, 8 ...
                _refresh_statistics(transaction)
    if batch:
        yield _batch(transaction, services, report.pass_type, batch, send_email=send_email,
                     actor=actor, now=clock())  # fmt: skip


def _refresh_statistics(transaction: Transaction) -> None:
    """Tell PostgreSQL's planner how large the passes table has grown.

    An import can grow the table from nothing faster than autovacuum analyzes it;
    on stale statistics the planner reads every pass of the type to find a batch's
    keys instead of using their index, and each batch gets slower (measured: 446
    rows/s at 100,000 rows instead of over 1,000). Doubling intervals keep it to
    a few ANALYZE runs (each a sample, well under a second) for any file.
    """
    with transaction() as session:
        refresh_statistics(session, "passes")


def _batch(
    transaction: Transaction,
    services: Services,
    pass_type: PassType,
    items: list[_Plan | Problem],
    *,
    send_email: bool,
    actor: str,
    now: datetime,
) -> list[Outcome]:
    outcomes: dict[int, Outcome] = {}
    with transaction() as session:
        # Another run (or this one, killed after a commit) may have issued some since.
        found = _issued_before(session, pass_type, [i.key for i in items if isinstance(i, _Plan)])
        to_issue: list[_Plan] = []
        for item in items:
            if isinstance(item, Problem):
                outcomes[item.row] = Outcome(item.row, "", "skipped", error=item.message.en)
            elif (existing := found.get(item.key)) is not None:
                outcomes[item.row] = Outcome(item.row, item.key, "issued_before", serial=existing)
            else:
                to_issue.append(item)
        issued = passes.issue_passes(
            session, services, type_id=pass_type.id, actor=actor, now=now,
            holders=[(plan.holder, plan.key) for plan in to_issue],
        )  # fmt: skip
        contacts = [
            {**_NO_CONTACT, "reminders": False, "lang": "de", **plan.contacts,
             "pass_id": one.pass_id, "created_at": now}
            for plan, one in zip(to_issue, issued, strict=True)
        ]  # fmt: skip
        if contacts:  # one statement for the batch
            session.connection().execute(_INSERT_CONTACT, contacts)
        for plan, one in zip(to_issue, issued, strict=True):
            outcomes[plan.row] = _deliver(session, services, plan, one, send_email=send_email,
                                          now=now)  # fmt: skip
        if issued:
            audit.record(session, key=services.audit_key, actor=actor, action="import.batch",
                         target=f"type:{pass_type.id}",
                         details={"rows": f"{items[0].row}-{items[-1].row}",
                                  "issued": len(issued)},
                         now=now)  # fmt: skip
    return [outcomes[item.row] for item in items]


def _deliver(
    session: Session,
    services: Services,
    plan: _Plan,
    issued: passes.IssuedPass,
    *,
    send_email: bool,
    now: datetime,
) -> Outcome:
    """Queue the row's claim link for e-mail, or put it in the result file."""
    email = plan.contacts.get("email")
    if send_email and isinstance(email, str):
        claim_mail.queue_claim_email(
            session, services, issued, address=email, lang=str(plan.contacts["lang"]), now=now
        )
        return Outcome(plan.row, plan.key, "issued", serial=issued.record.serial, channel="email")
    claim_url = issued.claim_url(services.settings.public_url)
    return Outcome(plan.row, plan.key, "issued", issued.record.serial, claim_url, channel="link")
