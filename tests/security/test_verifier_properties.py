"""Properties of the offline verifier under arbitrary and mutated input.

Whatever is scanned, ``check`` returns a verdict (never raises, never falls into
its catch-all ``internal_error``), and a text is only ever ``valid`` when it
carries a genuine token unchanged and its status was read from a fresh list.
"""

from __future__ import annotations

import itertools
import string
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.factories import NOW, City
from tests.security import forge
from wallet.errors import QRTextError
from wallet.qrtext import decode_qr_text, encode_qr_text
from wallet.verifier import ADMITTING_REASONS, REASONS, STATES, VerificationResult, Verifier

B64URL = string.ascii_letters + string.digits + "-_"
PROPERTY = settings(max_examples=300, deadline=None)


@dataclass(frozen=True)
class World:
    city: City
    verifier: Verifier
    tokens: tuple[str, ...]  # genuine: library (ES256), parking (ES256), library (EdDSA)

    @property
    def qr_texts(self) -> tuple[str, ...]:
        return tuple(encode_qr_text(t) for t in self.tokens)


@pytest.fixture(scope="module")
def world() -> World:
    city = City()
    ed_key = city.add_key(alg="EdDSA")
    tokens = (city.issue("library"), city.issue("parking"), city.issue("library", key=ed_key))
    world = World(city=city, verifier=city.verifier(), tokens=tokens)
    for text in (*world.tokens, *world.qr_texts):
        assert world.verifier.check(text, now=NOW).valid
    return world


def assert_sound(result: VerificationResult) -> None:
    """A verdict from the rules, not from the catch-all."""
    assert isinstance(result, VerificationResult)
    assert result.state in STATES
    assert result.reason != "internal_error", result.detail
    assert result.message_de and result.message_en
    assert REASONS.get(result.reason) == result.state, (result.state, result.reason)
    assert result.admit == (result.reason in ADMITTING_REASONS)


def assert_forged(result: VerificationResult) -> None:
    assert_sound(result)
    assert not result.valid
    assert result.state in ("invalid", "unknown_key"), (result.state, result.reason)
    assert result.claims == {}


# -- arbitrary text ---------------------------------------------------------------

arbitrary_text = st.one_of(
    st.text(),
    st.binary().map(lambda b: b.decode("latin-1")),
    st.text(alphabet=B64URL + ".", max_size=400),
    st.lists(st.text(alphabet=B64URL, max_size=120), min_size=0, max_size=6).map(".".join),
    st.tuples(st.sampled_from(["WP1", "wp1", "Wp1", "WP2"]), st.text(alphabet="0123456789")).map(
        "".join
    ),
    st.from_regex(r"\AWP1[0-9]{0,400}\Z"),
    # Lone surrogates: legal in a Python str, never in a token.
    st.lists(
        st.sampled_from(B64URL + ".") | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
    ).map("".join),
)


@PROPERTY
@given(text=arbitrary_text)
def test_arbitrary_text_is_never_valid_and_never_crashes(world: World, text: str) -> None:
    assert_forged(world.verifier.check(text, now=NOW))


@PROPERTY
@given(value=st.one_of(st.none(), st.integers(), st.binary(), st.lists(st.text())))
def test_non_text_input_is_malformed(world: World, value: object) -> None:
    result = world.verifier.check(value, now=NOW)
    assert_forged(result)
    assert result.reason == "malformed"


# -- mutated genuine tokens -------------------------------------------------------


@st.composite
def mutations(draw: st.DrawFn, original: str, alphabet: str) -> str:
    """Flip, insert or delete one character at a random position."""
    kind = draw(st.sampled_from(["flip", "insert", "delete"]))
    if kind == "delete":
        at = draw(st.integers(0, len(original) - 1))
        return original[:at] + original[at + 1 :]
    char = draw(st.sampled_from(alphabet) | st.characters())
    if kind == "insert":
        at = draw(st.integers(0, len(original)))
        return original[:at] + char + original[at:]
    at = draw(st.integers(0, len(original) - 1))
    if char == original[at]:
        char = alphabet[(alphabet.index(char) + 1) % len(alphabet)] if char in alphabet else "!"
    return original[:at] + char + original[at + 1 :]


@PROPERTY
@given(data=st.data(), which=st.integers(0, 2))
def test_mutated_jws_is_never_valid(world: World, data: st.DataObject, which: int) -> None:
    original = world.tokens[which]
    mutated = data.draw(mutations(original, B64URL + "."))
    assert mutated != original
    assert_forged(world.verifier.check(mutated, now=NOW))


