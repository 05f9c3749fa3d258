"""The audit key: stored like the signing keys, MACs entries, signs checkpoints."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import pytest

from tests.factories import NOW
from wallet.auditkey import AuditKey, Checkpoint, CheckpointError
from wallet.errors import KeyNotFoundError, KeyPassphraseError
from wallet.keystore import AUDIT_KEY_FILE, KeyStore

PASSPHRASE = b"a long enough passphrase"


def test_the_audit_key_is_encrypted_with_the_key_passphrase(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path, passphrase=PASSPHRASE, dev_mode=False)
    assert keys.create_audit_key()
    assert not keys.create_audit_key()  # never replaced: entries already carry its MACs
    pem = (tmp_path / AUDIT_KEY_FILE).read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert stat.S_IMODE((tmp_path / AUDIT_KEY_FILE).stat().st_mode) == 0o600
    first, again = keys.audit_key(), KeyStore(tmp_path, passphrase=PASSPHRASE, dev_mode=False)
    assert first.mac("c" * 64) == again.audit_key().mac("c" * 64)
    with pytest.raises(KeyPassphraseError, match="WALLET_KEY_PASSPHRASE"):
        KeyStore(tmp_path, passphrase=None, dev_mode=False).audit_key()
    with pytest.raises(KeyPassphraseError, match="wrong WALLET_KEY_PASSPHRASE"):
        KeyStore(tmp_path, passphrase=b"not the passphrase", dev_mode=False).audit_key()
    assert [k.kid for k in keys.public_keys()] == []  # not mistaken for a signing key


def test_outside_dev_mode_a_missing_audit_key_is_not_made_up(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path, passphrase=PASSPHRASE, dev_mode=False)
    with pytest.raises(KeyNotFoundError, match="wallet setup"):
        keys.audit_key()
    assert not (tmp_path / AUDIT_KEY_FILE).exists()


def test_dev_mode_makes_the_audit_key_on_first_use(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path, passphrase=None, dev_mode=True)
    made = keys.audit_key()
    assert (tmp_path / AUDIT_KEY_FILE).read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert keys.audit_key().public.key_id == made.public.key_id
    with pytest.raises(KeyPassphraseError, match="only dev mode"):
        KeyStore(tmp_path, passphrase=PASSPHRASE, dev_mode=False).audit_key()


def test_processes_racing_to_make_the_audit_key_all_get_the_same(tmp_path: Path) -> None:
    ids: list[str] = []
    start = threading.Barrier(6)

    def load() -> None:
        start.wait()
        ids.append(KeyStore(tmp_path, passphrase=None, dev_mode=True).audit_key().public.key_id)

    threads = [threading.Thread(target=load) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 6 and len(set(ids)) == 1
    assert not list(tmp_path.glob(".*.tmp"))


def test_macs_and_links_depend_on_the_key() -> None:
    one, other = AuditKey.generate(), AuditKey.generate()
    assert one.mac("c" * 64) == one.mac("c" * 64) != other.mac("c" * 64)
    assert one.mac("c" * 64) != one.mac("d" * 64)
    link = one.link(prev_hash="0" * 64, seq=1, content_hash="c" * 64)
    assert link != one.link(prev_hash="0" * 64, seq=2, content_hash="c" * 64)
    assert link != other.link(prev_hash="0" * 64, seq=1, content_hash="c" * 64)


def test_a_signed_checkpoint_verifies_with_the_public_key_only() -> None:
    key = AuditKey.generate()
    checkpoint = Checkpoint(seq=7, head="a" * 64, at=NOW, legacy=2)
    document = json.loads(json.dumps(key.sign_checkpoint(checkpoint)))  # as published
    assert key.public.verify_checkpoint(document) == checkpoint


@pytest.mark.parametrize(
    "change",
    [
        {"seq": 8},
        {"head": "b" * 64},
        {"at": "2030-01-01T00:00:00.000000+00:00"},
        {"legacy": 5},
        {"sig": "AAAA"},
        {"extra": 1},
    ],
)
def test_a_changed_checkpoint_is_refused(change: dict[str, object]) -> None:
    key = AuditKey.generate()
    document = {**key.sign_checkpoint(Checkpoint(seq=7, head="a" * 64, at=NOW)), **change}
    with pytest.raises(CheckpointError):
        key.public.verify_checkpoint(document)


def test_a_checkpoint_signed_by_another_key_is_refused() -> None:
    key, mallory = AuditKey.generate(), AuditKey.generate()
    document = mallory.sign_checkpoint(Checkpoint(seq=7, head="a" * 64, at=NOW))
    with pytest.raises(CheckpointError, match="names audit key"):
        key.public.verify_checkpoint(document)
    document["key"] = key.public.key_id  # claiming the right key does not help
    with pytest.raises(CheckpointError, match="signature"):
        key.public.verify_checkpoint(document)
    for hostile in (None, [], "text", {"type": "wallet-audit-checkpoint"}):
        with pytest.raises(CheckpointError):
            key.public.verify_checkpoint(hostile)
