"""The numeric QR text format: exact layout, strict decoding, hostile input."""

from __future__ import annotations

import base64
import json
import random
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wallet.errors import QRTextError
from wallet.qrtext import PREFIX, _read_varint, decode_qr_text, encode_qr_text, is_qr_text

# An independent statement of the digit rules, to check the module against.
PARTIAL_DIGITS = {1: 3, 2: 5, 3: 8, 4: 10, 5: 13, 6: 15}


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(level=9, wbits=-15)
    return compressor.compress(data) + compressor.flush()


def digits_of(blob: bytes) -> str:
    out = []
    for start in range(0, len(blob), 7):
        chunk = blob[start : start + 7]
        width = 17 if len(chunk) == 7 else PARTIAL_DIGITS[len(chunk)]
        out.append(str(int.from_bytes(chunk, "big")).zfill(width))
    return "".join(out)


def qr_text_of(blob: bytes) -> str:
    return PREFIX + digits_of(blob)


def blob_of(header: bytes, payload: bytes, signature: bytes) -> bytes:
    compressed = deflate(varint(len(header)) + header + payload)
    return varint(len(compressed)) + compressed + signature


def make_jws(*, seed: int = 1) -> str:
    """A realistic ES256 library card token with a payload of about 250 bytes."""
    rng = random.Random(seed)
    header = {"alg": "ES256", "kid": "Ab3dE6gH", "typ": "pass+jwt"}
    payload = {
        "iss": "https://pass.stadt.example",
        "sub": b64url(rng.randbytes(16)),
        "pt": "library_card",
        "exp": 1830297600,
        "card": "".join(rng.choice("0123456789") for _ in range(12)),
        "name": "Erika Mustermann",
        "status": {
            "status_list": {
                "idx": rng.randrange(1 << 19, 1 << 20),
                "uri": "https://pass.stadt.example/status/library_card/1",
            }
        },
    }
    raw_header = json.dumps(header, separators=(",", ":")).encode()
    raw_payload = json.dumps(payload, separators=(",", ":")).encode()
    assert 240 <= len(raw_payload) <= 260
    return ".".join([b64url(raw_header), b64url(raw_payload), b64url(rng.randbytes(64))])


# --- round trip and layout ---------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_round_trip_of_a_realistic_token(seed: int) -> None:
    jws = make_jws(seed=seed)
    text = encode_qr_text(jws)
    assert text.startswith("WP1")
    assert text[3:].isdigit() and text[3:].isascii()
    assert decode_qr_text(text) == jws


def test_layout_matches_the_specification() -> None:
    jws = make_jws()
    header, payload, signature = (b64url_decode(part) for part in jws.split("."))
    assert encode_qr_text(jws) == qr_text_of(blob_of(header, payload, signature))


def test_numeric_text_is_shorter_than_the_token_in_bits() -> None:
    jws = make_jws()
    text = encode_qr_text(jws)
    # numeric mode: 10 bits per 3 digits; byte mode: 8 bits per character
    assert len(text[3:]) * 10 / 3 < len(jws) * 8 * 0.7


def test_lowercase_prefix_is_accepted() -> None:
    jws = make_jws()
    text = encode_qr_text(jws)
    assert decode_qr_text("wp1" + text[3:]) == jws
    assert decode_qr_text("Wp1" + text[3:]) == jws
    assert is_qr_text("wp1") and is_qr_text("WP1123")


def test_text_without_prefix_is_returned_unchanged() -> None:
    jws = make_jws()
    assert decode_qr_text(jws) == jws
    assert decode_qr_text("") == ""
    assert decode_qr_text("WP") == "WP"
    assert decode_qr_text("XP1123") == "XP1123"
    assert not is_qr_text(jws)


def test_lookalike_prefix_is_not_ours() -> None:
    # Non-ASCII characters must not pass for the prefix after case mapping.
    assert not is_qr_text("\uff37P1123")  # fullwidth W
    assert decode_qr_text("\uff37P1123") == "\uff37P1123"


@pytest.mark.parametrize(
    ("size", "digits"),
    [
        (0, 0),
        (1, 3),
        (2, 5),
        (3, 8),
        (4, 10),
        (5, 13),
        (6, 15),
        (7, 17),
        (8, 20),
        (13, 32),
        (14, 34),
    ],
)
def test_digit_count_for_each_blob_size(size: int, digits: int) -> None:
    assert len(digits_of(bytes([255]) * size)) == digits


