"""The keys folder: encryption policy, atomic files, rotation, retirement, revocation."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path

import pytest

from tests.factories import NOW
from wallet.errors import KeyNotFoundError, KeyPassphraseError, SigningKeyError
from wallet.keys import KeyRole, KeyState
from wallet.keystore import KeyStore

PASSPHRASE = b"a long enough passphrase"
TYPES = frozenset({"library", "parking"})


def store(folder: Path, *, passphrase: bytes | None = PASSPHRASE, dev: bool = False) -> KeyStore:
    return KeyStore(folder, passphrase=passphrase, dev_mode=dev)


def test_keys_are_encrypted_and_private_files_are_owner_only(tmp_path: Path) -> None:
    key = store(tmp_path).generate(alg="ES256", role=KeyRole.PASS, pass_types=TYPES, now=NOW)
    pem = (tmp_path / f"{key.kid}.key.pem").read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert stat.S_IMODE((tmp_path / f"{key.kid}.key.pem").stat().st_mode) == 0o600
    assert b"PRIVATE" not in (tmp_path / f"{key.kid}.json").read_bytes()
    assert store(tmp_path).signing_key(key.kid).kid == key.kid
    assert not list(tmp_path.glob(".*.tmp")), "no temporary files are left behind"


def test_refuses_to_write_unencrypted_key_outside_dev_mode(tmp_path: Path) -> None:
    with pytest.raises(KeyPassphraseError, match="WALLET_KEY_PASSPHRASE"):
        store(tmp_path, passphrase=None).generate(
            alg="ES256", role=KeyRole.PASS, pass_types=TYPES, now=NOW
        )
    assert list(tmp_path.iterdir()) == []


def test_dev_mode_writes_unencrypted_key_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dev = store(tmp_path, passphrase=None, dev=True)
    key = dev.generate(alg="EdDSA", role=KeyRole.PASS, pass_types=TYPES, now=NOW)
    assert (tmp_path / f"{key.kid}.key.pem").read_bytes().startswith(b"-----BEGIN PRIVATE KEY")
    assert "UNENCRYPTED" in caplog.text
    assert dev.signing_key(key.kid).kid == key.kid
    # The same unencrypted key is refused once dev mode is off.
    with pytest.raises(KeyPassphraseError, match="only dev mode allows"):
        store(tmp_path).signing_key(key.kid)


def test_encrypted_key_needs_the_passphrase(tmp_path: Path) -> None:
    key = store(tmp_path).generate(alg="ES256", role=KeyRole.PASS, pass_types=TYPES, now=NOW)
    with pytest.raises(KeyPassphraseError, match="set WALLET_KEY_PASSPHRASE"):
        store(tmp_path, passphrase=None).signing_key(key.kid)
    with pytest.raises(KeyPassphraseError, match="wrong WALLET_KEY_PASSPHRASE"):
        store(tmp_path, passphrase=b"another long passphrase").signing_key(key.kid)


def test_current_key_is_the_newest_active_one_for_the_type(tmp_path: Path) -> None:
    s = store(tmp_path)
    old = s.generate(alg="ES256", role=KeyRole.PASS, pass_types=TYPES, now=NOW - timedelta(days=9))
    lib = s.generate(alg="ES256", role=KeyRole.PASS, pass_types=frozenset({"library"}), now=NOW)
    assert s.current_signing_key("library", now=NOW).kid == lib.kid
    assert s.current_signing_key("parking", now=NOW).kid == old.kid
    with pytest.raises(KeyNotFoundError, match="wallet keys generate"):
        s.current_signing_key("pool", now=NOW)


def test_rotate_retires_the_old_key_which_keeps_its_window(tmp_path: Path) -> None:
    s = store(tmp_path)
    old = s.generate(alg="ES256", role=KeyRole.PASS, pass_types=TYPES, now=NOW - timedelta(days=9))
    new = s.rotate(old.kid, alg="EdDSA", now=NOW)
    assert new.info.alg == "EdDSA" and new.info.pass_types == TYPES
    retired = s.get(old.kid).info
    assert retired.state is KeyState.RETIRED and retired.not_after == NOW.replace(microsecond=0)
    assert retired.covers(NOW - timedelta(days=1)) and not retired.covers(NOW + timedelta(1))
    assert s.current_signing_key("parking", now=NOW).kid == new.kid
    with pytest.raises(SigningKeyError, match="not an active pass signing key"):
        s.rotate(old.kid, alg=None, now=NOW)


def test_revoke_is_final(tmp_path: Path) -> None:
    s = store(tmp_path)
    key = s.generate(alg="ES256", role=KeyRole.PASS, pass_types=TYPES, now=NOW)
    s.revoke(key.kid, now=NOW)
    assert s.get(key.kid).info.state is KeyState.REVOKED
    with pytest.raises(SigningKeyError, match="revoked"):
        s.retire(key.kid, now=NOW)
    with pytest.raises(KeyNotFoundError):
        s.current_signing_key("library", now=NOW)


def test_only_one_active_root_key(tmp_path: Path) -> None:
    s = store(tmp_path)
    root = s.generate(alg="ES256", role=KeyRole.ROOT, pass_types=frozenset(), now=NOW)
    assert s.root_key(now=NOW).kid == root.kid
    with pytest.raises(SigningKeyError, match="re-pinning"):
        s.generate(alg="ES256", role=KeyRole.ROOT, pass_types=frozenset(), now=NOW)
    with pytest.raises(KeyNotFoundError):
        s.current_signing_key("library", now=NOW)


@pytest.mark.parametrize("kid", ["../etc/passwd", "a/b", "", "x" * 100])
def test_kid_cannot_escape_the_folder(tmp_path: Path, kid: str) -> None:
    with pytest.raises(KeyNotFoundError):
        store(tmp_path).get(kid)


def test_damaged_metadata_is_reported(tmp_path: Path) -> None:
    s = store(tmp_path)
    key = s.generate(alg="ES256", role=KeyRole.PASS, pass_types=TYPES, now=NOW)
    (tmp_path / f"{key.kid}.json").write_text("{not json")
    with pytest.raises(SigningKeyError, match="not readable key metadata"):
        s.public_keys()


def test_missing_folder_has_no_keys(tmp_path: Path) -> None:
    assert store(tmp_path / "absent").public_keys() == []


def test_damaged_private_key_file_is_reported(tmp_path: Path) -> None:
    key = store(tmp_path).generate(alg="ES256", role=KeyRole.PASS, pass_types=TYPES, now=NOW)
    (tmp_path / f"{key.kid}.key.pem").write_bytes(b"not a key at all")
    with pytest.raises(SigningKeyError, match="damaged"):
        store(tmp_path).signing_key(key.kid)
