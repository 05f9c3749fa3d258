"""Checking parked cars by plate, measured (issue 11, section 4).

1. The offline plate index built from the database: 50,000 live parking permits in
   40 zones, issued through the bulk path an import takes (``passes.issue_passes``,
   batches of ``imports.BATCH_SIZE``), on SQLite and on PostgreSQL. A cold build is
   ``plate_index.current_index`` for every zone with no index stored (read the permits,
   sign, seal the key, store the row, commit); the baseline is ``sign_index`` of the
   same permits already in memory. Both alternate, repeat by repeat.
2. The online check ``POST /device/v1/plates/check`` under 8 concurrent clients: gunicorn
   with 2 workers as scripts/bench_service.py runs it, on that database, driven by wrk.
   Half the plates have a permit (checked in its zone), half have none. The service's
   abuse limits stay on: each request takes the next of many paired devices' credentials
   (round robin in the wrk Lua script), so no device comes near 30 lookups a minute or
   2,000 a day. The baseline is the bare Flask endpoint of the HTTP rows (one insert
   through the same Database class): the check writes too (the device's last sync and
   its lookup count) before it reads.
3. The offline check in headless Chromium: the scanner's verifier modules (``verifyIndex``
   from ``verifier/index.js``) verify a 50,000-entry index signed here with a test root
   (the key handed in beside it), then ``index.check(key, text, zone)`` is timed call by
   call over 1,000 plates (half present) against a bare WebCrypto HMAC-SHA256 of a plate
   in the same page. The page is cross-origin isolated, so ``performance.now()`` has
   5 µs resolution, not 100 µs. The one-off ``verifyIndex`` is timed against a bare WebCrypto
   ECDSA verify of the same signing input.

Usage: ``python scripts/bench_plates.py [--quick] [--no-db] [--no-http]``
prints the rows alone (they are also part of ``scripts/bench``).
"""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_service import LoadResult  # noqa: E402

PERMITS = 50_000
QUICK_PERMITS = 2_000
ZONES = 40
CLIENTS = 8
BUILD_TARGET_S = 2.0
SIZE_TARGET_MB = 2.0
P99_TARGET_MS = 50.0
JS_TARGET_MS = 5.0
LOOKUP_BODIES = 1_000  # distinct plate checks wrk cycles through
JS_LOOKUPS = 1_000
# Paired devices the load cycles through: each sees at most a few lookups in a run,
# well under the service's 30 a minute and 2,000 a day.
DEVICES = 1_500
QUICK_DEVICES = 300
PARKING = "parking"

# District codes (1-3 letters, umlauts included) of German plates.
DISTRICTS = ("D", "K", "DU", "E", "M", "B", "HH", "ME", "NE", "SG", "LÖ", "SÜW", "MG", "KR")
LETTERS = "ABCDEFGHIJKLMNOPRSTUVWXYZ"


def city_plates(
    count: int, rng: random.Random, *, avoid: frozenset[str] = frozenset()
) -> list[str]:
    """``count`` distinct plates in their stored form (``D-AB 1234``), none in ``avoid``."""
    found: set[str] = set()
    while len(found) < count:
        district = rng.choice(DISTRICTS)
        letters = "".join(rng.choice(LETTERS) for _ in range(rng.choice((1, 2, 2))))
        digits = min(4, 8 - len(district) - len(letters))  # at most 8 characters in all
        plate = f"{district}-{letters} {rng.randrange(1, 10**digits)}"
        if plate not in avoid:
            found.add(plate)
    plates = sorted(found)  # a set's order changes with the hash seed; the run's must not
    rng.shuffle(plates)
    return plates


def zone_of(number: int) -> str:
    return str(number % ZONES + 1)


# -- a database of permits ---------------------------------------------------


@dataclass
class PlateDatabase:
    """A migrated database holding ``permits`` live parking permits, and its service env."""

    kind: str
    url: str
    folder: Path
    env: dict[str, str]
    services: Any
    db: Any
    permits: list[tuple[str, str]]  # (plate, zone)
    issue_seconds: float


