"""Nothing an app server serves depends on its own state: what they share decides.

Each server has its own instance folder and its own copy of the keys; the
database holds what they publish, so every server serves the same bytes.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from tests.concurrency import Pauses, run_together, until, waiting_for_locks
from tests.factories import NOW, fresh_holder
from tests.integration.test_passes import issue
from wallet.keys import KeyRole
from wallet.keystore import KeyStore
from wallet.services import accounts, passes, plate_index, publishing
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


def three_servers_racing(
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    module: ModuleType,
    counter_name: str,
    publish: Callable[[], str],
    change: Callable[[], None],
) -> dict[str, str]:
    """What each of three servers A, B, C publishes, run in the order that deadlocked.

    A takes the version counter and stops; B, finding nothing published, waits for
    it. A commits; B takes the counter and stops. ``change`` makes A's work stale,
    and C, finding it stale, waits for the counter B holds. Then B goes on: before
    publishers were serialised, it went back for the row C had locked.
    """
    if db.is_sqlite:
        pytest.skip("SQLite runs one writer at a time: the three cannot interleave")
    pauses = Pauses()
    counter = module.next_counter

    def paused_counter(session: Any, name: str) -> int:
        value: int = counter(session, name)
        pauses.point(f"counted {name}")
        return value

    monkeypatch.setattr(module, "next_counter", paused_counter)
    published: dict[str, str] = {}
    errors: list[BaseException] = []

    def run() -> None:
        try:
            published[threading.current_thread().name] = publish()
        except BaseException as exc:
            errors.append(exc)

    def server(name: str) -> threading.Thread:
        thread = threading.Thread(target=run, name=name)
        thread.start()
        return thread

    a_counted, b_counted = f"A counted {counter_name}", f"B counted {counter_name}"
    pauses.stop(a_counted)
    pauses.stop(b_counted)
    a = server("A")
    until(pauses.reached[a_counted].is_set, "A takes the counter")
    b = server("B")
    until(lambda: waiting_for_locks(db) == 1, "B waits for A")
    pauses.release[a_counted].set()
    a.join(20)
    until(lambda: pauses.reached[b_counted].is_set() or not b.is_alive(), "B goes on")
    change()
    c = server("C")
    until(lambda: waiting_for_locks(db) == 1 or not c.is_alive(), "C waits or is done")
    pauses.release[b_counted].set()
    for thread in (b, c):
        thread.join(30)
    assert not errors, errors
    assert set(published) == {"A", "B", "C"}
    return published


def test_three_servers_publishing_the_first_bundles_do_not_deadlock(
    db: Database, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 500 a device got from a cluster run: PostgreSQL ended one of the three
    bundle publishers as a deadlock (a revocation made A's bundle stale)."""
    with db.transaction(write=True) as session:
        serial = passes.issue_pass(
            session, services, type_id="library", holder=fresh_holder("library"),
            actor="admin:test", now=NOW,
        ).record.serial  # fmt: skip
        for name in publishing.list_names(session):  # current: no publisher re-signs them
            publishing.publish_status_list(session, services, name, now=NOW)

    def publish() -> str:
        with db.transaction(write=True) as session:
            return publishing.publish_bundle(session, services, now=NOW).token

    def revoke() -> None:
        with db.transaction(write=True) as session:
            passes.change_state(
                session, services, serial, action="revoke", reason="lost",
                actor="admin:test", now=NOW,
            )  # fmt: skip

    tokens = three_servers_racing(db, monkeypatch, publishing, "bundle", publish, revoke)
    with db.transaction(write=False) as session:
        assert publishing.cached_bundle(session, services, now=NOW) == tokens["C"]


def test_three_servers_building_the_first_plate_indexes_do_not_deadlock(
    db: Database, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same race for the plate index that devices download (a new permit made A's
    index stale): B's second row for the scope failed, and its retry deadlocked with C."""
    issue(db, services, "parking", holder={"plate": "D-AB 1", "zone": "12"})

    def build() -> str:
        with db.transaction(write=True) as session:
            return plate_index.current_index(session, services, now=NOW).token

    def new_permit() -> None:
        issue(db, services, "parking", holder={"plate": "D-AB 2", "zone": "12"})

    tokens = three_servers_racing(db, monkeypatch, plate_index, "plate_index", build, new_permit)
    assert tokens["A"] == tokens["B"] != tokens["C"]


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
