"""Nothing an app server serves depends on its own state: what they share decides.

Each server has its own instance folder and its own copy of the keys; the
database holds what they publish, so every server serves the same bytes.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

from tests.concurrency import run_together
from tests.factories import NOW, fresh_holder
from wallet.keys import KeyRole
from wallet.keystore import KeyStore
from wallet.services import passes, publishing
from wallet.services.context import Services
from wallet.store.db import Database


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
