"""Status lists: the draft's vectors, strict decoding of hostile input, index allocation.

The vectors in ``vectors/`` are copied from draft-ietf-oauth-status-list-18 (18 February
2026): sections 4.1/4.2 (the short 1-bit and 2-bit examples) and Appendix C (2^20 entries
with 1, 2, 4 and 8 bits). Their wrapped ``lst`` lines are joined; each file also keeps the
draft's CBOR encoding, whose byte string must equal the decoded ``lst`` (a transcription check).
"""

from __future__ import annotations

import base64
import json
import random
import re
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wallet.errors import StatusListError, StatusListFullError
from wallet.status import (
    DEFAULT_MAX_SIZE,
    INVALID,
    MIN_LIST_SIZE,
    SUSPENDED,
    VALID,
    Status,
    StatusList,
    allocate_index,
)

VECTORS = Path(__file__).parent / "vectors"
APPENDIX_VECTORS = sorted(VECTORS.glob("appendix_c_*.json"))
SECTION_4_VECTORS = sorted(VECTORS.glob("section_4_*.json"))
BITS = (1, 2, 4, 8)
MIB = 1 << 20
# zlib-ng and other DEFLATE implementations may compress differently; the draft's strings
# must still decode, but byte-identical output is only expected from classic zlib.
CLASSIC_ZLIB = "ng" not in zlib.ZLIB_RUNTIME_VERSION


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def pack(assignments: dict[int, int], *, size: int, bits: int) -> bytes:
    """Pack statuses LSB-first, written independently of StatusList to check it."""
    packed = bytearray((size * bits + 7) // 8)
    for index, value in assignments.items():
        position = index * bits
        packed[position // 8] |= value << (position % 8)
    return bytes(packed)


def nonzero_entries(data: bytes, bits: int) -> dict[int, int]:
    """Every non-zero entry of a packed array, found via its non-zero bytes."""
    per_byte, mask = 8 // bits, (1 << bits) - 1
    found = {}
    for match in re.finditer(rb"[^\x00]", data):
        byte = match.group()[0]
        for slot in range(per_byte):
            value = (byte >> (slot * bits)) & mask
            if value:
                found[match.start() * per_byte + slot] = value
    return found


def zeros_stream(total: int, *, level: int = 9) -> bytes:
    """ZLIB stream of `total` zero bytes, compressed 1 MiB at a time to stay memory-cheap."""
    compressor = zlib.compressobj(level)
    parts = []
    chunk = bytes(MIB)
    remaining = total
    while remaining:
        step = min(remaining, MIB)
        parts.append(compressor.compress(chunk[:step]))
        remaining -= step
    parts.append(compressor.flush())
    return b"".join(parts)


@pytest.fixture(scope="module")
def bomb_100mb() -> str:
    return b64url(zeros_stream(100 * MIB))


# --- the draft's examples and test vectors ---------------------------------------------


@pytest.fixture(params=SECTION_4_VECTORS, ids=lambda path: path.stem)
def section_4(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load(request.param)


@pytest.fixture(params=APPENDIX_VECTORS, ids=lambda path: path.stem)
def appendix(request: pytest.FixtureRequest) -> dict[str, Any]:
    vector = load(request.param)
    vector["assignments"] = {int(k): v for k, v in vector["assignments"].items()}
    return vector


def test_all_vector_files_are_present() -> None:
    assert [load(p)["bits"] for p in APPENDIX_VECTORS] == [1, 2, 4, 8]
    assert [load(p)["bits"] for p in SECTION_4_VECTORS] == [1, 2]


def test_section_4_example_decodes_to_its_statuses(section_4: dict[str, Any]) -> None:
    status_list = StatusList.from_encoded(section_4["lst"], section_4["bits"])

    assert status_list.bits == section_4["bits"]
    assert status_list.to_bytes() == bytes.fromhex(section_4["byte_array_hex"])
    statuses = section_4["statuses"]
    assert len(statuses) == section_4["size"] == len(status_list)
    assert [status_list.get(i) for i in range(len(status_list))] == statuses


def test_section_4_example_is_built_and_encoded_as_in_the_draft(
    section_4: dict[str, Any],
) -> None:
    status_list = StatusList(section_4["size"], bits=section_4["bits"])
    for index, value in enumerate(section_4["statuses"]):
        status_list.set(index, value)

    assert status_list.to_bytes() == bytes.fromhex(section_4["byte_array_hex"])
    encoded = status_list.encode()
    assert StatusList.from_encoded(encoded, section_4["bits"]) == status_list
    assert b64url_decode(section_4["lst"]) == bytes.fromhex(section_4["compressed_hex"])
    if CLASSIC_ZLIB:
        assert encoded == section_4["lst"]


def test_section_4_json_claim_matches_the_draft() -> None:
    status_list = StatusList.from_bytes(bytes.fromhex("b9a3"), 1)

    assert status_list.to_claim() == {"bits": 1, "lst": "eNrbuRgAAhcBXQ"}
    assert status_list.to_json() == '{"bits":1,"lst":"eNrbuRgAAhcBXQ"}'
    assert StatusList.from_claim(json.loads(status_list.to_json())) == status_list


def test_appendix_vector_file_agrees_with_its_cbor_encoding(appendix: dict[str, Any]) -> None:
    cbor = bytes.fromhex(appendix["cbor_hex"])
    compressed = b64url_decode(appendix["lst"])

    assert cbor.endswith(compressed)
    # {"bits": n, "lst": h'...'}: map(2), "bits", n, "lst", then the byte string.
    assert cbor.startswith(bytes.fromhex("a26462697473") + bytes([appendix["bits"]]) + b"\x63lst")


def test_appendix_vector_decodes_to_exactly_its_assignments(appendix: dict[str, Any]) -> None:
    bits, size = appendix["bits"], appendix["size"]
    assignments: dict[int, int] = appendix["assignments"]
    status_list = StatusList.from_encoded(appendix["lst"], bits)

    assert size == 2**20
    assert len(status_list) == size
    assert status_list.bits == bits
    for index, value in assignments.items():
        assert status_list.get(index) == value, index
    # Every other entry is VALID: the whole array, then a sample through get().
    assert status_list.to_bytes() == pack(assignments, size=size, bits=bits)
    nonzero = {i: v for i, v in assignments.items() if v}
    assert nonzero_entries(status_list.to_bytes(), bits) == nonzero
    rng = random.Random(bits)
    neighbours = {i + d for i in assignments for d in (-1, 1) if 0 <= i + d < size}
    sample = (neighbours | set(rng.sample(range(size), 2000))) - set(assignments)
    assert sample
    assert all(status_list.get(i) == VALID for i in sample)
    assert status_list.get(size - 1) == VALID


def test_appendix_vector_round_trips_from_its_assignments(appendix: dict[str, Any]) -> None:
    bits, size = appendix["bits"], appendix["size"]
    status_list = StatusList(size, bits=bits)
    for index, value in appendix["assignments"].items():
        status_list.set(index, value)

    encoded = status_list.encode()
    decoded = StatusList.from_encoded(encoded, bits)

    assert decoded == status_list
    assert decoded == StatusList.from_encoded(appendix["lst"], bits)
    if CLASSIC_ZLIB:
        assert encoded == appendix["lst"]


def test_eight_bit_vector_uses_every_byte_value_once() -> None:
    vector = load(VECTORS / "appendix_c_4_8bit.json")

    assert sorted(vector["assignments"].values()) == list(range(256))


# --- packing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bits", "index", "value", "packed"),
    [
        (1, 0, 1, b"\x01\x00"),
        (1, 7, 1, b"\x80\x00"),
        (1, 8, 1, b"\x00\x01"),
        (2, 1, 3, b"\x0c\x00"),
        (2, 3, 2, b"\x80\x00"),
        (4, 1, 0xA, b"\xa0\x00"),
        (4, 2, 0xF, b"\x00\x0f"),
        (8, 1, 0xAB, b"\x00\xab"),
    ],
)
def test_set_packs_least_significant_bits_first(
    bits: int, index: int, value: int, packed: bytes
) -> None:
    status_list = StatusList(16 // bits, bits=bits)
    status_list.set(index, value)

    assert status_list.to_bytes() == packed
    assert status_list.get(index) == value


def test_set_overwrites_all_bits_of_an_entry_and_no_neighbour() -> None:
    status_list = StatusList.from_bytes(b"\xff\xff", 2)
    status_list.set(2, VALID)
    assert status_list.to_bytes() == b"\xcf\xff"
    status_list.set(2, SUSPENDED)
    assert status_list.to_bytes() == b"\xef\xff"
    assert [status_list.get(i) for i in range(8)] == [3, 3, 2, 3, 3, 3, 3, 3]


def test_new_list_is_all_valid_and_sized_in_whole_bytes() -> None:
    status_list = StatusList(10, bits=1)

    assert len(status_list) == 10
    assert status_list.to_bytes() == b"\x00\x00"
    assert all(status_list.get(i) == VALID for i in range(10))


def test_decoded_length_counts_every_entry_of_the_byte_array() -> None:
    # The wire format has no size: 10 one-bit entries travel as 2 bytes, 16 entries.
    status_list = StatusList(10, bits=1)
    status_list.set(9, INVALID)

    decoded = StatusList.from_encoded(status_list.encode(), 1)

    assert len(decoded) == 16
    assert decoded.get(9) == INVALID
    assert decoded.to_bytes() == status_list.to_bytes()


def test_status_values_match_the_draft() -> None:
    assert (VALID, INVALID, SUSPENDED) == (0, 1, 2)
    assert [Status.VALID, Status.INVALID, Status.SUSPENDED] == [VALID, INVALID, SUSPENDED]


def test_set_accepts_status_members() -> None:
    status_list = StatusList(4, bits=2)
    status_list.set(3, Status.SUSPENDED)

    assert status_list.get(3) == SUSPENDED
    assert type(status_list.get(3)) is int


def test_to_bytes_is_a_copy() -> None:
    status_list = StatusList(8, bits=1)
    copy = bytearray(status_list.to_bytes())
    copy[0] = 0xFF

    assert status_list.get(0) == VALID


def test_equality_compares_bits_and_entries() -> None:
    assert StatusList(8, bits=1) == StatusList.from_bytes(b"\x00", 1)
    assert StatusList(8, bits=1) != StatusList.from_bytes(b"\x01", 1)
    assert StatusList(4, bits=2) != StatusList(8, bits=1)
    assert StatusList(8, bits=1) != "StatusList(size=8, bits=1)"


# --- strict decoding -------------------------------------------------------------------

VALID_LST = "eNrbuRgAAhcBXQ"


@pytest.mark.parametrize(
    "lst",
    [
        pytest.param("", id="empty"),
        pytest.param(VALID_LST + "==", id="padding"),
        pytest.param(VALID_LST + "=", id="short-padding"),
        pytest.param(" " + VALID_LST, id="leading-space"),
        pytest.param(VALID_LST + "\n", id="trailing-newline"),
        pytest.param(VALID_LST[:7] + " " + VALID_LST[7:], id="inner-space"),
        pytest.param(VALID_LST[:7] + "\t" + VALID_LST[7:], id="inner-tab"),
        pytest.param(VALID_LST[:7] + "\r\n     " + VALID_LST[7:], id="draft-style-wrap"),
        pytest.param("\ufeff" + VALID_LST, id="bom"),
        pytest.param(VALID_LST + "\x00", id="nul"),
        pytest.param("eNrbuRgAAhcBX\u0661", id="arabic-indic-digit"),
        pytest.param("\uff45NrbuRgAAhcBXQ", id="fullwidth-letter"),
        pytest.param("eNrbuRgAAhcBXé", id="accented-letter"),
        pytest.param("eNrbuRgAAhcBX.", id="dot"),
        pytest.param("eNrbuRgAAhcBXR", id="non-canonical-trailing-bits"),
        pytest.param(VALID_LST + "AAA", id="impossible-length"),
    ],
)
def test_rejects_malformed_base64url(lst: str) -> None:
    with pytest.raises(StatusListError):
        StatusList.from_encoded(lst, 1)


def test_the_valid_lst_used_for_malformed_cases_is_itself_accepted() -> None:
    assert StatusList.from_encoded(VALID_LST, 1).to_bytes() == b"\xb9\xa3"


def test_rejects_standard_base64_alphabet() -> None:
    lst = load(VECTORS / "appendix_c_4_8bit.json")["lst"]
    assert "-" in lst
    assert "_" in lst
    standard = lst.replace("-", "+").replace("_", "/")
    assert base64.b64decode(standard + "=" * (-len(standard) % 4)) == b64url_decode(lst)

    with pytest.raises(StatusListError, match="base64url"):
        StatusList.from_encoded(standard, 8)
    with pytest.raises(StatusListError):
        StatusList.from_encoded(lst.replace("-", "+"), 8)
    with pytest.raises(StatusListError):
        StatusList.from_encoded(lst.replace("_", "/"), 8)


@pytest.mark.parametrize("lst", [b"eNrbuRgAAhcBXQ", None, 1, ["eNrbuRgAAhcBXQ"]])
def test_rejects_lst_that_is_not_text(lst: object) -> None:
    with pytest.raises(StatusListError):
        StatusList.from_encoded(lst, 1)  # type: ignore[arg-type]


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def _gzip(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


GOOD_STREAM = zlib.compress(b"\xb9\xa3", 9)


@pytest.mark.parametrize(
    "compressed",
    [
        pytest.param(b"not zlib at all", id="not-zlib"),
        pytest.param(_raw_deflate(b"\xb9\xa3"), id="raw-deflate"),
        pytest.param(_gzip(b"\xb9\xa3"), id="gzip"),
        pytest.param(GOOD_STREAM[:-1], id="truncated-checksum"),
        pytest.param(GOOD_STREAM[:-4], id="missing-checksum"),
        pytest.param(GOOD_STREAM[:2], id="header-only"),
        pytest.param(GOOD_STREAM[:-1] + bytes([GOOD_STREAM[-1] ^ 1]), id="bad-checksum"),
        pytest.param(GOOD_STREAM[:3] + b"\xff" + GOOD_STREAM[4:], id="corrupt-data"),
        pytest.param(GOOD_STREAM + b"\x00", id="trailing-byte"),
        pytest.param(GOOD_STREAM + GOOD_STREAM, id="second-stream"),
        pytest.param(zlib.compress(b"", 9), id="empty-array"),
    ],
)
def test_rejects_bad_zlib(compressed: bytes) -> None:
    with pytest.raises(StatusListError):
        StatusList.from_encoded(b64url(compressed), 1)


def test_zlib_errors_are_translated_with_their_cause() -> None:
    with pytest.raises(StatusListError) as info:
        StatusList.from_encoded(b64url(b"not zlib at all"), 1)

    assert isinstance(info.value.__cause__, zlib.error)
    assert info.value.code == "status_list_invalid"


def test_accepts_a_list_exactly_at_the_cap_and_rejects_one_byte_more() -> None:
    at_cap = b64url(zlib.compress(bytes(1024), 9))
    over_cap = b64url(zlib.compress(bytes(1025), 9))

    assert len(StatusList.from_encoded(at_cap, 8, max_size=1024)) == 1024
    with pytest.raises(StatusListError, match="cap"):
        StatusList.from_encoded(over_cap, 8, max_size=1024)


def test_rejects_zlib_bomb_with_small_cap(bomb_100mb: str) -> None:
    assert len(bomb_100mb) < 200_000  # 100 MiB of zeros hidden in ~136 KB of text

    with pytest.raises(StatusListError, match="cap"):
        StatusList.from_encoded(bomb_100mb, 1, max_size=MIB)


def test_rejects_zlib_bomb_with_default_cap_without_inflating_it(bomb_100mb: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(StatusListError, match="cap"):
            StatusList.from_encoded(bomb_100mb, 1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 3 * DEFAULT_MAX_SIZE < 100 * MIB


def test_default_cap_is_exact() -> None:
    at_cap = b64url(zeros_stream(DEFAULT_MAX_SIZE))
    over_cap = b64url(zeros_stream(DEFAULT_MAX_SIZE + 1))

    assert len(StatusList.from_encoded(at_cap, 8)) == DEFAULT_MAX_SIZE
    with pytest.raises(StatusListError, match="cap"):
        StatusList.from_encoded(over_cap, 8)


def test_rejects_text_longer_than_any_list_within_the_cap() -> None:
    # Incompressible bytes: the stream is honest, but larger than a 1 KiB cap allows.
    noise = random.Random(7).randbytes(4096)
    lst = b64url(zlib.compress(noise, 9))

    assert len(StatusList.from_encoded(lst, 8)) == 4096
    with pytest.raises(StatusListError, match="longer"):
        StatusList.from_encoded(lst, 8, max_size=1024)


@pytest.mark.parametrize("max_size", [0, -1, True, 1.5])
def test_rejects_bad_cap(max_size: Any) -> None:
    with pytest.raises(StatusListError):
        StatusList.from_encoded(VALID_LST, 1, max_size=max_size)


BAD_BITS = [0, 3, 5, 6, 7, 16, -1, 256, True, 1.0, "1", None]


@pytest.mark.parametrize("bits", BAD_BITS)
def test_rejects_bits_outside_1_2_4_8(bits: Any) -> None:
    with pytest.raises(StatusListError):
        StatusList.from_encoded(VALID_LST, bits)
    with pytest.raises(StatusListError):
        StatusList(16, bits=bits)
    with pytest.raises(StatusListError):
        StatusList.from_bytes(b"\xb9\xa3", bits)


@pytest.mark.parametrize("size", [0, -1, True, 1.5, "16", None])
def test_rejects_bad_size(size: Any) -> None:
    with pytest.raises(StatusListError):
        StatusList(size, bits=1)


@pytest.mark.parametrize("data", [b"", bytearray(), "b9a3", [0xB9]])
def test_from_bytes_rejects_empty_or_non_bytes(data: Any) -> None:
    with pytest.raises(StatusListError):
        StatusList.from_bytes(data, 1)


@pytest.mark.parametrize("index", [-1, 16, 17, 10**30, True, False, 1.0, "0", None])
def test_rejects_index_out_of_range(index: Any) -> None:
    status_list = StatusList(16, bits=1)

    with pytest.raises(StatusListError):
        status_list.get(index)
    with pytest.raises(StatusListError):
        status_list.set(index, INVALID)
    assert status_list.to_bytes() == b"\x00\x00"


def test_last_index_is_in_range() -> None:
    status_list = StatusList(16, bits=1)
    status_list.set(15, INVALID)

    assert status_list.get(15) == INVALID


@pytest.mark.parametrize(
    ("bits", "value"),
    [
        (1, 2),
        (1, -1),
        (1, SUSPENDED),
        (1, Status.SUSPENDED),
        (2, 4),
        (4, 16),
        (8, 256),
        (8, -1),
        (1, True),
        (1, 1.0),
        (1, "1"),
        (1, None),
    ],
)
def test_rejects_value_out_of_range(bits: int, value: Any) -> None:
    status_list = StatusList(8, bits=bits)

    with pytest.raises(StatusListError):
        status_list.set(0, value)
    assert status_list.to_bytes() == bytes(bits)


@pytest.mark.parametrize("bits", BITS)
def test_accepts_the_largest_value_for_bits(bits: int) -> None:
    status_list = StatusList(8, bits=bits)
    status_list.set(7, (1 << bits) - 1)

    assert status_list.get(7) == (1 << bits) - 1
    assert status_list.get(6) == VALID


# --- the status_list claim -----------------------------------------------------------


def test_from_claim_accepts_aggregation_uri() -> None:
    claim = {"bits": 1, "lst": VALID_LST, "aggregation_uri": "https://example.com/agg"}

    assert StatusList.from_claim(claim).to_bytes() == b"\xb9\xa3"


@pytest.mark.parametrize(
    "claim",
    [
        pytest.param(None, id="null"),
        pytest.param([1, VALID_LST], id="array"),
        pytest.param('{"bits": 1, "lst": "eNrbuRgAAhcBXQ"}', id="json-text"),
        pytest.param({"lst": VALID_LST}, id="no-bits"),
        pytest.param({"bits": 1}, id="no-lst"),
        pytest.param({"bits": True, "lst": VALID_LST}, id="bool-bits"),
        pytest.param({"bits": 1.0, "lst": VALID_LST}, id="float-bits"),
        pytest.param({"bits": "1", "lst": VALID_LST}, id="string-bits"),
        pytest.param({"bits": 3, "lst": VALID_LST}, id="bits-3"),
        pytest.param({"bits": 1, "lst": None}, id="null-lst"),
        pytest.param({"bits": 1, "lst": b"eNrbuRgAAhcBXQ"}, id="bytes-lst"),
        pytest.param({"bits": 1, "lst": VALID_LST + "=="}, id="padded-lst"),
        pytest.param({"bits": 1, "lst": VALID_LST, "aggregation_uri": 5}, id="int-uri"),
        pytest.param({"bits": 1, "lst": VALID_LST, "idx": 0}, id="unknown-member"),
        pytest.param({"bits": 1, "lst": VALID_LST, 1: "x"}, id="non-string-key"),
    ],
)
def test_from_claim_rejects_malformed_claims(claim: object) -> None:
    with pytest.raises(StatusListError):
        StatusList.from_claim(claim)


def test_from_claim_passes_the_cap_on() -> None:
    claim = {"bits": 8, "lst": b64url(zlib.compress(bytes(2048), 9))}

    assert len(StatusList.from_claim(claim)) == 2048
    with pytest.raises(StatusListError, match="cap"):
        StatusList.from_claim(claim, max_size=1024)


# --- properties ---------------------------------------------------------------------


@st.composite
def lists_with_assignments(draw: st.DrawFn) -> tuple[int, int, dict[int, int]]:
    bits = draw(st.sampled_from(BITS))
    size = draw(st.integers(min_value=1, max_value=3000))
    assignments = draw(
        st.dictionaries(
            st.integers(min_value=0, max_value=size - 1),
            st.integers(min_value=0, max_value=(1 << bits) - 1),
            max_size=200,
        )
    )
    return bits, size, assignments


@given(lists_with_assignments())
def test_round_trip_preserves_every_entry(case: tuple[int, int, dict[int, int]]) -> None:
    bits, size, assignments = case
    status_list = StatusList(size, bits=bits)
    for index, value in assignments.items():
        status_list.set(index, value)

    decoded = StatusList.from_encoded(status_list.encode(), bits)
    claimed = StatusList.from_claim(json.loads(status_list.to_json()))

    assert decoded == claimed
    assert decoded.to_bytes() == status_list.to_bytes()
    # The byte array carries no size: the decoded list is padded to whole bytes.
    assert len(decoded) >= size > len(decoded) - 8 // bits
    assert [decoded.get(i) for i in range(size)] == [assignments.get(i, VALID) for i in range(size)]
    assert all(decoded.get(i) == VALID for i in range(size, len(decoded)))
    assert decoded.to_bytes() == pack(assignments, size=size, bits=bits)


@given(
    st.sampled_from(BITS),
    st.lists(st.tuples(st.integers(0, 63), st.integers(0, 255)), max_size=100),
)
def test_set_and_get_behave_like_a_list(bits: int, writes: list[tuple[int, int]]) -> None:
    status_list = StatusList(64, bits=bits)
    model = [VALID] * 64
    for index, raw in writes:
        value = raw & ((1 << bits) - 1)
        status_list.set(index, value)
        model[index] = value

    assert [status_list.get(i) for i in range(64)] == model


def _mutations(valid: str) -> st.SearchStrategy[str]:
    return st.builds(
        lambda position, text: valid[:position] + text + valid[position + 1 :],
        st.integers(0, len(valid)),
        st.text(max_size=3),
    )


HOSTILE_LST = st.one_of(
    st.text(),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ "),
    st.binary().map(b64url),
    st.binary().map(lambda data: b64url(zlib.compress(data))),
    _mutations(VALID_LST),
    _mutations(load(VECTORS / "appendix_c_2_2bit.json")["lst"]),
)


@settings(max_examples=300)
@given(HOSTILE_LST, st.one_of(st.sampled_from(BITS), st.integers(-2, 300)))
def test_from_encoded_raises_only_status_list_error(lst: str, bits: int) -> None:
    try:
        status_list = StatusList.from_encoded(lst, bits)
    except StatusListError:
        return
    assert len(status_list) >= 1
    assert StatusList.from_encoded(status_list.encode(), bits) == status_list


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)


@given(
    st.one_of(
        JSON_VALUES,
        st.fixed_dictionaries(
            {"bits": JSON_VALUES | st.sampled_from(BITS), "lst": JSON_VALUES | HOSTILE_LST},
            optional={"aggregation_uri": JSON_VALUES},
        ),
    )
)
def test_from_claim_raises_only_status_list_error(claim: object) -> None:
    try:
        status_list = StatusList.from_claim(claim)
    except StatusListError:
        return
    assert isinstance(claim, dict)
    assert status_list.to_claim()["bits"] == claim["bits"]


# --- size, as in the draft's Table 1 ---------------------------------------------------


def test_million_entries_with_one_percent_revoked_compress_like_the_draft_table() -> None:
    size = 1_000_000
    status_list = StatusList(size, bits=1)
    revoked = random.Random(2026).sample(range(size), size // 100)
    for index in revoked:
        status_list.set(index, INVALID)

    compressed = b64url_decode(status_list.encode())

    # Table 1 of the draft: 13.7 KB for 1M entries at 1%.
    assert 10_000 < len(compressed) < 20_000
    assert sum(status_list.get(i) for i in revoked) == len(revoked)


# --- index allocation ---------------------------------------------------------------


class CountingSet:
    """A set of used indices that counts how often it is asked."""

    def __init__(self, items: set[int]) -> None:
        self.items = items
        self.lookups = 0

    def __contains__(self, item: object) -> bool:
        self.lookups += 1
        return item in self.items


def test_min_list_size_is_the_herd_privacy_floor() -> None:
    assert MIN_LIST_SIZE == 131_072 == 2**17


@given(
    st.integers(1, 200).flatmap(
        lambda size: st.tuples(st.just(size), st.sets(st.integers(0, size - 1), max_size=size - 1))
    ),
    st.integers(),
)
def test_allocation_never_returns_a_used_index(case: tuple[int, set[int]], seed: int) -> None:
    size, used = case
    index = allocate_index(used, size, rng=random.Random(seed))

    assert 0 <= index < size
    assert index not in used


@pytest.mark.parametrize("attempts", [64, 0])
def test_allocation_is_uniform_over_free_indices(attempts: int) -> None:
    used = {0, 3, 5}
    rng = random.Random(12345)
    draws = 10_000
    counts = dict.fromkeys((1, 2, 4, 6, 7), 0)
    for _ in range(draws):
        counts[allocate_index(used, 8, rng=rng, attempts=attempts)] += 1

    expected = draws / len(counts)
    assert set(counts) == {1, 2, 4, 6, 7}
    # Chi-squared with 4 degrees of freedom; 18.47 is the 0.1% critical value.
    chi_squared = sum((count - expected) ** 2 / expected for count in counts.values())
    assert chi_squared < 18.47, counts


def test_allocation_raises_when_full() -> None:
    with pytest.raises(StatusListFullError) as info:
        allocate_index(set(range(100)), 100, rng=random.Random(1))

    assert isinstance(info.value, StatusListError)
    assert info.value.code == "status_list_full"


def test_allocation_ignores_used_values_outside_the_list() -> None:
    with pytest.raises(StatusListFullError):
        allocate_index(set(range(-5, 105)), 100, rng=random.Random(1))
    assert allocate_index({-1, 1, 100}, 2, rng=random.Random(1)) == 0


def test_allocation_finds_the_last_free_index_of_a_full_size_list() -> None:
    free = 98_765
    used = CountingSet(set(range(MIN_LIST_SIZE)) - {free})

    assert allocate_index(used, MIN_LIST_SIZE, rng=random.Random(3)) == free
    # Bounded work: the random attempts, then one pass over the list.
    assert used.lookups <= 64 + MIN_LIST_SIZE


def test_allocation_on_a_full_size_list_gives_up_after_one_pass() -> None:
    used = CountingSet(set(range(MIN_LIST_SIZE)))

    with pytest.raises(StatusListFullError):
        allocate_index(used, MIN_LIST_SIZE, rng=random.Random(3))
    assert used.lookups <= 64 + MIN_LIST_SIZE


def test_allocation_on_a_mostly_free_list_does_not_scan() -> None:
    used = CountingSet(set(range(0, MIN_LIST_SIZE, 2)))
    index = allocate_index(used, MIN_LIST_SIZE, rng=random.Random(4))

    assert index % 2 == 1
    assert used.lookups <= 64


def test_allocation_uses_the_system_random_by_default() -> None:
    indices = {allocate_index(set(), MIN_LIST_SIZE) for _ in range(20)}

    assert all(0 <= index < MIN_LIST_SIZE for index in indices)
    assert len(indices) > 1  # a collision of all 20 draws has probability 2**-323


def test_allocation_is_reproducible_with_a_seeded_rng() -> None:
    first = [allocate_index(set(), 1000, rng=random.Random(9)) for _ in range(5)]
    second = [allocate_index(set(), 1000, rng=random.Random(9)) for _ in range(5)]

    assert first == second


@pytest.mark.parametrize("size", [0, -1, True, 2.0, None])
def test_allocation_rejects_bad_size(size: Any) -> None:
    with pytest.raises(StatusListError):
        allocate_index(set(), size)