def test_chunk_widths_hold_their_largest_value() -> None:
    for size, width in {**PARTIAL_DIGITS, 7: 17}.items():
        assert len(str(256**size - 1)) == width


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "a.b",
        "a.b.c.d",
        "a b.c.d",
        "ab=.cd.ef",
        "a.bc.de",
        "YQ.+w.cd",
        "ab.cd.e\u0663",
        "AB.CD.EF",
    ],
)
def test_encode_rejects_what_is_not_a_compact_jws(bad: str) -> None:
    # "a" has length 1 mod 4; "AB" has non-zero trailing bits (not canonical)
    with pytest.raises(QRTextError) as info:
        encode_qr_text(bad)
    assert info.value.code == "malformed"


def test_encode_accepts_empty_segments() -> None:
    assert decode_qr_text(encode_qr_text("..")) == ".."


# --- strict decoding ---------------------------------------------------------------------


def decode_error(text: str, **kwargs: int) -> str:
    with pytest.raises(QRTextError) as info:
        decode_qr_text(text, **kwargs)
    assert info.value.code == "malformed"
    return info.value.message


@pytest.mark.parametrize("remainder", [1, 2, 4, 6, 7, 9, 11, 12, 14, 16])
def test_impossible_digit_counts_are_rejected(remainder: int) -> None:
    text = encode_qr_text(make_jws())
    digits = text[3:]
    full = digits[: len(digits) - len(digits) % 17]
    assert "number of digits" in decode_error(PREFIX + full + "0" * remainder)


@pytest.mark.parametrize("extra", range(7))
def test_every_final_chunk_size_decodes(extra: int) -> None:
    header, payload = b'{"alg":"ES256"}', b'{"sub":"x"}'
    blob = blob_of(header, payload, b"")
    signature = b"\x00\xff\x10" * 30
    signature = signature[: (extra - len(blob)) % 7 + 7]
    blob = blob_of(header, payload, signature)
    assert len(blob) % 7 == extra
    text = qr_text_of(blob)
    assert len(text) - 3 == len(blob) // 7 * 17 + PARTIAL_DIGITS.get(extra, 0)
    assert decode_qr_text(text) == ".".join(map(b64url, (header, payload, signature)))
    decode_error(text[:-1])


@pytest.mark.parametrize(
    ("width", "too_big"),
    [(17, 256**7), (3, 256), (5, 256**2), (8, 256**3), (10, 256**4), (13, 256**5), (15, 256**6)],
)
def test_non_canonical_chunk_is_rejected(width: int, too_big: int) -> None:
    text = encode_qr_text(make_jws())
    digits = text[3:]
    full = digits[: len(digits) - len(digits) % 17]
    assert len(str(too_big)) <= width
    chunk = str(too_big).zfill(width)
    forged = chunk + full[17:] if width == 17 else full + chunk
    assert "out of range" in decode_error(PREFIX + forged)


def test_largest_canonical_chunk_is_accepted() -> None:
    blob = b"\xff" * 7
    # it is not a valid blob, but it must get past the digit stage
    assert "out of range" not in decode_error(qr_text_of(blob))


@pytest.mark.parametrize("intruder", ["\u0663", "\uff13", " ", "\n", "a", "-", "+", "\u00b2"])
def test_non_digits_are_rejected(intruder: str) -> None:
    text = encode_qr_text(make_jws())
    middle = len(text) // 2
    forged = text[:middle] + intruder + text[middle + 1 :]
    assert "digits" in decode_error(forged)


def test_trailing_whitespace_is_rejected() -> None:
    text = encode_qr_text(make_jws())
    decode_error(text + "\r\n")


def test_trailing_data_after_deflate_stream_is_rejected() -> None:
    header, payload = b'{"alg":"ES256"}', b'{"sub":"x"}'
    compressed = deflate(varint(len(header)) + header + payload) + b"\x00\x01"
    # the signature follows the declared compressed length, so the junk sits inside C
    blob = varint(len(compressed)) + compressed + b"s" * 64
    assert "trailing data" in decode_error(qr_text_of(blob))


def test_truncated_deflate_stream_is_rejected() -> None:
    header, payload = b'{"alg":"ES256"}', b'{"sub":"x"}' * 10
    compressed = deflate(varint(len(header)) + header + payload)[:-3]
    blob = varint(len(compressed)) + compressed + b"s" * 64
    decode_error(qr_text_of(blob))


def test_corrupt_deflate_stream_is_rejected() -> None:
    blob = varint(4) + b"\xff\xff\xff\xff" + b"s" * 64
    assert "corrupt" in decode_error(qr_text_of(blob))


def test_deflate_bomb_is_stopped_by_the_output_cap() -> None:
    bomb = deflate(b"\x00" * 50_000_000)
    assert len(bomb) < 60_000
    blob = varint(len(bomb)) + bomb
    message = decode_error(qr_text_of(blob), max_jws_length=100_000)
    assert "size limit" in message


def test_small_bomb_within_the_digit_limit_is_stopped() -> None:
    bomb = deflate(b"\x00" * 1_000_000)
    blob = varint(len(bomb)) + bomb
    assert len(blob) < 4096
    assert "size limit" in decode_error(qr_text_of(blob))


