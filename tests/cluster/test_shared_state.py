"""Nothing an app server serves depends on its own state: what they share decides.

Each server has its own instance folder and its own copy of the keys; the
database holds what they publish, so every server serves the same bytes.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text
from werkzeug.test import TestResponse

from tests.concurrency import run_together
from tests.factories import NOW, fresh_holder
from wallet.keys import KeyRole
from wallet.keystore import KeyStore
from wallet.services import accounts, passes, publishing
from wallet.services.context import Services
from wallet.store.db import Database
from wallet.web import create_app

PASSWORD = "correct horse battery"


def test_servers_publishing_the_first_bundle_at_once_serve_the_same_one(
    db: Database, services: Services
) -> None:
    """Before any bundle exists there is no row to lock: the servers that publish it at
    once must agree on one (PostgreSQL refused the second row 1 with a 500 before)."""
    tokens: list[str] = []

    def publish() -> None:
        with db.transaction(write=True) as session:
            tokens.append(publishing.publish_bundle(session, services, now=NOW).token)

    run_together(publish, threads=4)
    assert len(tokens) == 4 and len(set(tokens)) == 1
    with db.transaction(write=False) as session:
        assert publishing.cached_bundle(session, services, now=NOW) == tokens[0]


class Pauses:
    """Stops named threads at named points of a publication until the test lets them go."""

    def __init__(self) -> None:
        self.reached: dict[str, threading.Event] = {}
        self.release: dict[str, threading.Event] = {}

    def point(self, name: str) -> None:
        where = f"{threading.current_thread().name} {name}"
        if where in self.release:
            self.reached[where].set()
            assert self.release[where].wait(30), f"{where} was never let go"

    def stop(self, where: str) -> None:
        self.reached[where], self.release[where] = threading.Event(), threading.Event()


def _waiting_for_locks(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        )


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


def test_three_servers_publishing_the_first_bundles_do_not_deadlock(
    db: Database, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 500 of a cluster run. A publishes the first bundle while B, finding none,
    waits for the version counter A holds. A commits; B takes the counter; a revocation
    makes A's bundle stale; C locks that bundle and waits for the counter B holds,
    while B goes back for the bundle C holds: PostgreSQL ended one as a deadlock."""
    if db.is_sqlite:
        pytest.skip("SQLite runs one writer at a time: the three cannot interleave")
    with db.transaction(write=True) as session:
        serials = [
            passes.issue_pass(
                session, services, type_id="library", holder=fresh_holder("library"),
                actor="admin:test", now=NOW,
            ).record.serial
            for _ in range(2)
        ]  # fmt: skip
        for name in publishing.list_names(session):  # current: no publisher re-signs them
            publishing.publish_status_list(session, services, name, now=NOW)

    pauses = Pauses()
    export, counter = publishing.export_bundle, publishing.next_counter

    def paused_export(**kwargs: Any) -> str:
        pauses.point("signing")
        return export(**kwargs)

    def paused_counter(session: Any, name: str) -> int:
        value = counter(session, name)
        pauses.point(f"counted {name}")
        return value

    monkeypatch.setattr(publishing, "export_bundle", paused_export)
    monkeypatch.setattr(publishing, "next_counter", paused_counter)
    tokens: dict[str, str] = {}
    errors: list[BaseException] = []

    def publish() -> None:
        try:
            with db.transaction(write=True) as session:
                token = publishing.publish_bundle(session, services, now=NOW).token
            tokens[threading.current_thread().name] = token
        except BaseException as exc:
            errors.append(exc)

    def server(name: str) -> threading.Thread:
        thread = threading.Thread(target=publish, name=name)
        thread.start()
        return thread

    pauses.stop("A signing")
    pauses.stop("B counted bundle")
    a = server("A")
    _until(pauses.reached["A signing"].is_set, "A signs the first bundle")
    b = server("B")
    _until(lambda: _waiting_for_locks(db) == 1, "B waits for A")
    pauses.release["A signing"].set()
    a.join(20)
    _until(
        lambda: pauses.reached["B counted bundle"].is_set() or not b.is_alive(),
        "B goes on once A committed",
    )
    with db.transaction(write=True) as session:
        passes.change_state(
            session, services, serials[0], action="revoke", reason="lost",
            actor="admin:test", now=NOW,
        )  # fmt: skip
    c = server("C")
    _until(lambda: _waiting_for_locks(db) == 1 or not c.is_alive(), "C waits or is done")
    pauses.release["B counted bundle"].set()
    for thread in (b, c):
        thread.join(30)
    assert not errors, errors
    assert set(tokens) == {"A", "B", "C"}
    with db.transaction(write=False) as session:
        assert publishing.cached_bundle(session, services, now=NOW) in tokens.values()


