"""Prometheus metrics (issue 12, section 3): gunicorn as the service runs it, with its
metrics listener; passes issued and revoked over the API, an e-mail the outbox worker
(its own process) fails to deliver, then the listener is scraped. The public port
has no /metrics. On SQLite, and on PostgreSQL when WALLET_TEST_DATABASE_URL is set."""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.cli.test_serve_e2e import (
    ROOT,
    LiveService,
    dev_server_env,
    free_port,
    setup_and_serve,
    stop,
)
from tests.factories import HOLDERS, NOW, fresh_holder
from tests.web.test_metrics_deploy import check_names_exported
from wallet.services import accounts, metrics
from wallet.store.db import Database

# The service runs in its own processes, on the machine's clock.
REAL_CLOCK = pytest.mark.real_clock

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Served:
    service: LiveService
    metrics_url: str
    token: str
    env: dict[str, str]

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, str], Any]:
        request = urllib.request.Request(
            f"{self.service.url}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                raw, status, headers = answer.read(), answer.status, dict(answer.headers)
        except urllib.error.HTTPError as exc:
            raw, status, headers = exc.read(), exc.code, dict(exc.headers)
        content = json.loads(raw) if raw and raw[:1] in b"{[" else raw
        return status, headers, content

    def scrape(self) -> Samples:
        with urllib.request.urlopen(self.metrics_url, timeout=10) as answer:
            text = answer.read().decode()
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def worker_once(self) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [Path(sys.executable).parent / "wallet", "worker", "--once"],
            env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        # Beside the server's logs, where the log privacy scan reads (tests/logprivacy.py).
        with (self.service.stderr.parent / "worker.err").open("a") as log:
            log.write(done.stderr)
        return done


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, f"{name}{labels} is not exported; found {sorted(k[0] for k in samples)}"
    return samples[key]


def start_service(db: Database, tmp: Path, **extra: str) -> tuple[LiveService, str, dict[str, str]]:
    """`wallet setup`, then gunicorn with the service's configuration; returns the
    service, the first admin's API token and the environment (for `wallet worker`)."""
    env = dev_server_env(tmp, workers=2, WALLET_DATABASE_URL=db.url, **extra)
    service, token = setup_and_serve(env, tmp)
    return service, token, env


@pytest.fixture
def served(db: Database, tmp_path: Path) -> Iterator[Served]:
    """gunicorn with its metrics listener; e-mail to a mail server that is not there."""
    metrics_port = free_port()
    service, token, env = start_service(
        db,
        tmp_path,
        WALLET_METRICS_BIND=f"127.0.0.1:{metrics_port}",
        WALLET_SMTP_HOST="127.0.0.1",
        WALLET_SMTP_PORT=str(free_port()),  # nothing listens: every delivery fails
        WALLET_SMTP_SECURITY="none",
        WALLET_SMTP_FROM="Stadt Musterstadt <ausweise@stadt-musterstadt.de>",
        WALLET_APNS_URL=f"http://127.0.0.1:{free_port()}",  # never the real APNs
    )
    try:
        yield Served(service, f"http://127.0.0.1:{metrics_port}/metrics", token, env)
    finally:
        stop(service.process)


@REAL_CLOCK
def test_the_metrics_listener_shows_the_counters_of_a_real_run(served: Served) -> None:
    issued = []
    for _ in range(2):
        library = {"type": "library", "holder": dict(HOLDERS["library"])}
        status, _, body = served.call("POST", "/api/v1/passes", library)
        assert status == 201, body
        issued.append(body["serial"])
    status, _, permit = served.call(
        "POST", "/api/v1/passes", {"type": "parking", "holder": fresh_holder("parking")}
    )
    assert status == 201, permit
    assert served.call("POST", f"/api/v1/passes/{issued[0]}/revoke", {"reason": "lost"})[0] == 200
    assert served.call("POST", f"/api/v1/passes/{permit['serial']}/suspend", {})[0] == 200
    assert served.call("POST", f"/api/v1/passes/{permit['serial']}/reinstate", {})[0] == 200
    status, _, mailed = served.call(
        "POST", f"/api/v1/passes/{issued[1]}/claim-link", {"email": "erika@example.org"}
    )
    assert status == 202, mailed
    assert served.call("GET", "/verifier/bundle")[0] == 200  # publishes lists and bundle

    before = served.scrape()
    assert value(before, "wallet_passes_issued_total", pass_type="library") == 2
    assert value(before, "wallet_passes_issued_total", pass_type="parking") == 1
    assert value(before, "wallet_passes_revoked_total", pass_type="library") == 1
    assert value(before, "wallet_passes_revoked_total", pass_type="parking") == 0
    assert value(before, "wallet_passes_suspended_total", pass_type="parking") == 1
    assert value(before, "wallet_passes_reinstated_total", pass_type="parking") == 1
    # Per channel, from the database: the e-mail waits; nothing for APNs or Google.
    assert value(before, "wallet_outbox_backlog", channel="email") == 1
    assert value(before, "wallet_outbox_backlog", channel="apns") == 0
    assert value(before, "wallet_outbox_backlog", channel="google_state") == 0
    assert 0 <= value(before, "wallet_outbox_oldest_due_age_seconds", channel="email") < 600
    assert 0 <= value(before, "wallet_trust_bundle_age_seconds") < 600
    assert 0 <= value(before, "wallet_status_list_age_seconds", pass_type="library") < 600
    assert value(before, "wallet_readiness_check", check="database") == 1
    assert value(before, "wallet_delivery_failures_total", channel="email", outcome="retry") == 0

    # The request histogram: by route template, method and status class; buckets grow.
    labels = {"route": "/api/v1/passes", "method": "POST", "status_class": "2xx"}
    assert value(before, "wallet_http_request_duration_seconds_count", **labels) == 3
    buckets = sorted(
        (float(dict(key[1])["le"]), count)
        for key, count in before.items()
        if key[0] == "wallet_http_request_duration_seconds_bucket"
        and {k: v for k, v in key[1] if k != "le"} == labels
    )
    assert len(buckets) >= 10 and buckets[-1] == (float("inf"), 3)
    assert all(a[1] <= b[1] for a, b in itertools.pairwise(buckets))
    routes = {dict(key[1]).get("route") for key in before}
    assert "/api/v1/passes/<serial>/revoke" in routes
    assert not any(serial in str(route) for route in routes for serial in issued)

    # The outbox worker is its own process: its failure counts in the same sums.
    done = served.worker_once()
    assert done.returncode == 0, done.stderr
    after = served.scrape()
    assert value(after, "wallet_delivery_failures_total", channel="email", outcome="retry") == 1
    assert value(after, "wallet_outbox_backlog", channel="email") == 0  # waits for its retry
    assert value(after, "wallet_passes_issued_total", pass_type="library") == 2
    assert value(after, "wallet_worker_heartbeat_age_seconds") < 600
    # The shipped dashboard and alert rules use only what this run exports.
    check_names_exported(name for name, _ in after)


@REAL_CLOCK
def test_the_public_port_has_no_metrics(served: Served) -> None:
    status, _, _ = served.call("GET", "/metrics")
    assert status == 404
    assert (
        "wallet_passes_issued_total" in urllib.request.urlopen(served.metrics_url).read().decode()
    )


@REAL_CLOCK
def test_without_a_metrics_bind_no_listener_and_no_metric_files(
    db: Database, tmp_path: Path
) -> None:
    service, _, _ = start_service(db, tmp_path)
    try:
        with urllib.request.urlopen(f"{service.url}/metrics", timeout=5) as answer:
            pytest.fail(f"/metrics answered {answer.status} on the public port")
    except urllib.error.HTTPError as exc:
        assert exc.code == 404
    finally:
        stop(service.process)
    assert not (tmp_path / "instance" / "metrics").exists()


# -- in the process: counted when the transaction commits ------------------------------


def sample(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_rolled_back_issuance_is_not_counted(db: Database, services: Any) -> None:
    from wallet.services import passes

    before = sample("wallet_passes_issued_total", pass_type="library")
    with pytest.raises(RuntimeError), db.transaction(write=True) as session:
        passes.issue_pass(session, services, type_id="library", holder=HOLDERS["library"],
                          actor="test", now=NOW)  # fmt: skip
        raise RuntimeError("the edge failed after the service flushed")
    assert sample("wallet_passes_issued_total", pass_type="library") == before
    with db.transaction(write=True) as session:
        passes.issue_pass(session, services, type_id="library", holder=HOLDERS["library"],
                          actor="test", now=NOW)  # fmt: skip
    assert sample("wallet_passes_issued_total", pass_type="library") == before + 1


def test_a_failed_local_sign_in_is_counted(db: Database) -> None:
    before = sample("wallet_login_failures_total", provider="local")
    with db.transaction(write=False) as session:
        for username, password in (("nobody", "wrong password!"), ("x", None)):
            found = accounts.authenticate_user(
                session, username=username, password=password, now=datetime.now(UTC)
            )
            assert found is None
    assert sample("wallet_login_failures_total", provider="local") == before + 2


def test_an_unknown_http_method_does_not_make_a_new_series() -> None:
    metrics.observe_request("(no route)", "BREW", 405, 0.001)
    assert sample("wallet_http_request_duration_seconds_count",
                  route="(no route)", method="other", status_class="4xx") >= 1  # fmt: skip
    assert sample("wallet_http_request_duration_seconds_count",
                  route="(no route)", method="BREW", status_class="4xx") == 0  # fmt: skip


@pytest.mark.parametrize("bind", ["9100", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:99999", "a b:1"])
def test_an_unusable_metrics_address_is_refused_naming_the_setting(bind: str) -> None:
    from wallet.config import Settings
    from wallet.errors import ConfigError

    with pytest.raises(ConfigError, match="WALLET_METRICS_BIND must be an address and port"):
        Settings.from_env({"WALLET_METRICS_BIND": bind})
    assert Settings.from_env({"WALLET_METRICS_BIND": "[::1]:9100"}).metrics_bind == "[::1]:9100"


def test_at_start_only_the_metric_files_of_ended_processes_go(tmp_path: Path) -> None:
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    mine = tmp_path / f"counter_{os.getpid()}.db"  # a worker started before the server
    old = tmp_path / f"histogram_{ended}.db"
    for path in (mine, old):
        path.write_bytes(b"\0" * 8)
    assert metrics.remove_dead_files(tmp_path) == 1
    assert mine.exists() and not old.exists()


@REAL_CLOCK
def test_a_metrics_address_in_use_stops_the_server_with_a_message(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WALLET_")}
    env.update(WALLET_DEV_MODE="1", WALLET_INSTANCE_DIR=str(tmp_path / "instance"),
               WALLET_SIGNING_KEYS_DIR=str(tmp_path / "keys"),
               WALLET_BIND=f"127.0.0.1:{free_port()}")  # fmt: skip
    subprocess.run([Path(sys.executable).parent / "wallet", "setup"], env=env, cwd=ROOT,
                   capture_output=True, check=True, timeout=60)  # fmt: skip
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env["WALLET_METRICS_BIND"] = f"127.0.0.1:{taken.getsockname()[1]}"
        done = subprocess.run(
            [sys.executable, "-m", "gunicorn", "-c", "python:wallet.web.gunicorn_conf",
             "wallet.web.wsgi:app"],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: cannot serve metrics on WALLET_METRICS_BIND={env['WALLET_METRICS_BIND']}: "
        "Address already in use"
    )
    assert "Traceback" not in done.stderr