def test_overlong_text_is_rejected_before_decoding() -> None:
    assert "longer than" in decode_error(PREFIX + "0" * 1_000_000)


def test_compressed_length_beyond_the_data_is_rejected() -> None:
    blob = varint(500) + deflate(b"\x02{}{}")
    assert "compressed length exceeds" in decode_error(qr_text_of(blob))


def test_header_length_beyond_the_data_is_rejected() -> None:
    compressed = deflate(varint(300) + b"{}")
    blob = varint(len(compressed)) + compressed
    assert "header length exceeds" in decode_error(qr_text_of(blob))


@pytest.mark.parametrize(
    ("field", "reason"),
    [(b"", "ends inside"), (b"\x80", "ends inside"), (b"\xff\xff", "ends inside")],
)
def test_truncated_length_fields_are_rejected(field: bytes, reason: str) -> None:
    assert reason in decode_error(qr_text_of(field))


def test_non_minimal_length_field_is_rejected() -> None:
    header, payload = b'{"alg":"ES256"}', b'{"sub":"x"}'
    compressed = deflate(varint(len(header)) + header + payload)
    assert len(compressed) < 0x80
    padded_length = bytes([len(compressed) | 0x80, 0x00])  # same value, one byte too many
    text = qr_text_of(padded_length + compressed + b"s" * 64)
    assert "non-minimal" in decode_error(text)


def test_non_minimal_header_length_is_rejected() -> None:
    compressed = deflate(b"\x82\x00{}{}")
    text = qr_text_of(varint(len(compressed)) + compressed)
    assert "non-minimal" in decode_error(text)


@pytest.mark.parametrize("tail", [b"", b"\x05rest"])
def test_every_length_field_reads_back_at_every_offset(tail: bytes) -> None:
    """The one- and two-byte shortcuts of the length reader agree with the general
    loop: every value up to three bytes, at the start and in the middle of data."""
    for value in [*range(0, 20_000), 2**21 - 1, 2**21, 2**28 - 1]:
        field = varint(value)
        for lead in (b"", b"\x99\x99"):
            assert _read_varint(lead + field + tail, len(lead)) == (value, len(lead) + len(field))
    for broken, message in [(b"\x80", "ends inside"), (b"\x80\x00", "non-minimal")]:
        with pytest.raises(QRTextError, match=message):
            _read_varint(broken, 0)


def test_overlong_length_field_is_rejected() -> None:
    text = qr_text_of(b"\x80" * 5 + b"\x01" + b"\x00" * 64)
    assert "overlong" in decode_error(text)


def test_token_longer_than_the_limit_is_rejected() -> None:
    jws = make_jws()
    text = encode_qr_text(jws)
    assert decode_qr_text(text, max_jws_length=len(jws)) == jws
    assert "longer than" in decode_error(text, max_jws_length=len(jws) - 1)


def test_long_signature_is_rejected_by_the_limit() -> None:
    blob = blob_of(b"{}", b"{}", b"s" * 3000)
    assert "longer than" in decode_error(qr_text_of(blob), max_jws_length=1000)


def test_empty_digits_are_rejected() -> None:
    decode_error("WP1")


# --- properties --------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.text().map(lambda rest: "WP1" + rest)))
def test_arbitrary_text_is_passed_through_or_refused(text: str) -> None:
    try:
        result = decode_qr_text(text)
    except QRTextError:
        assert is_qr_text(text)
    else:
        assert result == text or is_qr_text(text)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["WP1", "wp1", "wP1"]), st.text(alphabet="0123456789", max_size=400))
def test_arbitrary_digits_never_raise_anything_else(prefix: str, digits: str) -> None:
    try:
        result = decode_qr_text(prefix + digits)
    except QRTextError:
        return
    assert result.count(".") == 2


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_blobs_never_raise_anything_else(blob: bytes) -> None:
    try:
        result = decode_qr_text(qr_text_of(blob))
    except QRTextError:
        return
    assert decode_qr_text(encode_qr_text(result)) == result


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=600), st.binary(max_size=150))
def test_structured_blobs_decode_to_their_parts(header: bytes, payload: bytes, sig: bytes) -> None:
    text = qr_text_of(blob_of(header, payload, sig))
    assert decode_qr_text(text) == ".".join(map(b64url, (header, payload, sig)))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.binary(max_size=900), st.binary(max_size=132))
def test_encode_then_decode_is_identity(header: bytes, payload: bytes, sig: bytes) -> None:
    jws = ".".join(map(b64url, (header, payload, sig)))
    text = encode_qr_text(jws)
    assert is_qr_text(text)
    assert decode_qr_text(text) == jws
