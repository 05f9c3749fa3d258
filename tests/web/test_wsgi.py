"""The WSGI entry point gunicorn's workers import (wallet.web.wsgi)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.factories import dev_instance_env

_COUNT = "import gc, wallet.web.wsgi; print(gc.get_freeze_count(), len(gc.get_objects()))"


def test_what_a_worker_builds_at_start_is_kept_out_of_full_collections(tmp_path: Path) -> None:
    """A full garbage collection walked the ~100,000 objects of the app's start: a
    70 ms stall every few thousand requests, for every request queued behind it
    (p99 at 16 clients, issue 12). The worker freezes them once the app is built."""
    env = dev_instance_env(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", _COUNT], env=env, capture_output=True, text=True, check=True
    )
    frozen, tracked = (int(n) for n in done.stdout.split())
    assert frozen > 10_000, done.stdout
    assert tracked < frozen / 10, f"{tracked} objects still walked by every full collection"
