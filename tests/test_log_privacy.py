"""The log privacy scan (tests/logprivacy.py) finds what it must and fails the run.

The scan itself runs when the session ends, over every log line of the run; these
tests prove it can fail: a planted name, address, token or secret is caught, and a
session that logged one ends failed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from tests.factories import HOLDERS, City
from tests.logprivacy import find_leaks, forbidden_values

ROOT = Path(__file__).resolve().parents[1]


def test_the_forbidden_values_come_from_the_test_data() -> None:
    forbidden = forbidden_values()
    assert HOLDERS["library"]["name"] in forbidden and HOLDERS["parking"]["plate"] in forbidden
    assert "juergen.mueller@example.de" in forbidden  # tests/data/library_export_excel.csv
    assert "M\u00fcller" in forbidden  # "Müller, Jürgen" there, each part alone too
    assert not {"wallet", "plate", "12345"} & forbidden  # labels and ports are no holder data


def test_a_planted_name_in_a_log_line_is_caught() -> None:
    name = HOLDERS["library"]["name"]
    leaks = find_leaks(
        ["INFO wallet.x: all fine", f"INFO wallet.web.console: issued a card to {name}"],
        forbidden_values(),
    )
    assert [(leak.line_number, leak.what) for leak in leaks] == [(2, f"test data {name!r}")]


@pytest.mark.parametrize(
    ("line", "what"),
    [
        ("could not send to holder@somewhere.example", "an e-mail address"),
        ("token " + City().issue(), "a signed token (JWS)"),
        ("GET /p/Zq3xV9kLmN2pR5sT8uW1yA4bC7dE0fGh HTTP/1.1", "a claim link with its secret"),
        ("caller wpt_9f8e7d6c5b4a39281706f5e4", "an API token"),
        ("lookup of HH-QZ 4711 failed", "a plate"),
        ("POST https://apns/3/device/" + "ab" * 32, "a device's push token"),
    ],
)
def test_a_forbidden_shape_is_caught_even_without_known_data(line: str, what: str) -> None:
    [leak] = find_leaks([line], frozenset())
    assert leak.what == what


def test_what_the_service_does_log_is_not_taken_for_personal_data() -> None:
    request_line = {
        "time": "2026-11-24T09:30:00.000Z", "level": "info", "logger": "wallet.request",
        "message": "GET /p/<secret> 404", "request_id": "9f56db526592ca56", "method": "GET",
        "route": "/p/<secret>", "status": 404, "duration_ms": 3.1, "bytes": 1813,
    }  # fmt: skip
    lines = [
        json.dumps(request_line),
        "INFO wallet.worker: sealed 3 audit entries; checkpoint seq=7 head=" + "ab12" * 16,
        "ERROR wallet.services.outbox: outbox 1 (apns) failed for good: APNs refused the push "
        "to device 01010101...: 400 BadTopic",
        "INFO wallet.x: pass SERIAL0123456789 revoked; logo@2x.png missing",
    ]
    assert find_leaks(lines, forbidden_values()) == []


def test_the_one_time_print_of_wallet_setup_is_no_log() -> None:
    ruler = "=" * 72
    lines = [ruler, "Admin API token for /api/v1 (shown only now, only its hash is kept):",
             "    wpt_9f8e7d6c5b4a39281706f5e4d3c2b1a0", ruler, "serving"]  # fmt: skip
    assert find_leaks(lines, frozenset()) == []


def _run_leaky_session(*options: str) -> subprocess.CompletedProcess[str]:
    """A whole pytest run with the plugin whose two tests pass: one logs a holder's name
    in its process, one starts a "server" that writes an address to its log file."""
    name = HOLDERS["library"]["name"]
    # Outside this session's temporary folder: the scan of this run must not see it.
    with tempfile.TemporaryDirectory() as folder:
        test_file = Path(folder) / "test_leaky.py"
        test_file.write_text(
            textwrap.dedent(f"""
            import logging

            def test_logs_a_holder():
                logging.getLogger("wallet.web.console").info("issued to {name}")

            def test_starts_a_server_that_logs_an_address(tmp_path):
                (tmp_path / "server.err").write_text("mail to erika@example.org refused")
        """)
        )
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "tests.logprivacy", "-p", "no:cacheprovider",
             "--rootdir", folder, "--basetemp", str(Path(folder) / "base"), *options,
             str(test_file)],
            cwd=folder, capture_output=True, text=True, timeout=120,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip


def test_a_session_that_logged_a_name_ends_failed() -> None:
    """Its tests pass, the session fails, naming the name its process logged and the
    address a server it started wrote to its log file."""
    done = _run_leaky_session("-p", "no:xdist")
    name = HOLDERS["library"]["name"]
    assert "2 passed" in done.stdout, done.stdout + done.stderr
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, done.stdout
    assert "log privacy" in done.stdout and f"test data {name!r}" in done.stdout
    assert "server.err:1: test data 'erika@example.org'" in done.stdout


def test_a_leak_found_in_an_xdist_worker_fails_the_whole_run() -> None:
    """With pytest-xdist the tests run in worker processes, whose own exit status the
    controller ignores: the workers' findings still fail the run, and are shown."""
    done = _run_leaky_session("-n", "2")
    name = HOLDERS["library"]["name"]
    assert "2 passed" in done.stdout, done.stdout + done.stderr
    assert "created: 2/2 workers" in done.stdout, done.stdout  # the tests ran in workers
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, done.stdout
    assert "log privacy" in done.stdout and f"test data {name!r}" in done.stdout
    assert "server.err:1: test data 'erika@example.org'" in done.stdout
    assert "popen-gw" in done.stdout  # found in a worker's own folder
