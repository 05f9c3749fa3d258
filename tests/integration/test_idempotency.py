"""Idempotency keys against real SQLite and PostgreSQL: claim, seal, replay, races."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.factories import NOW
from wallet.errors import InputError, StateConflictError
from wallet.services import idempotency
from wallet.services.idempotency import StoredResponse
from wallet.store.db import Database
from wallet.store.models import IdempotencyKeyRow

SECRET = "wpt_secret-of-the-client"
ANSWER = StoredResponse(
    status_code=201,
    body={"serial": "AAAAAAAAAAAA", "claim_url": "https://pass.example/p/the-claim-secret"},
    headers={"Location": "/api/v1/passes/AAAAAAAAAAAA"},
)


def digest(body: Mapping[str, Any] | None = None) -> str:
    return idempotency.request_hash(
        method="POST", path="/api/v1/passes", body={"type": "library"} if body is None else body
    )


def store(db: Database, *, actor: str = "token:a", key: str = "k1", request: str = "") -> None:
    with db.transaction(write=True) as session:
        row = idempotency.claim(session, actor=actor, key=key, digest=request or digest(), now=NOW)
        idempotency.complete(session, row, ANSWER, secret=SECRET)


def rows(db: Database) -> int:
    with db.transaction(write=False) as session:
        return session.scalar(select(func.count()).select_from(IdempotencyKeyRow)) or 0


def test_a_stored_answer_is_replayed_only_with_the_same_secret(db: Database) -> None:
    store(db)
    with db.transaction(write=False) as session:
        row = idempotency.find(session, actor="token:a", key="k1")
        assert row is not None and row.status_code == 201
        assert "the-claim-secret" not in json.dumps(row.response)  # sealed at rest
        again = idempotency.replay(row, digest=digest(), secret=SECRET, actor="token:a", key="k1")
        assert again == ANSWER
        with pytest.raises(StateConflictError) as info:
            idempotency.replay(row, digest=digest(), secret="wpt_other", actor="token:a", key="k1")
        assert info.value.code == "idempotency_key_in_use"
        assert idempotency.find(session, actor="token:b", key="k1") is None


def test_a_key_reused_for_another_request_is_refused(db: Database) -> None:
    store(db)
    with db.transaction(write=False) as session:
        row = idempotency.find(session, actor="token:a", key="k1")
        assert row is not None
        with pytest.raises(idempotency.IdempotencyKeyReusedError) as info:
            idempotency.replay(
                row, digest=digest({"type": "parking"}), secret=SECRET, actor="token:a", key="k1"
            )
    assert (info.value.code, info.value.field) == ("idempotency_key_reused", "Idempotency-Key")


def test_a_second_claim_fails_and_leaves_nothing(db: Database) -> None:
    store(db)
    with pytest.raises(idempotency.KeyTakenError):
        store(db)
    assert rows(db) == 1
    store(db, actor="token:b")  # keys are per actor
    store(db, key="k2")
    assert rows(db) == 3


def test_the_seal_is_bound_to_the_request(db: Database) -> None:
    """A sealed answer moved onto another request's row does not open."""
    store(db, key="k1")
    store(db, key="k2", request=digest({"other": True}))
    with db.transaction(write=True) as session:
        first = idempotency.find(session, actor="token:a", key="k1")
        second = idempotency.find(session, actor="token:a", key="k2")
        assert first is not None and second is not None
        second.response = first.response
    with db.transaction(write=False) as session:
        moved = idempotency.find(session, actor="token:a", key="k2")
        assert moved is not None
        with pytest.raises(StateConflictError):
            idempotency.unseal(moved, secret=SECRET, actor="token:a", key="k2")


def test_the_request_hash_is_canonical() -> None:
    a = idempotency.request_hash(method="POST", path="/p", body={"a": 1, "b": [1, {"c": "ü"}]})
    b = idempotency.request_hash(method="POST", path="/p", body={"b": [1, {"c": "ü"}], "a": 1})
    assert a == b and len(a) == 64
    assert a != idempotency.request_hash(
        method="POST", path="/q", body={"a": 1, "b": [1, {"c": "ü"}]}
    )
    assert a != idempotency.request_hash(
        method="POST", path="/p", body={"a": 1, "b": [1, {"c": "u"}]}
    )
    # Lone surrogates reach here from JSON escapes; hashing must not fail on them.
    assert idempotency.request_hash(method="POST", path="/p", body={"x": "\ud800"})


@pytest.mark.parametrize(
    "key", ["a", "~" * 255, "order 4711", "550e8400-e29b-41d4-a716-446655440000"]
)
def test_good_keys_pass(key: str) -> None:
    assert idempotency.check_key(key) == key


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "schlüssel", "nul\x00", "del\x7f"])
def test_bad_keys_are_named(key: str) -> None:
    with pytest.raises(InputError) as info:
        idempotency.check_key(key)
    assert info.value.field == "Idempotency-Key"


def test_racing_claims_let_exactly_one_through(db: Database) -> None:
    """8 transactions claim one key at once: one commits, the others are told to replay."""
    barrier = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def claim() -> None:
        barrier.wait()
        try:
            with db.transaction(write=True) as session:
                row = idempotency.claim(
                    session, actor="token:a", key="race", digest=digest(), now=NOW
                )
                time.sleep(0.05)  # the work the key protects; twins must wait or fail
                idempotency.complete(session, row, ANSWER, secret=SECRET)
            outcome = "claimed"
        except idempotency.KeyTakenError:
            outcome = "taken"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["claimed"] + ["taken"] * 7
    with db.transaction(write=False) as session:
        row = idempotency.find(session, actor="token:a", key="race")
        assert row is not None
        assert (
            idempotency.replay(row, digest=digest(), secret=SECRET, actor="token:a", key="race")
            == ANSWER
        )
    assert rows(db) == 1
