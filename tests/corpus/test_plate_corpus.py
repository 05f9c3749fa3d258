"""The shared plate corpus, run through wallet.plates: the same vectors the scanner's
JavaScript reader must pass (tests/js/plate_corpus.test.mjs)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.corpus.plate_vectors import (
    CORPUS,
    DISTRICT,
    LETTERS,
    NOT_A_PLATE,
    NUMBER,
    TOO_LONG,
    TOO_MANY,
    render,
)
from wallet.plates import PlateError, foreign_plate, lookup_forms, parse_plate, readings

VECTORS: list[dict[str, Any]] = json.loads(CORPUS.read_text(encoding="utf-8"))


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_readings_finds_every_plate_of_the_vector_in_order(vector: dict[str, Any]) -> None:
    assert [p.display for p in readings(vector["input"])] == vector["readings"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_parse_plate_gives_the_vectors_plate_or_its_message(vector: dict[str, Any]) -> None:
    if "parse" in vector:
        assert parse_plate(vector["input"]).display == vector["parse"]
    else:
        with pytest.raises(PlateError) as caught:
            parse_plate(vector["input"])
        assert str(caught.value) == vector["parse_error"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_a_foreign_plate_is_read_only_with_its_country_sign(vector: dict[str, Any]) -> None:
    assert foreign_plate(vector["input"]) == vector.get("input_foreign")
    assert lookup_forms(vector["input"]) == vector.get("lookup", vector["readings"])


def test_the_committed_corpus_is_what_the_generator_writes() -> None:
    assert CORPUS.read_text(encoding="utf-8") == render(), (
        "run python -m tests.corpus.plate_vectors"
    )


def test_the_corpus_has_every_reason_parse_plate_gives() -> None:
    ambiguous = "write where the district code ends: "
    given = {
        ambiguous if v["parse_error"].startswith(ambiguous) else v["parse_error"]
        for v in VECTORS
        if "parse_error" in v
    }
    assert given == {ambiguous, NOT_A_PLATE, DISTRICT, LETTERS, NUMBER, TOO_MANY, TOO_LONG}