@contextmanager
def plate_database(kind: str, permits: int, rng: random.Random) -> Iterator[PlateDatabase]:
    """A fresh database (PostgreSQL's dropped afterwards) with the permits issued in it."""
    from bench_service import database, prepare

    from wallet.config import Settings
    from wallet.services import imports, passes
    from wallet.services.context import Services
    from wallet.store.db import Database, refresh_statistics

    with tempfile.TemporaryDirectory(prefix=f"wallet-bench-plates-{kind}-") as tmp:
        folder = Path(tmp)
        with database(kind, folder) as url:
            env, _ = prepare(url, folder)  # migrations, dev keys
            settings = Settings.from_env(env)
            settings.instance_dir.mkdir(exist_ok=True)
            services = Services.from_settings(settings)
            db = Database(settings.database)
            held = [(plate, zone_of(n)) for n, plate in enumerate(city_plates(permits, rng))]
            now = datetime.now(UTC)
            started = time.perf_counter()
            for done, start in enumerate(range(0, len(held), imports.BATCH_SIZE), 1):
                batch = held[start : start + imports.BATCH_SIZE]
                with db.transaction(write=True) as session:
                    passes.issue_passes(
                        session, services, type_id=PARKING, actor="bench", now=now,
                        holders=[({"plate": p, "zone": z}, f"{p}|{z}") for p, z in batch],
                    )  # fmt: skip
                if done & (done - 1) == 0:  # as an import does: ANALYZE after batch 1, 2, 4 ...
                    with db.transaction(write=True) as session:
                        refresh_statistics(session, "passes")
            with db.transaction(write=True) as session:
                refresh_statistics(session, "passes")
            issued = time.perf_counter() - started
            try:
                yield PlateDatabase(kind, url, folder, env, services, db, held, issued)
            finally:
                db.dispose()


# -- 1. the index built from the database ------------------------------------


@dataclass(frozen=True)
class BuildRun:
    kind: str
    permits: int
    zones: int
    seconds: float  # median cold build
    baseline_seconds: float  # median sign_index of the same permits in memory
    token_bytes: int
    gzip_bytes: int
    runs: tuple[float, ...] = ()
    baseline_runs: tuple[float, ...] = ()
    issue_seconds: float = 0.0


def bench_build(target: PlateDatabase, *, repeats: int) -> BuildRun:
    """Cold builds of the all-zones index (no stored row) against sign_index in memory."""
    from wallet.plateindex import sign_index
    from wallet.services import plate_index

    db, services = target.db, target.services
    with db.transaction(write=False) as session:
        permits = plate_index._permits(session, services)  # what current_index signs
    assert len(permits) == len(target.permits), (len(permits), len(target.permits))
    runs, baseline_runs, token = [], [], ""
    for _ in range(repeats):
        with db.transaction(write=True) as session:
            plate_index.retire_keys(session)  # cold: no stored index of any scope
        now = datetime.now(UTC)
        started = time.perf_counter()
        with db.transaction(write=True) as session:
            served = plate_index.current_index(session, services, zones=(), now=now)
        runs.append(time.perf_counter() - started)
        token = served.token
        root = services.keys.root_key(now=now)
        started = time.perf_counter()
        sign_index(permits, key=os.urandom(32), issuer=services.settings.issuer, version=1,
                   issued_at=now, expires_at=now + timedelta(hours=24), root=root)  # fmt: skip
        baseline_runs.append(time.perf_counter() - started)
    return BuildRun(
        kind=target.kind,
        permits=len(permits),
        zones=len({zone for _, zone in target.permits}),
        seconds=statistics.median(runs),
        baseline_seconds=statistics.median(baseline_runs),
        token_bytes=len(token),
        gzip_bytes=len(gzip.compress(token.encode("ascii"))),
        runs=tuple(round(s, 3) for s in runs),
        baseline_runs=tuple(round(s, 3) for s in baseline_runs),
        issue_seconds=round(target.issue_seconds, 1),
    )


# -- 2. the online check under load ------------------------------------------


@dataclass(frozen=True)
class LookupRun:
    kind: str
    permits: int
    devices: int
    bodies: int
    result: LoadResult
    bare: LoadResult
    most_per_device: int  # the most lookups one device made in the run (from plate_lookups)
    verdicts: dict[str, int] = field(default_factory=dict)  # of a sample, before the load


