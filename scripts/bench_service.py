"""Issuance through HTTP: gunicorn (2 workers) on SQLite and PostgreSQL, driven by wrk.

Each setup is measured twice on the same server configuration: the real
`POST /api/v1/passes` and, as the baseline, a bare Flask endpoint that does one
insert through the same Database class (scripts/bench_bare_app.py). wrk runs
on loopback with 8 connections; its latency distribution gives p50 and p99.
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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONNECTIONS = 8
# As wallet/web/gunicorn_conf.py serves: gthread workers with one thread each.
THREADS = os.environ.get("WALLET_BENCH_THREADS", "1")
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


@contextmanager
def gunicorn(app: str, env: dict[str, str], *, probe: str) -> Iterator[str]:
    """Serve `app` with 2 gunicorn workers on a free loopback port; yield its base URL."""
    port = _free_port()
    command = [
        sys.executable, "-m", "gunicorn", "--workers", "2", "--worker-class", "gthread",
        "--threads", THREADS, "--bind", f"127.0.0.1:{port}",
        "--log-level", "warning", app,
    ]  # fmt: skip
    process = subprocess.Popen(command, env={**os.environ, **env}, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base + probe, process)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def run_wrk(url: str, *, token: str, body: dict[str, object], seconds: int) -> LoadResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA % {"token": token, "body": json.dumps(body)})
    try:
        done = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{CONNECTIONS}",
                f"-d{seconds}s",
                "--latency",
                "-s",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=seconds + 60,
        )
    finally:
        os.unlink(script.name)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout}")
    return parse_wrk(done.stdout)


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
    *, seconds: int, kinds: tuple[str, ...] = ("sqlite", "postgresql")
) -> list[tuple[str, LoadResult, LoadResult]]:
    """(kind, issuance through the API, bare one-insert endpoint) per database."""
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
                with gunicorn("wallet.web.wsgi:app", env, probe="/.well-known/jwks.json") as base:
                    run_wrk(f"{base}/api/v1/passes", token=token, body=body, seconds=2)  # warm
                    issued = run_wrk(
                        f"{base}/api/v1/passes", token=token, body=body, seconds=seconds
                    )
                from bench_bare_app import create_table

                create_table(url)
                bare_env = {**env, "PYTHONPATH": str(ROOT / "scripts")}
                with gunicorn("bench_bare_app:app", bare_env, probe="/ping") as base:
                    run_wrk(f"{base}/bare", token=token, body=body, seconds=2)
                    bare = run_wrk(f"{base}/bare", token=token, body=body, seconds=seconds)
        results.append((kind, issued, bare))
    return results
