"""Moving holders over, measured (issue 10, section 5): import rows/s and the peak
memory it takes, on SQLite and on PostgreSQL, through the service the CLI uses; then,
from that import, letter pages rendered per second and claim e-mails delivered per
second through the outbox to the local SMTP server (aiosmtpd, its own process).

Each run gets a fresh database and keys; the export is generated in the German Excel
format (``;``, Windows-1252). Memory is the process's peak RSS growth during the import.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


@dataclass(frozen=True)
class ImportRun:
    kind: str
    rows: int
    seconds: float
    peak_mib: float
    letters: int = 0
    letter_seconds: float = 0.0
    emails: int = 0
    email_seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


def export(rows: int) -> bytes:
    return b"".join(export_chunks(rows))


def export_chunks(rows: int, chunk: int = 1000) -> Iterator[bytes]:
    """The file a library system exports, in pieces (so making it costs no memory)."""
    yield "Ausweisnummer;Name, Vorname;E-Mail;Sprache;Straße;PLZ;Ort\r\n".encode("cp1252")
    for start in range(0, rows, chunk):
        yield "".join(
            f"{100000000000 + i};Müller, Jürgen {i};;de;Am Markt {i % 90 + 1};"
            f"{40210 + i % 90};Düsseldorf\r\n"
            for i in range(start, min(start + chunk, rows))
        ).encode("cp1252")


def _status_mib(field: str) -> float:
    """A line of /proc/self/status (VmRSS, VmHWM) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


def _reset_peak() -> float:
    """Start measuring the peak anew (the benchmarks before this one may have had a
    higher one); returns the resident size now. Linux: writing 5 to clear_refs resets
    the peak (VmHWM); elsewhere the process's lifetime peak stands."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_mib("VmRSS")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_mib() -> float:
    try:
        return _status_mib("VmHWM")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_imports(rows: int, kinds: tuple[str, ...] = ("sqlite", "postgresql")) -> list[ImportRun]:
    """One run per database kind, each on a fresh database (PostgreSQL's dropped after)."""
    from bench_service import database

    runs = []
    for kind in kinds:
        with (
            tempfile.TemporaryDirectory(prefix="wallet-bench-import-db-") as tmp,
            database(kind, Path(tmp)) as url,
        ):
            runs.append(bench_import(kind, url, rows))
    return runs


def bench_import(kind: str, url: str, rows: int) -> ImportRun:
    from wallet.config import Settings
    from wallet.formats.csvtable import open_table
    from wallet.keys import KeyRole
    from wallet.keystore import KeyStore
    from wallet.passtypes import load_pass_types
    from wallet.services import imports
    from wallet.services.context import Services
    from wallet.store.db import Database

    with tempfile.TemporaryDirectory(prefix=f"wallet-bench-import-{kind}-") as tmp:
        folder = Path(tmp)
        settings = Settings(
            signing_keys_dir=folder / "keys",
            instance_dir=folder / "instance",
            dev_mode=True,
            database_url=url,
            secret_key=uuid.uuid4().hex,
        )
        settings.instance_dir.mkdir()
        keys = KeyStore(settings.signing_keys_dir, passphrase=None, dev_mode=True)
        types = load_pass_types(ROOT / "templates" / "passes")
        now = datetime.now(UTC)
        keys.generate(alg="ES256", role=KeyRole.ROOT, pass_types=frozenset(), now=now)
        keys.generate(alg="ES256", role=KeyRole.PASS, pass_types=frozenset(types), now=now)
        services = Services(settings=settings, keys=keys, pass_types=types)
        db = Database(settings.database)
        db.upgrade()
        source = folder / "export.csv"
        with source.open("wb") as out:  # as `wallet import` gets it: a file on disk
            out.writelines(export_chunks(rows))
        before = _reset_peak()
        started = time.perf_counter()
        table = open_table(source, max_rows=imports.MAX_ROWS)
        with db.transaction(write=False) as session:
            report = imports.check(session, services, "library", table)
        links = []
        for batch in imports.run(
            lambda: db.transaction(write=True), services, report, skip_invalid=False,
            send_email=False, actor="bench", clock=lambda: now,
        ):  # fmt: skip
            links += [(o.serial, o.claim_url) for o in batch if len(links) < LETTERS]
        seconds = time.perf_counter() - started
        peak = _peak_mib() - before
        letters, letter_seconds = _letters(db, services, links, now)
        emails, email_seconds = _emails(db, services, [serial for serial, _ in links], now, folder)
        db.dispose()
        return ImportRun(kind, rows, seconds, peak, letters, letter_seconds, emails, email_seconds)


LETTERS = 1000
EMAILS = 200


def _letters(
    db: Any, services: Any, links: list[tuple[str, str]], now: datetime
) -> tuple[int, float]:
    from wallet.formats.letter import letter_files
    from wallet.services import letters

    started = time.perf_counter()
    with db.transaction(write=False) as session:
        plan = letters.plan_letters(session, services, links, now=now)
    pages = sum(count for count, _ in letter_files(
        plan.letters, designs=services.formats.print_designs, sender="Stadt", now=now,
        per_file=250,
    ))  # fmt: skip
    return pages, time.perf_counter() - started


def _emails(
    db: Any, services: Any, serials: list[str], now: datetime, folder: Path
) -> tuple[int, float]:
    from dataclasses import replace

    from tests.standins.smtp import smtp_server
    from wallet.push.smtp import SmtpSender
    from wallet.services import claim_mail, outbox
    from wallet.services.context import Services

    with smtp_server(folder) as server:
        settings = replace(services.settings, smtp_host="127.0.0.1", smtp_port=server.port,
                           smtp_security="none", smtp_from="Stadt <ausweise@stadt.example>",
                           smtp_per_minute=100_000)  # fmt: skip
        mailing = Services(settings=settings, keys=services.keys, pass_types=services.pass_types)
        with db.transaction(write=True) as session:
            for number, serial in enumerate(serials[:EMAILS]):
                claim_mail.email_claim_link(session, mailing, serial,
                                            email=f"holder{number}@example.de", actor="bench",
                                            now=now)  # fmt: skip
        deliverers = outbox.Deliverers(services=mailing, mail=SmtpSender(settings))
        started = time.perf_counter()
        sent = 0
        while sent < min(EMAILS, len(serials)):
            report = outbox.drain(lambda: db.transaction(write=True), deliverers,
                                  clock=lambda: now, limit=100)  # fmt: skip
            if not report.handled:
                break
            sent += report.delivered
        return sent, time.perf_counter() - started


if __name__ == "__main__":  # python scripts/bench_import.py [rows [kind...]]
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    for run in bench_imports(count, tuple(sys.argv[2:]) or ("sqlite", "postgresql")):
        print(f"{run.kind}: {run.rows} rows in {run.seconds:.1f} s = "
              f"{run.rows_per_second:,.0f} rows/s, peak +{run.peak_mib:.0f} MiB; "
              f"{run.letters / run.letter_seconds:,.0f} letter pages/s; "
              f"{run.emails / run.email_seconds:,.0f} e-mails/s")  # fmt: skip
