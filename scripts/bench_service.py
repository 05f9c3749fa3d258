"""Issuance through HTTP: gunicorn (2 workers) on SQLite and PostgreSQL, driven by wrk.

Each setup is measured twice on the same server configuration: the real
`POST /api/v1/passes` and, as the baseline, a bare Flask endpoint that does one
insert through the same Database class (scripts/bench_bare_app.py). wrk runs
on loopback with 1, 4, 8 and 16 connections; its latency distribution gives
p50 and p99. The workers run with the service's own worker settings
(wallet/web/gunicorn_conf.py: its worker class and connection settings),
and each worker's CPU time during a run is recorded: a worker that idles while
the other takes every connection shows as a lopsided pair.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = (1, 4, 8, 16)
TARGETS = {"sqlite": 400.0, "postgresql": 300.0}  # issuances per second
P99_TARGET_MS = 50.0
PG_ADMIN_URL = os.environ.get(
    "WALLET_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
wrk.body = '%(body)s'
"""


@dataclass(frozen=True)
class LoadResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    clients: int = 0
    worker_cpu_s: tuple[float, ...] = ()
    worker_rss_mib: tuple[float, ...] = ()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"cannot read wrk latency {text!r}")
    value, unit = float(match.group(1)), match.group(2)
    return {"us": value / 1000, "ms": value, "s": value * 1000}[unit]


def parse_wrk(output: str) -> LoadResult:
    """Requests/sec, p50 and p99 from `wrk --latency`, and every kind of error."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors += int(non_2xx.group(1))
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if sockets:
        errors += sum(int(n) for n in sockets.groups())
    return LoadResult(rps, p50, p99, total, errors)


def _wait_until_up(url: str, process: subprocess.Popen[bytes], *, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the server did not answer at {url}")


@dataclass
class Server:
    """A running gunicorn: its base URL and master process id."""

    base: str
    pid: int

    def _workers(self) -> list[Path]:
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.pid:  # ppid
                found.append(entry)
        return found

    def worker_rss_mib(self) -> list[float]:
        """Resident memory of each worker, from /proc."""
        sizes = []
        for entry in self._workers():
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(int(line.split()[1]) / 1024)
        return sorted(sizes, reverse=True)

    def worker_cpu_seconds(self) -> list[float]:
        """CPU time (user + system) of each worker so far, from /proc."""
        tick = os.sysconf("SC_CLK_TCK")
        seconds = []
        for entry in self._workers():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            seconds.append((int(fields[11]) + int(fields[12])) / tick)
        return sorted(seconds, reverse=True)


# The worker settings of wallet/web/gunicorn_conf.py that shape load balancing and
# latency; its logging and binding are left out (the benchmark binds a free port
# and logs warnings only, as before).
_SERVICE_SETTINGS = {
    "worker_class": "--worker-class",
    "threads": "--threads",
    "keepalive": "--keep-alive",
    "reuse_port": "--reuse-port",
    "worker_connections": "--worker-connections",
}
# A worker class is named by its dotted path, as gunicorn's --worker-class takes it.
_PRINT_SETTINGS = f"""
import json, wallet.web.gunicorn_conf as c
def named(v):
    return f"{{v.__module__}}.{{v.__qualname__}}" if isinstance(v, type) else v
