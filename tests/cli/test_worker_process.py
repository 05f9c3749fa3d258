"""`wallet worker` as systemd and scripts/serve run it: a long-lived process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from tests.cli.admin import Wallet, cli_env
from wallet.cli.worker import NICENESS
from wallet.store.db import Database

URL = "https://pass.stadt-musterstadt.de"


def _niceness(pid: int, task: int | None = None) -> int:
    """A thread's nice value (the main thread's by default), field 19 of its stat."""
    where = f"/proc/{pid}/task/{task or pid}/stat"
    fields = Path(where).read_text().rsplit(")", 1)[1].split()
    return int(fields[16])


def _other_threads(pid: int) -> list[int]:
    return [int(task.name) for task in Path(f"/proc/{pid}/task").iterdir() if int(task.name) != pid]


def test_a_running_worker_yields_the_cpu_to_the_web_workers(tmp_path: Path) -> None:
    """The worker's sealing and deliveries ran at the web workers' priority and took
    the CPU from requests in flight on a busy machine (p99 at 16 clients, issue 12);
    its checkpoints, which hold the writer queue, keep the web workers' priority."""
    db = Database(f"sqlite:///{tmp_path / 'wallet.sqlite3'}")
    db.upgrade()
    env = cli_env(db, tmp_path / "keys", tmp_path / "instance", URL)
    Wallet(CliRunner(), env).ok("keys", "generate", "--root")
    db.dispose()
    own = os.nice(0)
    process_env = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    with (tmp_path / "worker.err").open("wb") as err:
        worker = subprocess.Popen(
            [Path(sys.executable).parent / "wallet", "worker"], env=process_env, stderr=err
        )
    try:
        deadline = time.monotonic() + 30
        while _niceness(worker.pid) == own and time.monotonic() < deadline:
            assert worker.poll() is None, (tmp_path / "worker.err").read_text()
            time.sleep(0.05)
        assert _niceness(worker.pid) == min(19, own + NICENESS)
        # ... all but the thread that checkpoints SQLite's log in a turn of the writer
        # queue: at a low priority it held requests up behind it on busy cores.
        assert [_niceness(worker.pid, task) for task in _other_threads(worker.pid)] == [own]
    finally:
        worker.terminate()
        assert worker.wait(timeout=30) == 0
