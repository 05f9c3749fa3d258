"""The audit key: authenticates audit entries and signs checkpoints of the chain.

One Ed25519 private key (32 random bytes, stored like the signing keys) does
both jobs. Each entry carries an HMAC-SHA256 made with a key derived from it,
cheap enough for the issuance hot path; the chain links are keyed the same way,
so nobody without the key can write an entry or recompute the chain. Only
checkpoints (sequence number, chain head, time) are signed, with the Ed25519
key itself, so anyone holding the public key can check a published one.

Pure: keys and values in, values out; the keys folder is :mod:`wallet.keystore`'s.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from wallet.errors import WalletError

CHECKPOINT_TYPE = "wallet-audit-checkpoint"
# The newest checkpoint, kept in the instance folder as well as the database.
AUDIT_CHECKPOINT_FILE = "audit-checkpoint.json"
_MAC_CONTEXT = b"wallet audit entry mac v1"
_LINK_CONTEXT = b"wallet audit chain link v1"
_SEAL_CONTEXT = b"wallet outbox seal v1"


class CheckpointError(WalletError):
    """An audit checkpoint is malformed or its signature is not the audit key's."""

    code = "audit_checkpoint_invalid"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Checkpoint:
    """What the chain looked like when it was sealed: ``seq`` entries ending in ``head``.

    ``legacy`` counts the entries at the start of the chain that were sealed
    before entries carried a MAC (their links are plain SHA-256).
    """

    seq: int
    head: str
    at: datetime
    legacy: int = 0

    def payload(self, *, key_id: str) -> dict[str, Any]:
        return {
            "type": CHECKPOINT_TYPE,
            "seq": self.seq,
            "head": self.head,
            "at": self.at.isoformat(timespec="microseconds"),
            "legacy": self.legacy,
            "key": key_id,
        }


def _canonical(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _key_id(public: ed25519.Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _b64url(hashlib.sha256(raw).digest())[:16]


@dataclass(frozen=True)
class AuditPublicKey:
    """Checks signed checkpoints; what an outside observer pins."""

    key: ed25519.Ed25519PublicKey

    @property
    def key_id(self) -> str:
        return _key_id(self.key)

    def pem(self) -> bytes:
        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def verify_checkpoint(self, document: object) -> Checkpoint:
        """The checkpoint inside a signed document.

        :raises CheckpointError: if it is malformed or not signed by this key.
        """
        if not isinstance(document, dict):
            raise CheckpointError("an audit checkpoint must be a JSON object")
        payload = {k: v for k, v in document.items() if k != "sig"}
        sig = document.get("sig")
        if payload.get("type") != CHECKPOINT_TYPE or not isinstance(sig, str):
            raise CheckpointError("not an audit checkpoint")
        if payload.get("key") != self.key_id:
            raise CheckpointError(
                f"the checkpoint names audit key {payload.get('key')!r}, not {self.key_id}"
            )
        try:
            self.key.verify(_b64url_decode(sig), _canonical(payload))
        except (InvalidSignature, ValueError, binascii.Error) as exc:
            raise CheckpointError("the checkpoint's signature is not the audit key's") from exc
        seq, head, at, legacy = (payload.get(k) for k in ("seq", "head", "at", "legacy"))
        if (
            not isinstance(seq, int)
            or not isinstance(legacy, int)
            or not isinstance(head, str)
            or not isinstance(at, str)
            or set(payload) != {"type", "seq", "head", "at", "legacy", "key"}
        ):
            raise CheckpointError("the audit checkpoint's fields are malformed")
        try:
            when = datetime.fromisoformat(at)
        except ValueError as exc:
            raise CheckpointError("the audit checkpoint's time is malformed") from exc
        return Checkpoint(seq=seq, head=head, at=when, legacy=legacy)


class AuditKey:
    """The secret that makes audit entries and checkpoints unforgeable without it."""

    def __init__(self, private: ed25519.Ed25519PrivateKey) -> None:
        self._private = private
        raw = private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        # Two independent HMAC keys derived from the one secret, one per purpose.
        self._mac = hmac.new(hmac.digest(raw, _MAC_CONTEXT, "sha256"), digestmod="sha256")
        self._link = hmac.new(hmac.digest(raw, _LINK_CONTEXT, "sha256"), digestmod="sha256")
        # The instance secret every process holds also seals queued e-mails (they carry
        # claim links) at rest, under a key of their own.
        self.seal_key = hmac.digest(raw, _SEAL_CONTEXT, "sha256")
        self.public = AuditPublicKey(private.public_key())

    @classmethod
    def generate(cls) -> AuditKey:
        return cls(ed25519.Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, data: bytes, *, passphrase: bytes | None) -> AuditKey:
        try:
            key = serialization.load_pem_private_key(data, password=passphrase)
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"the audit key cannot be read: {exc}") from exc
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise CheckpointError("the audit key must be an Ed25519 key")
        return cls(key)

    def private_pem(self, *, passphrase: bytes | None) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase)
            if passphrase is not None
            else serialization.NoEncryption()
        )
        return self._private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    def mac(self, content_hash: str) -> str:
        """The MAC an entry is written with: proves the service wrote this content."""
        # A copy of a keyed HMAC: ~5 µs here, under the content hash's ~60 µs (hmac.digest
        # sets OpenSSL's MAC up anew on every call and is slower).
        mac = self._mac.copy()
        mac.update(content_hash.encode("ascii"))
        return mac.hexdigest()

    def link(self, *, prev_hash: str, seq: int, content_hash: str) -> str:
        """The keyed chain hash of entry ``seq``: nobody without the key can recompute it."""
        link = self._link.copy()
        link.update(f"{prev_hash}:{seq}:{content_hash}".encode("ascii"))
        return link.hexdigest()

    def sign_checkpoint(self, checkpoint: Checkpoint) -> dict[str, Any]:
        """The checkpoint as a JSON object with an Ed25519 signature over its members."""
        payload = checkpoint.payload(key_id=self.public.key_id)
        return {**payload, "sig": _b64url(self._private.sign(_canonical(payload)))}
