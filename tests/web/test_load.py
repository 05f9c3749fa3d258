"""Proof under load: 8 threads issuing and revoking at once against a live server."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from tests.factories import NOW
from tests.web.browser import live_server
from wallet.bundle import root_public_key, verify_bundle
from wallet.services import audit
from wallet.services.context import Services
from wallet.store.db import Database
from wallet.store.models import PassRow
from wallet.verifier import Verifier

THREADS = 8
PER_THREAD = 6  # issue 6, revoke every second one


def call(base: str, method: str, path: str, token: str, body: object = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_concurrent_issuance_and_revocation_lose_nothing(
    app: Flask, db: Database, services: Services, make_token: Callable[[str], str]
) -> None:
    token = make_token("issuer")
    errors: list[str] = []
    issued: dict[str, str] = {}  # serial -> qr_text
    revoked: set[str] = set()
    lock = threading.Lock()

    def worker(number: int) -> None:
        for i in range(PER_THREAD):
            kind = "parking" if (number + i) % 2 else "library"
            holder = (
                {"plate": f"D-AB {1000 + number * 10 + i}", "zone": "12"}
                if kind == "parking"
                else {"card_number": f"{number:06d}{i:06d}", "name": f"Person {number}-{i}"}
            )
            status, body = call(
                base, "POST", "/api/v1/passes", token, {"type": kind, "holder": holder}
            )
            if status != 201:
                errors.append(f"issue {status}: {body}")
                continue
            with lock:
                issued[body["serial"]] = body["qr_text"]
            if i % 2:
                path = f"/api/v1/passes/{body['serial']}/revoke"
                status, answer = call(base, "POST", path, token, {"reason": "load test"})
                if status != 200:
                    errors.append(f"revoke {status}: {answer}")
                    continue
                with lock:
                    revoked.add(body["serial"])

    with live_server(app) as base:
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with urllib.request.urlopen(base + "/verifier/bundle", timeout=30) as response:
            bundle_token = response.read().decode()
        with urllib.request.urlopen(base + "/verifier/root-key.pem", timeout=30) as response:
            root = root_public_key(response.read())

    assert errors == []
    assert len(issued) == THREADS * PER_THREAD
    assert len(revoked) == THREADS * PER_THREAD // 2
    verifier = Verifier(verify_bundle(bundle_token, root, now=NOW))
    for serial, qr_text in issued.items():
        expected = "revoked" if serial in revoked else "valid"
        assert verifier.check(qr_text, now=NOW).state == expected, serial
    key = services.audit_key
    audit.seal_all(
        lambda: db.transaction(write=True), key=key, checkpoint_file=None, clock=lambda: NOW
    )
    with db.transaction(write=False) as session:
        slots = session.execute(select(PassRow.status_list_id, PassRow.status_idx)).all()
        assert len(slots) == len(set(slots)) == len(issued)
        assert session.scalar(select(func.count()).select_from(PassRow)) == len(issued)
        report = audit.verify_chain(session, key=key)
        # one entry per issuance and one per revocation (API tokens made by the fixture too)
        assert report.intact and report.entries >= len(issued) + len(revoked)
        assert report.unsealed == 0