names = {tuple(_SERVICE_SETTINGS)!r}
print(json.dumps({{n: named(getattr(c, n)) for n in names if hasattr(c, n)}}))
"""


def service_options(env: dict[str, str]) -> list[str]:
    """The service's worker settings as gunicorn command-line options."""
    done = subprocess.run(
        [sys.executable, "-c", _PRINT_SETTINGS],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    settings = json.loads(done.stdout)
    options = []
    for name, value in settings.items():
        flag = _SERVICE_SETTINGS[name]
        if isinstance(value, bool):
            options += [flag] if value else []
        else:
            options += [flag, str(value)]
    return options


@contextmanager
def gunicorn(app: str, env: dict[str, str], *, probe: str) -> Iterator[Server]:
    """Serve `app` with 2 gunicorn workers on a free loopback port; yield the server.

    A `wallet worker` runs beside it, as `scripts/serve` and the production units
    run one: among its rounds it copies SQLite's write-ahead log back into the
    database, which the requests' commits would otherwise do (wallet.store.db).
    """
    port = _free_port()
    command = [
        sys.executable, "-m", "gunicorn", "--workers", "2",
        *service_options(env), "--bind", f"127.0.0.1:{port}",
        "--log-level", "warning", app,
    ]  # fmt: skip
    process = subprocess.Popen(command, env={**os.environ, **env}, cwd=ROOT)
    worker = subprocess.Popen(
        [Path(sys.executable).parent / "wallet", "worker", "--interval", "0.5"],
        env={**os.environ, **env}, cwd=ROOT, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base + probe, process)
        yield Server(base=base, pid=process.pid)
    finally:
        for child in (process, worker):
            child.terminate()
        for child in (process, worker):
            child.wait(timeout=30)


def run_wrk(
    server: Server, path: str, *, token: str, body: dict[str, object], seconds: int, clients: int
) -> LoadResult:
    """wrk with `clients` connections posting ``body``; the workers' CPU seconds beside it."""
    script = LUA % {"token": token, "body": json.dumps(body)}
    return run_wrk_script(server, path, script, seconds=seconds, clients=clients)


def run_wrk_script(
    server: Server, path: str, script: str, *, seconds: int, clients: int
) -> LoadResult:
    """wrk with `clients` connections and a Lua ``script``; the workers' CPU seconds beside it."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(script)
    cpu_before = server.worker_cpu_seconds()
    try:
        done = subprocess.run(
            ["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--latency", "-s", file.name,
             server.base + path],
            capture_output=True, text=True, check=False, timeout=seconds + 60,
        )  # fmt: skip
    finally:
        os.unlink(file.name)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout}")
    cpu_after = server.worker_cpu_seconds()
    spent = tuple(
        sorted((round(a - b, 2) for a, b in zip(cpu_after, cpu_before, strict=False)), reverse=True)
    )
    result = parse_wrk(done.stdout)
    rss = tuple(round(size, 1) for size in server.worker_rss_mib())
    return LoadResult(
        **{**asdict(result), "clients": clients, "worker_cpu_s": spent, "worker_rss_mib": rss}
    )


@contextmanager
def database(kind: str, folder: Path) -> Iterator[str]:
    """A fresh, empty database URL of this kind; PostgreSQL's is dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'wallet.sqlite3'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from wallet.store.db import database_url

    admin_url = make_url(database_url(PG_ADMIN_URL))
    name = f"wallet_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def prepare(url: str, folder: Path) -> tuple[dict[str, str], str]:
    """Migrate, create dev keys and an issuer API token; return the server env and token."""
    from wallet.keys import KeyRole
    from wallet.keystore import KeyStore
    from wallet.passtypes import load_pass_types
    from wallet.services import accounts
    from wallet.store.db import Database

    env = {
        "WALLET_DATABASE_URL": url,
        "WALLET_SIGNING_KEYS_DIR": str(folder / "keys"),
        "WALLET_INSTANCE_DIR": str(folder / "instance"),
        "WALLET_DEV_MODE": "1",
        "WALLET_SECRET_KEY": uuid.uuid4().hex * 2,
        "WALLET_PUBLIC_URL": "https://pass.stadt-musterstadt.de",
    }
    now = datetime.now(UTC)
    keys = KeyStore(folder / "keys", passphrase=None, dev_mode=True)
    types = load_pass_types(ROOT / "templates" / "passes")
    keys.generate(alg="ES256", role=KeyRole.ROOT, pass_types=frozenset(), now=now)
    keys.generate(alg="ES256", role=KeyRole.PASS, pass_types=frozenset(types), now=now)
    db = Database(url)
    db.upgrade()
    with db.transaction(write=True) as session:
        token = accounts.create_api_token(
            session, name="bench", role="issuer", actor="bench", audit_key=keys.audit_key(), now=now
        ).secret
    db.dispose()
    return env, token


def bench_http_issuance(
    *,
    seconds: int,
    kinds: tuple[str, ...] = ("sqlite", "postgresql"),
    clients: tuple[int, ...] = CLIENTS,
) -> list[tuple[str, list[LoadResult], list[LoadResult]]]:
    """(kind, issuance through the API per client count, bare endpoint per count) per database."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (scripts/bench installs Debian's wrk)")
    results = []
    body = {
        "type": "library",
        "holder": {"card_number": "100200300400", "name": "Erika Mustermann"},
    }
    for kind in kinds:
        with tempfile.TemporaryDirectory(prefix=f"wallet-bench-{kind}-") as tmp:
            folder = Path(tmp)
            with database(kind, folder) as url:
                env, token = prepare(url, folder)
                load = partial(run_wrk, token=token, body=body)
                with gunicorn("wallet.web.wsgi:app", env, probe="/.well-known/jwks.json") as server:
                    load(server, "/api/v1/passes", seconds=2, clients=max(clients))  # warm up
                    issued = [
                        load(server, "/api/v1/passes", seconds=seconds, clients=n) for n in clients
                    ]
                from bench_bare_app import create_table

                create_table(url)
                bare_env = {**env, "PYTHONPATH": str(ROOT / "scripts")}
                with gunicorn("bench_bare_app:app", bare_env, probe="/ping") as server:
                    load(server, "/bare", seconds=2, clients=max(clients))
                    bare = [load(server, "/bare", seconds=seconds, clients=n) for n in clients]
        results.append((kind, issued, bare))
    return results


if __name__ == "__main__":  # the series alone: python scripts/bench_service.py [seconds [kind...]]
    duration = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    kinds = tuple(sys.argv[2:]) or ("sqlite", "postgresql")
    for kind, issued, bare in bench_http_issuance(seconds=duration, kinds=kinds):
        for ours, base in zip(issued, bare, strict=True):
            print(
                f"{kind:10} {ours.clients:>2} clients: {ours.requests_per_second:6.0f}/s "
                f"p50 {ours.p50_ms:5.1f} p99 {ours.p99_ms:6.1f} ms errors {ours.errors} "
                f"worker CPU {ours.worker_cpu_s} s RSS {ours.worker_rss_mib} MiB | bare "
                f"{base.requests_per_second:6.0f}/s p99 {base.p99_ms:5.1f} ms "
                f"CPU {base.worker_cpu_s} RSS {base.worker_rss_mib}"
            )