def pair_devices(target: PlateDatabase, count: int) -> list[tuple[str, str]]:
    """``count`` devices paired as the scanner pairs (a code from the console, exchanged by
    the app for its credential; the service functions behind both): (device id, credential)."""
    from wallet.domain import Role
    from wallet.services import devices
    from wallet.store.db import refresh_statistics

    now = datetime.now(UTC)
    audit_key = target.services.audit_key
    with target.db.transaction(write=True) as session:
        codes = [
            devices.start_pairing(session, name=f"Bench {n}", role="verifier", actor="bench",
                                  actor_role=Role.ADMIN, audit_key=audit_key, now=now).code
            for n in range(count)
        ]  # fmt: skip
        paired = [
            devices.complete_pairing(session, code=code, audit_key=audit_key, now=now)
            for code in codes
        ]
    with target.db.transaction(write=True) as session:  # as autovacuum would, after a while
        refresh_statistics(session, "devices")
    return [(one.device.device_id, one.credential) for one in paired]


def lookup_bodies(
    permits: list[tuple[str, str]], count: int, rng: random.Random
) -> list[dict[str, str]]:
    """Half plates with a permit (checked in its zone), half plates without one."""
    known = rng.sample(permits, count // 2)
    unknown = city_plates(count - len(known), rng, avoid=frozenset(p for p, _ in permits))
    bodies = [{"plate": p, "zone": z} for p, z in known]
    bodies += [{"plate": p, "zone": zone_of(n)} for n, p in enumerate(unknown)]
    rng.shuffle(bodies)
    return bodies


LOOKUP_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local bodies = {
%(bodies)s
}
local credentials = {
%(credentials)s
}
local n = 0
request = function()
  n = n + 1
  wrk.headers["Authorization"] = "Bearer " .. credentials[n %% #credentials + 1]
  return wrk.format(nil, nil, nil, bodies[n %% #bodies + 1])
end
"""


def _lua_string(text: str) -> str:
    assert "]==]" not in text
    return f"[==[{text}]==]"


def lookup_script(bodies: list[dict[str, str]], credentials: list[str]) -> str:
    return LOOKUP_LUA % {
        "bodies": ",\n".join(_lua_string(json.dumps(body)) for body in bodies),
        "credentials": ",\n".join(_lua_string(c) for c in credentials),
    }


def _check(base: str, credential: str, body: dict[str, str]) -> str:
    request = urllib.request.Request(
        base + "/device/v1/plates/check",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {credential}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        verdict: str = json.load(response)["verdict"]
        return verdict


def bench_lookups(
    target: PlateDatabase, *, seconds: int, devices: int, rng: random.Random
) -> LookupRun:
    """wrk with 8 connections on the plate check, then on the bare insert endpoint."""
    from bench_bare_app import create_table
    from bench_service import gunicorn, run_wrk, run_wrk_script
    from sqlalchemy import func, select

    from wallet.store.models import PlateLookupRow

    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (scripts/bench installs Debian's wrk)")
    *loaded, (probe_id, probe) = pair_devices(target, devices + 1)
    bodies = lookup_bodies(target.permits, LOOKUP_BODIES, rng)
    script = lookup_script(bodies, [credential for _, credential in loaded])
    path = "/device/v1/plates/check"
    warmup = 1  # both workers have served a few hundred requests by then
    with gunicorn("wallet.web.wsgi:app", target.env, probe="/.well-known/jwks.json") as server:
        verdicts: dict[str, int] = {}
        held = dict(target.permits)
        for sample in bodies[:20]:  # the setup works: known plates valid, the others unknown
            verdict = _check(server.base, probe, sample)
            verdicts[verdict] = verdicts.get(verdict, 0) + 1
            if verdict != ("valid" if sample["plate"] in held else "unknown"):
                raise RuntimeError(f"the service answered {verdict!r} for {sample}")
        run_wrk_script(server, path, script, seconds=warmup, clients=CLIENTS)
        result = run_wrk_script(server, path, script, seconds=seconds, clients=CLIENTS)
    with target.db.transaction(write=False) as session:
        most = session.scalar(
            select(func.max(PlateLookupRow.count)).where(PlateLookupRow.device_id != probe_id)
        )
    create_table(target.url)
    bare_env = {**target.env, "PYTHONPATH": str(ROOT / "scripts")}
    bare_body: dict[str, object] = {"plate": "D-AB 1234", "zone": "12"}
    load = partial(run_wrk, path="/bare", token="-", body=bare_body, clients=CLIENTS)
    with gunicorn("bench_bare_app:app", bare_env, probe="/ping") as server:
        load(server, seconds=warmup)
        bare = load(server, seconds=seconds)
    return LookupRun(
        kind=target.kind,
        permits=len(target.permits),
        devices=devices,
        bodies=len(bodies),
        result=result,
        bare=bare,
        most_per_device=int(most or 0),
        verdicts=verdicts,
    )


def bench_plate_databases(
    *,
    kinds: tuple[str, ...],
    http_kinds: tuple[str, ...],
    quick: bool,
    rng: random.Random,
) -> list[tuple[BuildRun, LookupRun | None]]:
    """For each database kind: the index build, then (if asked) the online check on it."""
    permits = QUICK_PERMITS if quick else PERMITS
    results = []
    for kind in kinds:
        with plate_database(kind, permits, rng) as target:
            build = bench_build(target, repeats=1 if quick else 3)
            lookups = None
            if kind in http_kinds:
                lookups = bench_lookups(
                    target,
                    seconds=3 if quick else 10,
                    devices=QUICK_DEVICES if quick else DEVICES,
                    rng=rng,
                )
        results.append((build, lookups))
    return results


# -- 3. the offline check in the browser -------------------------------------

JS_PAGE = """<!doctype html><meta charset="utf-8"><title>bench plates</title>
<script type="module">
import { verifyIndex } from "/verifier/index.js";  // as the scanner imports it
import { rootKeyFromPem } from "/verifier/keys.js";
import { asciiBytes, b64urlDecode } from "/verifier/codec.js";
const input = await (await fetch("/input.json")).json();
const now = input.now;
const root = await rootKeyFromPem(input.root);  // pinned once, as the app holds it
const keyBytes = b64urlDecode(input.key, "key");
const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p99 = (xs) => xs.slice().sort((a, b) => a - b)[Math.ceil(xs.length * 0.99) - 1];
const clock = () => performance.now();

// The one-off verification of the signed index, against a bare ECDSA verify of its
// signing input (hashing 1.5 MB included in both).
const [head, body, sig] = input.index.split(".");
const signed = asciiBytes(`${head}.${body}`);
const signature = b64urlDecode(sig, "signature");
const ecdsa = { name: "ECDSA", hash: "SHA-256" };
const verifies = [], bareVerifies = [];
let index;
for (let round = 0; round < input.verify_rounds; round += 1) {
  let start = clock();
  index = await verifyIndex(input.index, root, { now });
  verifies.push(clock() - start);
  start = clock();
  if (!(await crypto.subtle.verify(ecdsa, root.cryptoKey, signature, signed))) {
    throw new Error("setup: bare verify failed");
  }
  bareVerifies.push(clock() - start);
}

// Lookups: each check of a typed plate against a bare HMAC of a plate, call by call.
const hmac = await crypto.subtle.importKey(
  "raw", keyBytes, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
const encoder = new TextEncoder();
const verdicts = {};
for (const [text, zone] of input.lookups) {  // warm-up, and the verdicts for the setup check
  const answer = await index.check(keyBytes, text, zone, { now });
  verdicts[answer.verdict] = (verdicts[answer.verdict] ?? 0) + 1;
}
const checks = [], bares = [];
for (let round = 0; round < input.rounds; round += 1) {
  for (const [text, zone] of input.lookups) {
    let start = clock();
    await index.check(keyBytes, text, zone, { now });
    checks.push(clock() - start);
    start = clock();
    await crypto.subtle.sign("HMAC", hmac, encoder.encode(text));
    bares.push(clock() - start);
  }
}
window.result = {
  entries: index.length,
  verify_first_ms: verifies[0],
  verify_ms: median(verifies),
  bare_verify_ms: median(bareVerifies),
  check_median_ms: median(checks),
  check_p99_ms: p99(checks),
  bare_median_ms: median(bares),
  bare_p99_ms: p99(bares),
  calls: checks.length,
  verdicts,
  isolated: self.crossOriginIsolated,
};
</script>"""


@dataclass(frozen=True)
class JsPlateRun:
    entries: int
    index_bytes: int
    verify_first_ms: float
    verify_ms: float
    bare_verify_ms: float
    check_median_ms: float
    check_p99_ms: float
    bare_median_ms: float
    bare_p99_ms: float
    calls: int
    lookups: int
    verdicts: dict[str, int]
    isolated: bool


def bench_js_plates(*, quick: bool, rng: random.Random) -> JsPlateRun:
    """The JS offline check over a signed index of PERMITS permits in headless Chromium."""
    from bench_js_verify import CHROMIUM, page_server
    from playwright.sync_api import sync_playwright

    from wallet.codec import b64url_encode
    from wallet.keys import KeyRole, generate_key
    from wallet.plateindex import Permit, sign_index

    count = QUICK_PERMITS if quick else PERMITS
    lookups = 200 if quick else JS_LOOKUPS
    now = datetime.now(UTC).replace(microsecond=0)
    held = [(plate, zone_of(n)) for n, plate in enumerate(city_plates(count, rng))]
    until = now + timedelta(days=300)
    root = generate_key(role=KeyRole.ROOT, now=now - timedelta(days=1))
    key = os.urandom(32)
    token = sign_index(
        [Permit(plate, zone, "valid", until) for plate, zone in held],
        key=key, issuer="https://pass.stadt-musterstadt.de", version=1,
        issued_at=now, expires_at=now + timedelta(hours=24), root=root,
    )  # fmt: skip
    bodies = lookup_bodies(held, lookups, rng)
    document = {
        "index": token,
        "root": root.public().pem().decode("ascii"),
        "key": b64url_encode(key),
        "now": int(now.timestamp()),
        "lookups": [[body["plate"], body["zone"]] for body in bodies],
        "rounds": 1 if quick else 3,
        "verify_rounds": 1 if quick else 5,
    }
    with page_server(document, page=JS_PAGE, isolated=True) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless=new", "--no-sandbox"]
        )
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(url + "/")
            page.wait_for_function(
                "() => window.result !== undefined", timeout=300_000, polling=200
            )
            result = page.evaluate("() => window.result")
        finally:
            browser.close()
    if errors:
        raise RuntimeError(f"the plate bench page failed: {errors[0]}")
    expected = {"valid": lookups // 2, "unknown": lookups - lookups // 2}
    if result["verdicts"] != expected:
        raise RuntimeError(f"JS verdicts {result['verdicts']}, expected {expected}")
    return JsPlateRun(
        entries=result["entries"],
        index_bytes=len(token),
        verify_first_ms=result["verify_first_ms"],
        verify_ms=result["verify_ms"],
        bare_verify_ms=result["bare_verify_ms"],
        check_median_ms=result["check_median_ms"],
        check_p99_ms=result["check_p99_ms"],
        bare_median_ms=result["bare_median_ms"],
        bare_p99_ms=result["bare_p99_ms"],
        calls=result["calls"],
        lookups=lookups,
        verdicts=result["verdicts"],
        isolated=bool(result["isolated"]),
    )


def main(argv: list[str] | None = None) -> int:
    """These rows alone, as scripts/bench prints them: a header line and the table."""
    import argparse

    import bench

    parser = argparse.ArgumentParser(description="The plate rows of scripts/bench alone.")
    parser.add_argument("--quick", action="store_true", help="2,000 permits, 3 s of load")
    parser.add_argument("--no-db", action="store_true", help="SQLite only, no PostgreSQL")
    parser.add_argument("--no-http", action="store_true", help="skip the online check under wrk")
    args = parser.parse_args(argv)
    date, loop_at_start = datetime.now(UTC), bench.reference_loop_us()
    rows = bench.bench_plate_rows(
        quick=args.quick, postgresql=not args.no_db, http=not args.no_http
    )
    info = {**bench.machine(), "reference_loop_us": (loop_at_start, bench.reference_loop_us())}
    print(bench.header_line(info, date, quick=args.quick))
    print()
    print(bench.markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
