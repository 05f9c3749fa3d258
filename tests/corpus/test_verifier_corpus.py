"""The shared corpus, run through the Python verifier: the same vectors the scanner's
JavaScript verifier must pass (tests/js/verifier_corpus.test.mjs)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.corpus.verifier_vectors import CORPUS
from wallet.bundle import root_public_key, verify_bundle
from wallet.errors import BundleError
from wallet.verifier import Verifier

DATA: dict[str, Any] = json.loads(CORPUS.read_text(encoding="utf-8"))
VECTORS = DATA["vectors"]


def _moment(vector: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(vector["now"], UTC)


def _bundle(vector: dict[str, Any]) -> Any:
    root = root_public_key(DATA["roots"][vector["root"]].encode("ascii"))
    token = DATA["bundles"][vector["bundle"]]
    return verify_bundle(token, root, now=_moment(vector), held_version=vector["held_version"])


@pytest.mark.parametrize(
    "vector", [v for v in VECTORS if v["kind"] == "pass"], ids=lambda v: v["name"]
)
def test_the_python_verifier_gives_every_pass_vector_its_verdict(vector: dict[str, Any]) -> None:
    result = Verifier(_bundle(vector)).check(vector["input"], now=_moment(vector))
    got = {"state": result.state, "reason": result.reason, "admit": result.admit}
    assert got == vector["expect"], result.detail


@pytest.mark.parametrize(
    "vector", [v for v in VECTORS if v["kind"] == "bundle"], ids=lambda v: v["name"]
)
def test_the_python_verifier_judges_every_bundle_vector(vector: dict[str, Any]) -> None:
    try:
        _bundle(vector)
    except BundleError as exc:
        outcome = exc.code
    else:
        outcome = "ok"
    assert outcome == vector["expect"]["bundle"]


def test_the_corpus_covers_every_reason_a_scan_can_end_with() -> None:
    """Reasons only the service or a broken device produce are the exceptions."""
    covered = {v["expect"]["reason"] for v in VECTORS if v["kind"] == "pass"}
    never_from_a_scan = {"status_unknown", "internal_error", "unknown_pass_type", "token_invalid"}
    from wallet.verifier import REASONS

    assert set(REASONS) - never_from_a_scan - covered == set()
