"""Idempotency keys: a retried create returns the first answer instead of a second pass.

A key belongs to one actor and one request (method, path and a canonical JSON
of the body, hashed). The edge claims the key in the same transaction as the
work it protects, so the key row and the pass commit together or not at all;
the unique constraint on (actor, key) makes a concurrent duplicate fail with
:class:`KeyTakenError`, after which the edge replays what the winner stored.

The stored answer carries a claim link, whose secret the passes table keeps
only hashed. So the answer is sealed with AES-GCM under a key derived from the
client's own bearer secret: a copy of the database alone cannot open it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from wallet.errors import InputError, StateConflictError
from wallet.store.models import IdempotencyKeyRow

HEADER = "Idempotency-Key"
KEY_RE = re.compile(r"[\x20-\x7e]{1,255}")  # printable ASCII, as the header allows
SEAL_FORMAT = 1


class IdempotencyKeyReusedError(InputError):
    """The key was used before for a different request: replaying would mislead."""

    code = "idempotency_key_reused"

    def __init__(self, message: str) -> None:
        super().__init__(message, field=HEADER)


class KeyTakenError(StateConflictError):
    """A concurrent request committed the same key first; replay its answer."""

    code = "idempotency_key_in_use"


@dataclass(frozen=True)
class StoredResponse:
    """The first answer to a keyed request, ready to be sent again."""

    status_code: int
    body: Mapping[str, Any]
    headers: Mapping[str, str]


def check_key(value: str) -> str:
    """The key itself: 1-255 printable ASCII characters."""
    if not KEY_RE.fullmatch(value):
        raise InputError(f"{HEADER} must be 1-255 printable ASCII characters", field=HEADER)
    return value


def request_hash(*, method: str, path: str, body: Mapping[str, Any]) -> str:
    """SHA-256 over a canonical JSON of the request, so key order and spacing do not matter."""
    canonical = json.dumps(
        {"method": method, "path": path, "body": body},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,  # lone surrogates and all: the hash never fails to encode
        allow_nan=False,
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _sealing_key(secret: str, *, actor: str, key: str) -> AESGCM:
    """One AES key per (bearer secret, actor, idempotency key)."""
    info = b"wallet idempotency v1\x00" + actor.encode() + b"\x00" + key.encode()
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
        secret.encode("utf-8")
    )
    return AESGCM(derived)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


def seal(
    response: StoredResponse, *, secret: str, actor: str, key: str, digest: str
) -> dict[str, Any]:
    """Encrypt an answer for storage; only the same bearer secret opens it again."""
    plain = json.dumps(
        {"body": response.body, "headers": dict(response.headers)}, separators=(",", ":")
    ).encode("utf-8")
    nonce = os.urandom(12)
    data = _sealing_key(secret, actor=actor, key=key).encrypt(nonce, plain, digest.encode())
    return {"v": SEAL_FORMAT, "nonce": _b64(nonce), "data": _b64(data)}


def unseal(row: IdempotencyKeyRow, *, secret: str, actor: str, key: str) -> StoredResponse:
    """Decrypt a stored answer.

    :raises StateConflictError: the answer cannot be opened (another secret sealed it).
    """
    sealed = row.response
    try:
        if sealed.get("v") != SEAL_FORMAT:
            raise ValueError("unknown seal format")
        nonce = base64.urlsafe_b64decode(sealed["nonce"])
        data = base64.urlsafe_b64decode(sealed["data"])
        plain = _sealing_key(secret, actor=actor, key=key).decrypt(
            nonce, data, row.request_hash.encode()
        )
        stored = json.loads(plain)
    except (InvalidTag, KeyError, TypeError, ValueError) as exc:
        raise StateConflictError(
            f"the first answer for this {HEADER} cannot be replayed; use a new key",
            code="idempotency_key_in_use",
        ) from exc
    return StoredResponse(
        status_code=row.status_code, body=stored["body"], headers=stored["headers"]
    )


def find(session: Session, *, actor: str, key: str) -> IdempotencyKeyRow | None:
    return session.scalars(
        select(IdempotencyKeyRow)
        .where(IdempotencyKeyRow.actor == actor)
        .where(IdempotencyKeyRow.key == key)
    ).first()


def replay(
    row: IdempotencyKeyRow, *, digest: str, secret: str, actor: str, key: str
) -> StoredResponse:
    """The stored answer if the request is the same one; refuses a reused key.

    :raises IdempotencyKeyReusedError: the key came with a different request before.
    """
    if row.request_hash != digest:
        raise IdempotencyKeyReusedError(
            f"this {HEADER} was used for a different request; use a new key for a new request"
        )
    return unseal(row, secret=secret, actor=actor, key=key)


def answer_for(
    session: Session, *, actor: str, key: str, digest: str, secret: str
) -> StoredResponse | None:
    """The stored answer to an earlier request with this key, or None if there was none.

    :raises IdempotencyKeyReusedError: the key came with a different request before.
    """
    row = find(session, actor=actor, key=key)
    if row is None:
        return None
    return replay(row, digest=digest, secret=secret, actor=actor, key=key)


@dataclass(frozen=True)
class Claim:
    """A key taken by this transaction; :func:`complete` stores the answer under it."""

    id: int


def claim(session: Session, *, actor: str, key: str, digest: str, now: datetime) -> Claim:
    """Take the key for this transaction, before the work it protects.

    Claiming first means a concurrent duplicate waits on (PostgreSQL) or is
    refused by (SQLite) the unique index before it issues anything.

    :raises KeyTakenError: another request holds the key; the caller must roll
        back and replay. The session is unusable afterwards.
    """
    row = IdempotencyKeyRow(
        actor=actor, key=key, request_hash=digest, status_code=0, response={}, created_at=now
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        raise KeyTakenError(
            f"a request with this {HEADER} is being processed; retry shortly"
        ) from exc
    return Claim(id=row.id)


def complete(
    session: Session,
    claimed: Claim,
    response: StoredResponse,
    *,
    secret: str,
) -> None:
    """Store the answer on the claimed row, in the same transaction as the work."""
    row = session.get(IdempotencyKeyRow, claimed.id)  # in the session already: no query
    assert row is not None, "complete() runs in the transaction that claimed the key"
    row.status_code = response.status_code
    row.response = seal(
        response, secret=secret, actor=row.actor, key=row.key, digest=row.request_hash
    )
    session.flush()
