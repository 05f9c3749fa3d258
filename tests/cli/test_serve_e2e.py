"""End to end: scripts/serve on gunicorn, a pass issued and revoked by the admin CLI,
checked by a staff device that syncs over HTTP."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.cli.admin import LIBRARY_FIELDS, Wallet
from wallet.cli.verify import cli as verify_cli

pytestmark = pytest.mark.real_clock  # the service runs in its own process, on the machine's clock

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def environment_is_current() -> bool:
    """True when scripts/serve would not install anything into this virtualenv first."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    return any(
        (Path(sys.prefix) / f".wallet-installed-{extras}-{digest}").exists()
        for extras in ("dev", "server")
    )


@dataclass
class LiveService:
    url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def logs(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, as systemd stops the service; SIGKILL if it does not end within 15 s."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_until_up(service: LiveService) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            pytest.fail(f"the service stopped at start:\n{service.logs()}")
        try:
            with urllib.request.urlopen(f"{service.url}/verifier/root-key.pem", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    pytest.fail(f"the service did not answer within {START_TIMEOUT} s:\n{service.logs()}")


def dev_server_env(folder: Path, *, workers: int, **more: str) -> dict[str, str]:
    """This process's environment without its WALLET_ settings, plus a development
    instance in ``folder`` served on a free loopback port by ``workers`` workers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WALLET_")}
    env.update(
        WALLET_DEV_MODE="1",
        WALLET_INSTANCE_DIR=str(folder / "instance"),
        WALLET_SIGNING_KEYS_DIR=str(folder / "keys"),
        WALLET_BIND=f"127.0.0.1:{port}",
        WALLET_WORKERS=str(workers),
        WALLET_PUBLIC_URL=f"http://127.0.0.1:{port}",
        **more,
    )
    return env


def setup_and_serve(env: dict[str, str], tmp: Path) -> tuple[LiveService, str]:
    """`wallet setup`, then gunicorn with the service's own configuration, as
    scripts/serve runs them; the running service and the first admin's API token.
    Its output goes to files under ``tmp`` (the log privacy scan reads them)."""
    setup = subprocess.run(
        [Path(sys.executable).parent / "wallet", "setup"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert setup.returncode == 0, setup.stderr
    found = re.search(r"\b(wpt_[A-Za-z0-9_-]+)", setup.stdout)
    assert found is not None, "wallet setup printed no admin API token"
    stdout, stderr = tmp / "gunicorn.out", tmp / "gunicorn.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:wallet.web.gunicorn_conf",
             "wallet.web.wsgi:app"],
            env=env, cwd=ROOT, stdout=out, stderr=err,
        )  # fmt: skip
    service = LiveService(env["WALLET_PUBLIC_URL"], env, process, stdout, stderr)
    try:
        wait_until_up(service)
    except BaseException:
        stop(process)
        raise
    return service, found[1]


@pytest.fixture
def live_service(tmp_path: Path) -> Iterator[LiveService]:
    """scripts/serve in dev mode on SQLite in tmp_path, 2 workers on a free loopback port."""
    env = dev_server_env(tmp_path, workers=2, WALLET_VENV=sys.prefix)
    del env["WALLET_DEV_MODE"]  # scripts/serve sets it
    url = env["WALLET_PUBLIC_URL"]
    stdout, stderr = tmp_path / "serve.out", tmp_path / "serve.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        if environment_is_current():
            command = ["bash", str(ROOT / "scripts" / "serve")]
        else:  # what scripts/serve runs, without letting it install packages first
            env["WALLET_DEV_MODE"] = "1"
            wallet_command = Path(sys.executable).parent / "wallet"
            subprocess.run([wallet_command, "setup"], env=env, cwd=ROOT, stdout=out, stderr=err,
                           check=True, timeout=60)  # fmt: skip
            command = [sys.executable, "-m", "gunicorn", "-c", "python:wallet.web.gunicorn_conf",
                       "wallet.web.wsgi:app"]  # fmt: skip
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=err)
    service = LiveService(url, env, process, stdout, stderr)
    try:
        wait_until_up(service)
        yield service
    finally:
        stop(process)


def test_issue_sync_verify_revoke_sync_revoked(live_service: LiveService, tmp_path: Path) -> None:
    env: dict[str, str | None] = {**live_service.env, "WALLET_DEV_MODE": "1"}
    env.update(WALLET_KEY_PASSPHRASE=None, WALLET_DATABASE_URL=None, WALLET_ACTOR=None)
    wallet = Wallet(CliRunner(), env)
    device_env = {"WALLET_VERIFIER_DIR": str(tmp_path / "device")}

    def device(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(verify_cli, list(args), env=device_env)
        assert "Traceback" not in result.output, result.output
        return result.exit_code, result.output

    # The first start printed an admin login once.
    assert live_service.stdout.read_text().count("password: ") == 1

    with urllib.request.urlopen(f"{live_service.url}/verifier/root-key.pem", timeout=5) as r:
        (tmp_path / "root.pem").write_bytes(r.read())
    issued = wallet.ok("passes", "issue", "--type", "library", *LIBRARY_FIELDS)
    lines = issued.stdout.splitlines()
    serial = lines[0].rsplit(" ", 1)[1]
    qr_text = next(line.split(": ", 1)[1].strip() for line in lines if "QR text:" in line)
    claim_url = next(line.split(": ", 1)[1].strip() for line in lines if "claim URL:" in line)
    assert claim_url.startswith(f"{live_service.url}/p/")
    with contextlib.suppress(urllib.error.HTTPError):  # the access log must not keep its secret
        urllib.request.urlopen(claim_url, timeout=5).close()

    bundle_url = f"{live_service.url}/verifier/bundle"
    code, out = device("sync", bundle_url, "--root-key", str(tmp_path / "root.pem"))
    assert code == 0 and "pinned trust-root key" in out, out
    code, out = device("--lang", "en", "check", qr_text)
    assert code == 0 and "VALID" in out, out

    revoked = wallet.ok("passes", "revoke", serial, "--reason", "card reported stolen")
    assert f"revoked {serial}" in revoked.stdout
    code, out = device("sync", bundle_url)
    assert code == 0 and "synced bundle version" in out, out
    code, out = device("--lang", "en", "check", qr_text)
    assert code == 11 and "REVOKED" in out, out

    live_service.process.send_signal(signal.SIGTERM)
    assert live_service.process.wait(timeout=15) == 0
    logs = live_service.logs()
    assert "GET /verifier/bundle" in logs  # the access log goes to stdout
    if environment_is_current():  # scripts/serve ran, with the outbox worker beside gunicorn
        assert "worker: running" in logs and "worker: SIGTERM received, stopping" in logs
    assert claim_url.rsplit("/", 1)[1] not in logs


@pytest.mark.parametrize("workers", ["0", "many", "65"])
def test_gunicorn_config_refuses_an_unusable_worker_count(workers: str) -> None:
    env = {**os.environ, "WALLET_WORKERS": workers}
    done = subprocess.run(
        [sys.executable, "-c", "import wallet.web.gunicorn_conf"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().startswith("error: WALLET_WORKERS must be a whole number")