def test_a_key_rotated_on_one_server_signs_on_another_once_the_files_are_copied(
    tmp_path: Path, services: Services
) -> None:
    """A server's key cache is checked against its folder on every use: the bound is
    the copy of the files, nothing after it (no restart, no waiting)."""
    here = services.keys
    there_folder = tmp_path / "other-node-keys"
    shutil.copytree(here.folder, there_folder)
    there = KeyStore(there_folder, passphrase=None, dev_mode=True)
    old = there.current_signing_key("library", now=NOW)  # loaded and cached
    assert {k.kid for k in there.public_keys()} == {k.kid for k in here.public_keys()}

    new = here.rotate(old.kid, alg=None, now=NOW)
    assert there.current_signing_key("library", now=NOW).kid == old.kid  # not copied yet
    shutil.copytree(here.folder, there_folder, dirs_exist_ok=True)  # what the admin does
    assert there.current_signing_key("library", now=NOW).kid == new.kid
    roles = {k.kid: k.info.role for k in there.public_keys()}
    assert roles[new.kid] is KeyRole.PASS and old.kid in roles


def test_servers_re_signing_a_changed_list_at_once_keep_one_token_per_version(
    db: Database, services: Services
) -> None:
    """Every server may re-sign a list a revocation changed at the same moment: the
    first stored token stays, so one ETag (list, version, signing second) always
    names the same bytes on every server."""
    with db.transaction(write=True) as session:
        issued = passes.issue_pass(
            session, services, type_id="library", holder=fresh_holder("library"),
            actor="admin:test", now=NOW,
        )  # fmt: skip
        (name,) = publishing.list_names(session)
        publishing.publish_status_list(session, services, name, now=NOW)
    with db.transaction(write=True) as session:
        passes.change_state(
            session, services, issued.record.serial, action="revoke", reason="lost",
            actor="admin:test", now=NOW,
        )  # fmt: skip
    later = NOW + timedelta(seconds=1)
    with db.transaction(write=False) as session:  # two servers read the changed list
        first = publishing.prepare_status_list(session, services, name, now=later)
        second = publishing.prepare_status_list(
            session, services, name, now=later + timedelta(milliseconds=5)
        )
    assert first is not None and second is not None and first.token != second.token
    for signed in (first, second, first):
        with db.transaction(write=True) as session:
            kept = publishing.store_status_list(session, signed)
            assert kept.published_token == first.token

    # Aged past half its life, it is signed anew (same version, a new token).
    aged = later + timedelta(seconds=services.settings.status_list_lifetime)
    with db.transaction(write=True) as session:
        renewed = publishing.publish_status_list(session, services, name, now=aged)
    assert renewed.token not in (None, first.token)
    assert renewed.published_version == first.version


def _node(db: Database, services: Services, folder: Path, *, secret: str) -> Flask:
    """One app server: its own instance folder, the shared database and WALLET_SECRET_KEY."""
    settings = replace(services.settings, instance_dir=folder, secret_key=secret, dev_mode=False)
    node = Services(settings=settings, keys=services.keys, pass_types=services.pass_types)
    return create_app(
        settings, services=node, db=db, clock=lambda: NOW,
        config={"TESTING": True, "RATELIMIT_ENABLED": False},
    )  # fmt: skip


class Browser:
    """One cookie jar, whichever server the load balancer sends a request to."""

    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}

    def send(self, app: Flask, method: str, path: str, **kwargs: object) -> TestResponse:
        client = app.test_client(use_cookies=False)
        header = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        response = client.open(path, method=method, headers={"Cookie": header}, **kwargs)  # type: ignore[arg-type]
        for line in response.headers.getlist("Set-Cookie"):
            name, _, rest = line.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        return response


def _csrf_token(response: TestResponse) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', response.get_data(as_text=True))
    assert found is not None, "no CSRF token in the page"
    return found.group(1)


def test_a_sign_in_form_from_one_server_is_accepted_by_another(
    db: Database, services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CSRF tokens and sessions hold across servers with the same WALLET_SECRET_KEY (the
    environment file every node shares), whatever their instance folders hold; a server
    with another key refuses the form, so the check is real."""
    quick = accounts.argon2.using(memory_cost=1024, rounds=1)
    monkeypatch.setattr(accounts, "argon2", quick)
    with db.transaction(write=True) as session:
        accounts.add_user(
            session, username="anna", password=PASSWORD, role="issuer", actor="test",
            audit_key=services.audit_key, now=NOW,
        )  # fmt: skip
    secret = "shared-secret-key-" + "0123456789" * 3
    one = _node(db, services, tmp_path / "web1", secret=secret)
    two = _node(db, services, tmp_path / "web2", secret=secret)
    other = _node(db, services, tmp_path / "web3", secret="another-secret-key-" + "9" * 30)

    form = {"username": "anna", "password": PASSWORD}
    stranger = Browser()
    token = _csrf_token(stranger.send(one, "GET", "/console/login"))
    refused = stranger.send(other, "POST", "/console/login", data={**form, "csrf_token": token})
    assert refused.status_code == 400

    browser = Browser()
    token = _csrf_token(browser.send(one, "GET", "/console/login"))
    signed_in = browser.send(two, "POST", "/console/login", data={**form, "csrf_token": token})
    assert signed_in.status_code in (302, 303), signed_in.get_data(as_text=True)[:500]
    console = browser.send(one, "GET", "/console/")
    assert console.status_code == 200 and "anna" in console.get_data(as_text=True)
