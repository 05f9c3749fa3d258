"""Secrets the database keeps for a while (queued e-mails, the plate index key), sealed.

AES-GCM under the audit key's seal key, which lives beside the signing keys and
not in the database: a dump of the database alone opens none of them. ``aad``
names what is sealed, so one kind can never be opened as another.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from wallet.auditkey import AuditKey
from wallet.errors import WalletError


def seal(key: AuditKey, data: bytes, *, aad: bytes) -> str:
    nonce = os.urandom(12)
    return base64.b64encode(nonce + AESGCM(key.seal_key).encrypt(nonce, data, aad)).decode()


def unseal(key: AuditKey, sealed: object, *, aad: bytes, what: str) -> bytes:
    """:raises WalletError: naming ``what`` (sealed by another instance, or damaged)."""
    try:
        raw = base64.b64decode(str(sealed), validate=True)
        return AESGCM(key.seal_key).decrypt(raw[:12], raw[12:], aad)
    except (ValueError, InvalidTag) as exc:
        raise WalletError(f"{what} cannot be opened (another instance's key?)") from exc
