"""The shared plate-index corpus, run through wallet.plateindex: the same vectors the
scanner's JavaScript index must pass (tests/js/plate_index_corpus.test.mjs). And the
service's rule (judge over the database's permits, as services.plate_checks does) gives
every check the verdict the device gives offline."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.corpus.plate_index_vectors import CORPUS, build
from wallet.bundle import root_public_key
from wallet.codec import b64url_decode
from wallet.errors import BundleError, InputError
from wallet.plateindex import (
    ENTRY,
    FORMAT,
    HASH_BYTES,
    INDEX_TYP,
    MAX_INDEX_LENGTH,
    MAX_MINUTES,
    STATES,
    Found,
    PlateIndex,
    PlateVerdict,
    judge,
    plate_readings,
    verify_index,
)
from wallet.plates import MAX_ZONE_LENGTH, normalise_zone

DATA: dict[str, Any] = json.loads(CORPUS.read_text(encoding="utf-8"))
VECTORS = DATA["vectors"]
CHECKS = [v for v in VECTORS if v["kind"] == "check"]


def _moment(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _index(vector: dict[str, Any], now: int) -> PlateIndex:
    root = root_public_key(DATA["roots"][vector["root"]].encode("ascii"))
    token = DATA["indexes"][vector["index"]]
    return verify_index(token, root, now=_moment(now), held_version=vector.get("held_version"))


def _key(vector: dict[str, Any]) -> bytes:
    return b64url_decode(DATA["keys"][vector["key"]], what="key")


@pytest.mark.parametrize(
    "vector", [v for v in VECTORS if v["kind"] == "index"], ids=lambda v: v["name"]
)
def test_the_python_index_judges_every_index_vector(vector: dict[str, Any]) -> None:
    try:
        index = _index(vector, vector["now"])
    except BundleError as exc:
        got: dict[str, Any] = {"index": exc.code}
        assert vector["why"] in exc.message
    else:
        got = {"index": "ok", "version": index.version, "length": len(index)}
        got["zones"] = list(index.zones)
    assert got == vector["expect"]


@pytest.mark.parametrize("vector", CHECKS, ids=lambda v: v["name"])
def test_the_python_index_gives_every_check_vector_its_answer(vector: dict[str, Any]) -> None:
    index = _index(vector, vector["verified_at"])
    try:
        got = index.check(_key(vector), vector["text"], vector["zone"], now=_moment(vector["now"]))
    except InputError as exc:
        assert {"error": exc.code, "field": exc.field} == vector["expect"]
    except BundleError as exc:
        assert {"error": exc.code} == vector["expect"]
    else:
        assert got.to_json() == vector["expect"]


def _online(vector: dict[str, Any]) -> dict[str, Any]:
    """services.plate_checks.check_plate without the database: the permits as rows."""
    permits = DATA["permits"][vector["index"]]
    try:
        found = plate_readings(vector["text"])
        where = normalise_zone(vector["zone"])
    except InputError as exc:
        return {"error": exc.code, "field": exc.field}
    hits = {
        plate: [
            Found(p["zone"], p["state"], _moment(p["valid_from"]), _moment(p["valid_until"]))
            for p in permits
            if p["plate"] == plate
        ]
        for plate in found
    }
    return judge(hits, where, now=_moment(vector["now"])).to_json()


# The service has no index to be stale, nor a key to mismatch.
ONLINE = [v for v in CHECKS if not v["expect"].get("error", "").startswith("bundle_")]


@pytest.mark.parametrize("vector", ONLINE, ids=lambda v: v["name"])
def test_online_the_service_answers_as_the_device_does_offline(vector: dict[str, Any]) -> None:
    """Only where the index rounds a time to the minute (never in the car's favour) may
    the two differ, and the vector says how."""
    assert _online(vector) == vector.get("online", vector["expect"])


def test_the_corpus_is_what_its_generator_writes() -> None:
    """Hand-written expectations only change in plate_index_vectors.py, never in the JSON."""
    fresh = build().to_json()
    strip = ("roots", "indexes")  # fresh root keys, fresh signatures
    assert {k: v for k, v in fresh.items() if k not in strip} == {
        k: v for k, v in DATA.items() if k not in strip
    }


def test_the_corpus_names_the_constants_the_javascript_index_must_share() -> None:
    assert DATA["constants"] == {
        "typ": INDEX_TYP,
        "format": FORMAT,
        "entry": ENTRY,
        "hash_bytes": HASH_BYTES,
        "states": list(STATES),
        "max_zone_length": MAX_ZONE_LENGTH,
        "max_index_length": MAX_INDEX_LENGTH,
        "max_minutes": MAX_MINUTES,
    }


def test_the_corpus_covers_every_verdict_and_refusal() -> None:
    verdicts = {v["expect"].get("verdict") for v in CHECKS} - {None}
    refusals = {v["expect"]["index"] for v in VECTORS if v["kind"] == "index"}
    assert verdicts == {verdict.value for verdict in PlateVerdict}
    assert refusals == {"ok", "bundle_invalid", "bundle_expired", "bundle_rollback"}
