"""Three app servers behind HAProxy, two outbox workers, one PostgreSQL: kill -9 one of
each mid-run while eight clients issue, register devices, revoke and download.

What the clients may see fail, and nothing else: a POST without an
Idempotency-Key (a revocation, an Apple device registration) that was in flight
on the server when it was killed. HAProxy cannot know whether the server acted
on it, so it does not repeat it (deploy/haproxy/haproxy.cfg: disable-l7-retry);
it answers 502 and the client repeats it itself (a revocation repeated on a
revoked pass answers 409, which means done). And an answer the server had begun
to send when it was killed: HAProxy has passed its head on and cannot take it
back, so the client sees it cut short (and repeats it). Everything else is
repeated by HAProxy on another server: a failed connection, any GET, and a POST
with an Idempotency-Key (issuance), which the API answers at most once.

A worker killed mid-delivery leaves the deliveries it had claimed leased for
``outbox.LEASE`` (60 s); the test ends those leases at once, as their end
would, instead of waiting. A delivery the killed worker had sent but not yet
recorded is sent again by the other worker (at least once, by design): a
device gets a second push only for an outbox row that was claimed twice.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import io
import json
import os
import random
import re
import secrets
import ssl
import threading
import time
import uuid
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import create_engine, text

from tests.cluster import cluster as clusters
from tests.cluster import haproxy
from tests.database import PG_URL
from tests.standins.apns import (  # noqa: F401 - fixtures
    KEY_ID,
    TEAM_ID,
    ApnsStandIn,
    ProviderKey,
    _apns_server_module,
    apns_pki,
    apns_server,
    provider_key,
)
from tests.standins.google_wallet import (  # noqa: F401 - fixtures
    ISSUER_ID,
    GoogleWalletStandIn,
    google_wallet_server,
    service_account_file,
)
from wallet.config import Settings
from wallet.formats.apple_dev_ca import create_dev_chain
from wallet.status import INVALID, StatusList

pytestmark = [
    pytest.mark.real_clock,  # the servers run in their own processes, on the machine's clock
    pytest.mark.skipif(
        not PG_URL, reason="several app servers need PostgreSQL (WALLET_TEST_DATABASE_URL)"
    ),
    pytest.mark.skipif(
        not haproxy.available(), reason="HAProxy is not installed (scripts/test installs it)"
    ),
]

CLIENTS = 8
RUN_SECONDS = 16.0
KILL_AFTER = 6.0
RETRYABLE = (502, 503, 504)


@dataclass(frozen=True)
class Failure:
    """A request a client saw fail (the client then repeated it)."""

    at: float
    method: str
    what: str
    keyed: bool  # sent with an Idempotency-Key
    error: str


@dataclass
class Results:
    issued: set[str] = field(default_factory=set)
    revoked: set[str] = field(default_factory=set)
    devices: dict[str, list[str]] = field(default_factory=dict)  # serial -> push tokens
    failures: list[Failure] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    request_ids: set[str] = field(default_factory=set)
    first_issue: tuple[str, dict[str, Any], str] | None = None  # key, body, serial
    lock: threading.Lock = field(default_factory=threading.Lock)


class Client:
    """One keep-alive HTTPS connection to HAProxy, as a city system or a phone would use."""

    def __init__(self, cluster: clusters.Cluster, index: int, results: Results) -> None:
        self.context = ssl.create_default_context(cafile=str(cluster.ca_file))
        self.port = cluster.https_port
        self.token = cluster.admin_token
        self.index = index
        self.results = results
        self.conn: http.client.HTTPSConnection | None = None
        self.rng = random.Random(index)

    def _once(
        self, method: str, path: str, body: Any, headers: dict[str, str]
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        if self.conn is None:
            self.conn = http.client.HTTPSConnection(
                "127.0.0.1", self.port, context=self.context, timeout=30
            )
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            headers = {**headers, "Content-Type": "application/json"}
        try:
            self.conn.request(method, path, body=data, headers=headers)
            response = self.conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            raise
        if response.will_close:
            self.conn.close()
            self.conn = None
        return response.status, response.headers, payload

    def send(
        self, method: str, path: str, what: str, *, body: Any = None, api: bool = False,
        key: str | None = None, done: tuple[int, ...] = (200, 201),
        done_on_retry: tuple[int, ...] = (), authorization: str | None = None,
    ) -> tuple[int, bytes]:  # fmt: skip
        """Send until it is answered; note every failure the client saw on the way."""
        authorization = f"Bearer {self.token}" if api else authorization
        headers = {"Authorization": authorization} if authorization else {}
        if key is not None:
            headers["Idempotency-Key"] = key
        for attempt in range(10):
            try:
                status, response_headers, payload = self._once(method, path, body, headers)
            except (OSError, http.client.HTTPException) as exc:
                error = type(exc).__name__
            else:
                request_id = response_headers.get("X-Request-ID")
                if request_id:
                    with self.results.lock:
                        self.results.request_ids.add(request_id)
                if status in done or (attempt and status in done_on_retry):
                    return status, payload
                if status not in RETRYABLE:
                    self.results.unexpected.append(f"{method} {what}: {status} {payload[:300]!r}")
                    return status, payload
                error = str(status)
            failure = Failure(time.monotonic(), method, what, key is not None, error)
            with self.results.lock:
                self.results.failures.append(failure)
            time.sleep(0.2)
        self.results.unexpected.append(f"{method} {what}: still failing after 10 tries")
        return 0, b""

    def run(self, deadline: float) -> None:
        results = self.results
        number = 0
        while time.monotonic() < deadline:
            number += 1
            card = f"{7000 + self.index:04d}{number:08d}"
            body = {"type": "library", "holder": {"card_number": card, "name": "Erika Mustermann"}}
            key = str(uuid.uuid4())
            status, payload = self.send(
                "POST", "/api/v1/passes", "issue", body=body, api=True, key=key
            )
            if status != 201:
                continue
            issued = json.loads(payload)
            serial = issued["serial"]
            with results.lock:
                results.issued.add(serial)
                results.first_issue = results.first_issue or (key, body, serial)
            claim = urlsplit(issued["claim_url"]).path
            status, pkpass = self.send("GET", f"{claim}/pass.pkpass", "pass.pkpass")
            if status != 200:
                continue
            with zipfile.ZipFile(io.BytesIO(pkpass)) as archive:
                apple = json.loads(archive.read("pass.json"))
            push_token = secrets.token_hex(32)
            status, _ = self.send(
                "POST",
                f"/apple/v1/devices/{uuid.uuid4().hex}/registrations/"
                f"{apple['passTypeIdentifier']}/{apple['serialNumber']}",
                "device registration",
                body={"pushToken": push_token},
                authorization=f"ApplePass {apple['authenticationToken']}",
            )
            if status in (200, 201):
                with results.lock:
                    results.devices.setdefault(serial, []).append(push_token)
            self.download()
            if number % 2 == 0:
                status, _ = self.send(
                    "POST", f"/api/v1/passes/{serial}/revoke", "revoke", api=True,
                    body={"reason": "card reported lost"}, done_on_retry=(409,),
                )  # fmt: skip
                if status in (200, 409):
                    with results.lock:
                        results.revoked.add(serial)
        if self.conn is not None:
            self.conn.close()

    def download(self) -> None:
        """What a staff device syncs: the bundle and a status list in it."""
        status, bundle = self.send("GET", "/verifier/bundle", "bundle")
        if status != 200:
            return
        lists = list(jwt_payload(bundle)["status_lists"])
        self.send("GET", urlsplit(self.rng.choice(lists)).path, "status list")


def jwt_payload(token: bytes) -> dict[str, Any]:
    part = token.split(b".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4)))
    return decoded


@pytest.fixture
def wallet_env(
    tmp_path: Path,
    apns_server: ApnsStandIn,  # noqa: F811
    provider_key: ProviderKey,  # noqa: F811
    google_wallet_server: GoogleWalletStandIn,  # noqa: F811
    service_account_file: Path,  # noqa: F811
) -> dict[str, str]:
    """Apple (a development chain shaped like Apple's) and Google, pointed at the stand-ins."""
    chain = tmp_path / "apple"
    chain.mkdir()
    create_dev_chain(
        chain, team_id=TEAM_ID, pass_type_id=Settings.apple_pass_type_id,
        now=datetime.now(UTC) - timedelta(days=1),
    )  # fmt: skip
    return {
        "WALLET_APPLE_PASS_CERT": str(chain / "pass.pem"),
        "WALLET_APPLE_PASS_KEY": str(chain / "pass.key.pem"),
        "WALLET_APPLE_WWDR_CERT": str(chain / "wwdr.pem"),
        "WALLET_APPLE_PASS_TYPE_ID": Settings.apple_pass_type_id,
        "WALLET_APPLE_TEAM_ID": TEAM_ID,
        "WALLET_APNS_URL": apns_server.base_url,
        "WALLET_APNS_CA_FILE": str(apns_server.ca_file),
        "WALLET_APNS_KEY": str(provider_key.path),
        "WALLET_APNS_KEY_ID": provider_key.key_id,
        "WALLET_GOOGLE_SERVICE_ACCOUNT": str(service_account_file),
        "WALLET_GOOGLE_ISSUER_ID": ISSUER_ID,
        "WALLET_GOOGLE_API_URL": google_wallet_server.base_url,
        "WALLET_GOOGLE_TOKEN_URL": google_wallet_server.token_url,
    }


@pytest.fixture
def running(tmp_path: Path, wallet_env: dict[str, str]) -> Iterator[clusters.Cluster]:
    # WALLET_TEST_CLUSTER_NETNS=0: distinct loopback ports even where namespaces work.
    namespaces = os.environ.get("WALLET_TEST_CLUSTER_NETNS", "1") != "0"
    with clusters.cluster(
        tmp_path / "cluster", admin_url=PG_URL, nodes=3, extra_env=wallet_env,
        use_namespaces=namespaces,
    ) as c:  # fmt: skip
        print(f"app servers on {c.mode}")
        c.start_worker(c.nodes[1], 0)  # killed with its node's server below
        c.start_worker(c.nodes[0], 1)
        for node in c.nodes:
            c.start_server(node)
        c.start_proxy()
        c.wait_all_up()
        yield c


def _wait_for_deliveries(engine: Any, timeout: float = 30) -> None:
    """End the killed worker's leases (as their 60 s would), then wait for the outbox."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE outbox SET next_attempt_at = created_at WHERE state = 'pending'"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            pending = conn.execute(text("SELECT count(*) FROM outbox WHERE state = 'pending'"))
            if pending.scalar_one() == 0:
                return
        time.sleep(0.2)
    raise AssertionError("the remaining worker did not deliver the outbox within 30 s")


def test_killing_a_server_and_a_worker_loses_no_acknowledged_write(
    running: clusters.Cluster,
    apns_server: ApnsStandIn,  # noqa: F811
    google_wallet_server: GoogleWalletStandIn,  # noqa: F811
) -> None:
    c = running
    results = Results()
    start = time.monotonic()
    deadline = start + RUN_SECONDS
    threads = [
        threading.Thread(target=Client(c, i, results).run, args=(deadline,), daemon=True)
        for i in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    time.sleep(KILL_AFTER)
    victim = c.nodes[1]
    assert victim.server is not None
    killed_at = time.monotonic()
    victim.server.kill()
    c.workers[0].kill()
    for thread in threads:
        thread.join(RUN_SECONDS + 60)
    assert not any(t.is_alive() for t in threads)

    # The clients: only POSTs without an Idempotency-Key in flight on the killed server failed.
    server_errors = [e for n in c.nodes if n.server for e in n.server.errors()]
    assert not results.unexpected, (results.unexpected, server_errors)
    assert len(results.issued) >= 40, f"only {len(results.issued)} passes issued"
    assert results.revoked
    for failure in results.failures:
        # An answer the killed server had begun to send (its head passed on, the rest
        # never came) cannot be repeated by HAProxy either, whatever the method.
        not_repeated = failure.method == "POST" and not failure.keyed
        cut_short = failure.error == "IncompleteRead"
        allowed = not_repeated or cut_short
        in_flight = killed_at - 0.5 <= failure.at <= killed_at + 10
        assert allowed and in_flight, (failure, killed_at)
    assert len(results.failures) <= CLIENTS, results.failures
    assert c.server_states()["web2"].startswith("DOWN")

    engine = create_engine(c.tcp_url)
    try:
        _wait_for_deliveries(engine)
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT p.serial, p.state, p.status_idx, l.name FROM passes p "
                    "JOIN status_lists l ON l.id = p.status_list_id"
                )
            ).all()
            duplicates = conn.execute(
                text(
                    "SELECT status_list_id, status_idx FROM passes "
                    "GROUP BY status_list_id, status_idx HAVING count(*) > 1"
                )
            ).all()
            outbox = conn.execute(text("SELECT kind, payload, attempts, state FROM outbox")).all()
    finally:
        engine.dispose()

    # Every acknowledged write is there, once: retried issuances made no second pass.
    passes = {serial: (state, idx, name) for serial, state, idx, name in rows}
    assert results.issued <= passes.keys()
    assert len(passes) == len(results.issued), "a pass nobody was told about was issued"
    assert not duplicates
    assert {s for s, (state, _, _) in passes.items() if state == "revoked"} == results.revoked

    # A client that repeats an issuance with its Idempotency-Key gets the same pass back.
    client = Client(c, 99, Results())
    assert results.first_issue is not None
    key, body, serial = results.first_issue
    status, payload = client.send("POST", "/api/v1/passes", "issue", body=body, api=True, key=key)
    assert status == 201 and json.loads(payload)["serial"] == serial

    # Every acknowledged revocation is in the published status list.
    lists: dict[str, StatusList] = {}
    for serial in sorted(results.revoked):
        _, idx, name = passes[serial]
        if name not in lists:
            status, token = client.send("GET", f"/status/{name}", "status list")
            assert status == 200
            lists[name] = StatusList.from_claim(jwt_payload(token)["status_list"])
        assert lists[name].get(idx) == INVALID, serial

    # Each revocation reached each registered device once (twice only for a row claimed twice).
    assert {state for _, _, _, state in outbox} == {"done"}
    claims: Counter[str] = Counter()
    for kind, payload, attempts, _ in outbox:
        if kind == "apns":
            claims[str(payload["push_token"]).lower()] = attempts
    pushes = Counter((p.device_token or "").lower() for p in apns_server.pushes)
    for serial, tokens in results.devices.items():
        for push_token in tokens:
            sent, claimed = pushes[push_token], claims[push_token]
            if serial in results.revoked:
                assert 1 <= sent <= claimed, (serial, sent, claimed)
            else:
                assert sent == 0, serial
    google = Counter(
        r.path for r in google_wallet_server.api_requests() if r.method in ("PATCH", "PUT")
    )
    assert len(google) == len(results.revoked)
    twice_claimed = sum(
        1 for kind, _, attempts, _ in outbox if kind == "google_state" and attempts > 1
    )
    assert sum(google.values()) - len(google) <= twice_claimed

    # The audit chain is intact.
    audit = c.wallet(c.nodes[0], "audit", "verify")
    assert audit.returncode == 0, audit.stdout + audit.stderr

    # Every node serves the same signed documents, with the same ETag, as HAProxy does.
    paths = [
        "/verifier/bundle",
        *(f"/status/{name}" for name in sorted({n for _, _, n in passes.values()})),
    ]
    for path in paths:
        status, via_proxy = client.send("GET", path, path)
        assert status == 200
        answers = []
        for node in (c.nodes[0], c.nodes[2]):
            code, headers, served = c.fetch_from(node, path)
            assert code == 200, (node.name, path)
            answers.append((served, headers.get("ETag")))
        assert answers[0] == answers[1], path
        assert answers[0][0] == via_proxy, path

    # HAProxy gave every answer a request id of its own making, and keeps metrics inside.
    assert results.request_ids
    assert all(
        re.fullmatch(r"[0-9A-F]+-[0-9A-F]+-[0-9A-F]+-[0-9A-F]+", r) for r in results.request_ids
    )
    status, _ = client.send("GET", "/metrics", "metrics", done=(404,))
    assert status == 404
    # A well-formed id from the client (a city system's) is passed through and kept.
    status, headers, _ = client._once("GET", "/healthz", None, {"X-Request-ID": "city-system-0001"})
    assert status == 200 and headers["X-Request-ID"] == "city-system-0001"
    # Its log names method, status and request id; no path (claim secrets), no address.
    proxy_log = (c.folder / "haproxy.log").read_text()
    assert "POST 201" in proxy_log and "GET 200" in proxy_log
    assert "/p/" not in proxy_log and "127.0.0.1 [" not in proxy_log
    with contextlib.suppress(Exception):
        print(f"{len(results.issued)} issued, {len(results.revoked)} revoked, "
              f"{len(results.failures)} client-visible failures: {results.failures}")  # fmt: skip
