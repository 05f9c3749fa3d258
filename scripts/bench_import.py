"""Import throughput (issue 10, section 5): rows of a library export per second and the
peak memory it takes, on SQLite and on PostgreSQL, through the service the CLI uses.

Each run gets a fresh database and keys; the export is generated in the German Excel
format (``;``, Windows-1252). Memory is the process's peak RSS growth during the run.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


@dataclass(frozen=True)
class ImportRun:
    kind: str
    rows: int
    seconds: float
    peak_mib: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


def export(rows: int) -> bytes:
    lines = ["Ausweisnummer;Name, Vorname;E-Mail;Sprache"]
    for i in range(rows):
        lines.append(f"{100000000000 + i};Müller, Jürgen {i};;de")
    return ("\r\n".join(lines) + "\r\n").encode("cp1252")


def _peak_mib() -> float:
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
    from wallet.formats.csvtable import read_table
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
        data = export(rows)
        before = _peak_mib()
        started = time.perf_counter()
        table = read_table(data, max_rows=imports.MAX_ROWS)
        with db.transaction(write=False) as session:
            report = imports.check(session, services, "library", table)
        for _ in imports.run(
            lambda: db.transaction(write=True), services, report, skip_invalid=False,
            send_email=False, actor="bench", clock=lambda: now,
        ):  # fmt: skip
            pass
        seconds = time.perf_counter() - started
        db.dispose()
        return ImportRun(kind, rows, seconds, _peak_mib() - before)


if __name__ == "__main__":  # python scripts/bench_import.py [rows [kind...]]
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    for run in bench_imports(count, tuple(sys.argv[2:]) or ("sqlite", "postgresql")):
        print(f"{run.kind}: {run.rows} rows in {run.seconds:.1f} s = "
              f"{run.rows_per_second:,.0f} rows/s, peak +{run.peak_mib:.0f} MiB")  # fmt: skip
