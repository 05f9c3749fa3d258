"""The keys folder: PKCS#8 PEM private keys with JSON metadata beside them.

Layout of ``WALLET_SIGNING_KEYS_DIR``::

    <kid>.key.pem   private key, PKCS#8, encrypted with WALLET_KEY_PASSPHRASE
    <kid>.json      metadata (KeyInfo) and the public key, readable without it
    audit.key.pem   the audit key (Ed25519, PKCS#8), encrypted the same way;
                    it authenticates audit entries and signs their checkpoints

Unencrypted private keys are written and read only in explicit dev mode.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from wallet.auditkey import AuditKey, CheckpointError
from wallet.errors import KeyNotFoundError, KeyPassphraseError, SigningKeyError
from wallet.files import write_atomically
from wallet.keys import (
    Algorithm,
    KeyInfo,
    KeyPhase,
    KeyRole,
    KeyState,
    PublicKey,
    SigningKey,
    generate_key,
    kid_for,
    load_private_key_pem,
    load_public_key_pem,
    pem_is_encrypted,
    public_key_pem,
    signing_key_at,
)

log = logging.getLogger(__name__)
_KID_RE = re.compile(r"[A-Za-z0-9_-]{4,64}")
AUDIT_KEY_FILE = "audit.key.pem"


class KeyStore:
    """Signing keys in a folder; sign with the newest, verify with all."""

    def __init__(self, folder: Path, *, passphrase: bytes | None, dev_mode: bool) -> None:
        self.folder = folder
        self._passphrase = passphrase
        self._dev_mode = dev_mode
        # A long-running service signs thousands of passes: keys are read and
        # decrypted once, and again only when the folder changes (every write
        # renames a file into it, which changes the folder's mtime).
        self._stamp: int | None = None
        self._public: list[PublicKey] = []
        self._private: dict[str, SigningKey] = {}

    def _fresh(self) -> None:
        try:
            stamp: int | None = self.folder.stat().st_mtime_ns
        except OSError:
            stamp = None
        if stamp != self._stamp or stamp is None:
            self._public = self._read_all() if stamp is not None else []
            self._private.clear()
            self._stamp = stamp

    # -- reading -----------------------------------------------------------

    def _metadata_path(self, kid: str) -> Path:
        if not _KID_RE.fullmatch(kid):
            raise KeyNotFoundError(f"{kid!r} is not a key id")
        return self.folder / f"{kid}.json"

    def _read_public(self, path: Path) -> PublicKey:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            pem = raw["public_key"].encode("ascii")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SigningKeyError(f"{path} is not readable key metadata: {exc}") from exc
        info = KeyInfo.from_json(raw)
        key = load_public_key_pem(pem)
        if kid_for(key) != info.kid:
            raise SigningKeyError(f"{path}: the public key does not match kid {info.kid}")
        return PublicKey(info=info, key=key)

    def _read_all(self) -> list[PublicKey]:
        keys = [self._read_public(path) for path in sorted(self.folder.glob("*.json"))]
        return sorted(keys, key=lambda k: (k.info.created, k.kid))

    def public_keys(self) -> list[PublicKey]:
        """Every key in the folder, oldest first."""
        self._fresh()
        return list(self._public)

    def get(self, kid: str) -> PublicKey:
        path = self._metadata_path(kid)
        if not path.is_file():
            raise KeyNotFoundError(f"no key {kid} in {self.folder}")
        return self._read_public(path)

    def signing_key(self, kid: str) -> SigningKey:
        """Load a private key; needs the passphrase unless in dev mode."""
        self._fresh()
        cached = self._private.get(kid)
        if cached is not None:
            return cached
        key = self._load_signing_key(kid)
        self._private[kid] = key
        return key

    def _load_signing_key(self, kid: str) -> SigningKey:
        info = self.get(kid).info
        path = self.folder / f"{kid}.key.pem"
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise KeyNotFoundError(f"the private key file of {kid} is missing ({path})") from exc
        if not pem_is_encrypted(data):
            if not self._dev_mode:
                raise KeyPassphraseError(
                    f"key {kid} is stored unencrypted, which only dev mode allows. "
                    "Re-create production keys with WALLET_KEY_PASSPHRASE set."
                )
            return load_private_key_pem(data, passphrase=None, info=info)
        if self._passphrase is None:
            raise KeyPassphraseError(f"key {kid} is encrypted: set WALLET_KEY_PASSPHRASE")
        return load_private_key_pem(data, passphrase=self._passphrase, info=info)

    def _newest(self, role: KeyRole, pass_type: str | None, now: datetime) -> PublicKey:
        found = signing_key_at(self.public_keys(), role=role, pass_type=pass_type, now=now)
        if found is None:
            what = f"pass type {pass_type}" if pass_type else f"role {role.value}"
            raise KeyNotFoundError(
                f"no active signing key for {what} in {self.folder}; "
                "create one with `wallet keys generate`"
            )
        return found

    def current_signing_key(self, pass_type: str, *, now: datetime) -> SigningKey:
        """The key that signs ``pass_type`` at ``now`` (:func:`wallet.keys.signing_key_at`)."""
        return self.signing_key(self._newest(KeyRole.PASS, pass_type, now).kid)

    def root_key(self, *, now: datetime) -> SigningKey:
        """The active trust-root key, which signs bundles and nothing else."""
        return self.signing_key(self._newest(KeyRole.ROOT, None, now).kid)

    def root_public_key(self, *, now: datetime) -> PublicKey:
        return self._newest(KeyRole.ROOT, None, now)

    # -- writing -----------------------------------------------------------

    def _write_metadata(self, key: PublicKey) -> None:
        raw = {**key.info.to_json(), "public_key": public_key_pem(key.key).decode("ascii")}
        data = json.dumps(raw, indent=2, sort_keys=True).encode("utf-8") + b"\n"
        write_atomically(self._metadata_path(key.kid), data, mode=0o644)
        self._stamp = None  # re-read on next use, whatever the clock's granularity

    def save(self, key: SigningKey) -> None:
        """Store a new key: private part first, so metadata never points at nothing."""
        if self._passphrase is None and not self._dev_mode:
            raise KeyPassphraseError(
                "set WALLET_KEY_PASSPHRASE to encrypt the new key "
                "(or WALLET_DEV_MODE=1 for an unencrypted development key)"
            )
        if self._passphrase is None:
            log.warning(
                "dev mode: key %s is stored UNENCRYPTED in %s; never use it in production",
                key.kid,
                self.folder,
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        if (self.folder / f"{key.kid}.json").exists():
            raise SigningKeyError(f"a key {key.kid} already exists")
        pem = key.private_pem(passphrase=self._passphrase)
        write_atomically(self.folder / f"{key.kid}.key.pem", pem, mode=0o600)
        self._write_metadata(key.public())

    def generate(
        self,
        *,
        alg: Algorithm,
        role: KeyRole,
        pass_types: frozenset[str],
        now: datetime,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
    ) -> SigningKey:
        if role is KeyRole.ROOT:
            existing = [
                k
                for k in self.public_keys()
                if k.info.role is KeyRole.ROOT and k.info.state is KeyState.ACTIVE
            ]
            if existing:
                raise SigningKeyError(
                    f"an active trust-root key ({existing[0].kid}) exists already; verifiers "
                    "pin it, so replacing it means re-pinning every device"
                )
        key = generate_key(
            alg=alg, role=role, pass_types=pass_types, now=now,
            not_before=not_before, not_after=not_after,
        )  # fmt: skip
        self.save(key)
        return key

    def retire(self, kid: str, *, now: datetime) -> PublicKey:
        """Stop signing with a key; it still verifies what it signed until now."""
        key = self.get(kid)
        if key.info.state is KeyState.REVOKED:
            raise SigningKeyError(f"key {kid} is revoked; a revoked key cannot be retired")
        self.call_off(key, now=now)
        end = now if key.info.not_after is None else min(now, key.info.not_after)
        retired = PublicKey(
            info=replace(key.info, state=KeyState.RETIRED, not_after=end), key=key.key
        )
        self._write_metadata(retired)
        return retired

    def revoke(self, kid: str, *, now: datetime) -> PublicKey:
        """Distrust a key (compromised): every pass it signed fails verification."""
        key = self.get(kid)
        self.call_off(key, now=now)
        revoked = PublicKey(info=replace(key.info, state=KeyState.REVOKED), key=key.key)
        self._write_metadata(revoked)
        return revoked

    def rotate(
        self, kid: str, *, alg: Algorithm | None, now: datetime, at: datetime | None = None
    ) -> SigningKey:
        """A new key for the same pass types; the old one retires.

        Without ``at`` the new key signs from now on. With ``at`` (checked by
        :func:`wallet.keys.check_takeover`) the rotation is staged: the new key
        is published at once, the old one keeps signing until ``at`` and the
        new one from then, on every server holding a copy of this folder.
        """
        old = self.get(kid)
        if old.info.role is not KeyRole.PASS or old.info.phase(now) is not KeyPhase.ACTIVE:
            staged = old.info.role is KeyRole.PASS and old.info.phase(now) is KeyPhase.STAGED
            raise SigningKeyError(
                f"key {kid} is staged: it signs from {old.info.not_before:%Y-%m-%d %H:%M:%S} "
                "UTC and can be rotated once it does"
                if staged
                else f"key {kid} is not an active pass signing key"
            )
        pending = self.staged_keys(now=now, pass_types=old.info.pass_types)
        if pending:
            raise SigningKeyError(
                f"key {kid} already hands over to the staged key {pending[0].kid} at "
                f"{pending[0].info.not_before:%Y-%m-%d %H:%M:%S} UTC; to change that, "
                f"retire {pending[0].kid} first"
            )
        if at is not None:
            if at <= now:
                raise SigningKeyError("a staged key must take over after now")
            if old.info.not_after is not None and old.info.not_after < at:
                raise SigningKeyError(
                    f"key {kid} stops signing at {old.info.not_after:%Y-%m-%d %H:%M:%S} UTC, "
                    "before the new key would take over; choose an earlier time"
                )
        new = self.generate(
            alg=alg or old.info.alg, role=KeyRole.PASS, pass_types=old.info.pass_types,
            now=now, not_before=at,
        )  # fmt: skip
        if at is None:
            self.retire(kid, now=now)
        else:
            # Still active: the window's end retires it at ``at``, on every server
            # at once, with nothing written then.
            self._write_metadata(PublicKey(info=replace(old.info, not_after=at), key=old.key))
        return new

    def call_off(self, key: PublicKey, *, now: datetime) -> list[str]:
        """A staged key retired or revoked before it took over: the keys it was to
        replace sign on (their window ended at the handover; it is opened again, with
        no end), so no pass type is left without a signing key at that time. Their kids."""
        if key.info.role is not KeyRole.PASS or key.info.phase(now) is not KeyPhase.STAGED:
            return []
        reopened = []
        for old in self.public_keys():
            if (
                old.kid != key.kid
                and old.info.role is KeyRole.PASS
                and old.info.state is KeyState.ACTIVE
                and old.info.pass_types & key.info.pass_types
                and old.info.not_after == key.info.not_before
            ):
                self._write_metadata(PublicKey(info=replace(old.info, not_after=None), key=old.key))
                reopened.append(old.kid)
        return reopened

    def staged_keys(
        self, *, now: datetime, pass_types: frozenset[str] | None = None
    ) -> list[PublicKey]:
        """Pass keys published but not signing yet (optionally: sharing a pass type)."""
        return [
            k
            for k in self.public_keys()
            if k.info.role is KeyRole.PASS
            and k.info.phase(now) is KeyPhase.STAGED
            and (pass_types is None or k.info.pass_types & pass_types)
        ]

    # -- the audit key -----------------------------------------------------

    @property
    def audit_key_path(self) -> Path:
        return self.folder / AUDIT_KEY_FILE

    def audit_key(self) -> AuditKey:
        """The audit key; in dev mode it is created on first use, like dev signing keys.

        Outside dev mode only :meth:`create_audit_key` (``wallet setup``) makes
        one: a host that silently made its own would write entries every other
        host's sealer calls forged.
        """
        try:
            data = self.audit_key_path.read_bytes()
        except FileNotFoundError:
            if not self._dev_mode:
                raise KeyNotFoundError(
                    f"no audit key in {self.folder}: run `wallet setup` (or copy "
                    f"{AUDIT_KEY_FILE} from the host that made it)"
                ) from None
            self.create_audit_key()
            data = self.audit_key_path.read_bytes()
        except OSError as exc:
            raise SigningKeyError(f"the audit key {self.audit_key_path} is unreadable") from exc
        if not pem_is_encrypted(data):
            if not self._dev_mode:
                raise KeyPassphraseError(
                    "the audit key is stored unencrypted, which only dev mode allows"
                )
            passphrase = None
        elif self._passphrase is None:
            raise KeyPassphraseError("the audit key is encrypted: set WALLET_KEY_PASSPHRASE")
        else:
            passphrase = self._passphrase
        try:
            return AuditKey.from_pem(data, passphrase=passphrase)
        except CheckpointError as exc:
            raise KeyPassphraseError(
                f"{exc.message} (wrong WALLET_KEY_PASSPHRASE, or a damaged file)"
            ) from exc

    def create_audit_key(self) -> bool:
        """Create the audit key unless one exists; True if this call made it.

        Linked into place without replacing: two processes racing here end up
        with the same key, the first one's.
        """
        if self._passphrase is None and not self._dev_mode:
            raise KeyPassphraseError("set WALLET_KEY_PASSPHRASE to encrypt the audit key")
        if self.audit_key_path.exists():
            return False
        pem = AuditKey.generate().private_pem(passphrase=self._passphrase)
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".audit.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
                handle.flush()
                os.fsync(handle.fileno())
            os.link(tmp, self.audit_key_path)
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        if self._passphrase is None:
            log.warning("dev mode: the audit key is stored UNENCRYPTED in %s", self.folder)
        return True