@PROPERTY
@given(data=st.data(), which=st.integers(0, 2))
def test_mutated_qr_text_is_valid_only_if_it_decodes_to_the_same_jws(
    world: World, data: st.DataObject, which: int
) -> None:
    original, qr = world.tokens[which], world.qr_texts[which]
    mutated = data.draw(mutations(qr, string.digits))
    assert mutated != qr
    try:
        decoded: str | None = decode_qr_text(mutated)
    except QRTextError:
        decoded = None
    result = world.verifier.check(mutated, now=NOW)
    assert_sound(result)
    if decoded == original:
        # DEFLATE ignores the padding bits of its last byte, so a digit change there
        # can leave the very same token: still the genuine pass, correctly valid.
        assert result.valid
    else:
        assert_forged(result)


@pytest.mark.parametrize("qr", [False, True], ids=["jws", "qr"])
@pytest.mark.parametrize("choice", list(itertools.product(range(3), repeat=3)))
def test_swapped_segments_are_valid_only_if_they_rebuild_a_genuine_token(
    world: World, choice: tuple[int, int, int], qr: bool
) -> None:
    """Header, payload and signature each taken from one of three genuine tokens."""
    split = [t.split(".") for t in world.tokens]
    token = ".".join(split[source][segment] for segment, source in enumerate(choice))
    result = world.verifier.check(encode_qr_text(token) if qr else token, now=NOW)
    if token in world.tokens:  # e.g. both ES256 tokens share one header
        assert result.valid
    else:
        assert_forged(result)


# -- random headers with a genuine signature --------------------------------------

header_names = st.sampled_from(
    ["alg", "kid", "typ", "crit", "jku", "jwk", "x5u", "x5c", "x5t", "cty", "zip", "b64"]
) | st.text(max_size=8)
header_values = st.one_of(
    st.sampled_from(["ES256", "EdDSA", "none", "HS256", "pass+jwt", "PASS+JWT", "statuslist+jwt"]),
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=12),
    st.lists(st.text(max_size=6), max_size=3),
)


@PROPERTY
@given(extra=st.dictionaries(header_names, header_values, max_size=5), drop=st.booleans())
def test_random_header_passes_only_when_exactly_ours(
    world: World, extra: dict[str, Any], drop: bool
) -> None:
    """Signed by the city's key, a header is accepted iff it is {alg, kid, typ} as issued."""
    city = world.city
    head: dict[str, Any] = {} if drop else forge.header(city.key.kid)
    head.update(extra)
    token = forge.jws(head, forge.pass_claims(), sign=forge.signer_for(city.key.key))
    result = world.verifier.check(token, now=NOW)
    assert_sound(result)
    exact = (
        set(head) == {"alg", "kid", "typ"}
        and head["alg"] == "ES256"
        and head["kid"] == city.key.kid
        and isinstance(head["typ"], str)
        and head["typ"].lower() == "pass+jwt"
    )
    assert result.valid == exact, (head, result.reason)
    if not exact:
        assert result.claims == {}
        assert result.reason in {
            "too_long",
            "bad_header",
            "alg_none",
            "alg_mismatch",
            "crit_header",
            "forbidden_header",
            "wrong_typ",
            "unknown_kid",
        }


# -- status data that is missing or out of date -----------------------------------


@st.composite
def status_worlds(draw: st.DrawFn) -> tuple[dict[str, bool], int]:
    """Which pass types' lists the bundle holds, and minutes since the lists were signed."""
    present = {t: draw(st.booleans()) for t in ("library", "parking")}
    return present, draw(st.integers(0, 6 * 24 * 60))


@settings(max_examples=60, deadline=None)
@given(case=status_worlds(), which=st.integers(0, 2))
def test_valid_only_with_a_fresh_status_list(
    world: World, case: tuple[dict[str, bool], int], which: int
) -> None:
    present, minutes = case
    city = world.city
    tokens = {
        uri: token
        for uri, token in city.status_tokens(now=NOW - timedelta(minutes=minutes)).items()
        if any(present[t] and uri.endswith(f"/{t}-1") for t in present)
    }
    verifier = city.verifier(status_tokens=tokens)
    token = world.tokens[which]
    type_id = ("library", "parking", "library")[which]
    result = verifier.check(token, now=NOW)
    assert_sound(result)
    fresh = minutes < city.list_lifetime.total_seconds() / 60
    if not present[type_id]:
        assert result.state == "status_unchecked"
    elif not fresh:
        assert result.state == "stale_status"
    else:
        assert result.state == "valid"
    assert result.valid == (present[type_id] and fresh)
    assert result.admit == (result.valid or type_id == "library")
