"""The text inside a pass QR code: a compact JWS squeezed into QR numeric mode.

A pass token in byte mode needs a QR version too large to scan comfortably from a
phone screen. We decode the base64url segments, DEFLATE header and payload, and
write the resulting bytes as decimal digits, which QR numeric mode stores at
10 bits per 3 digits (17 digits hold 7 bytes, a loss of about 1 %):

    text  = "WP1" + digits
    blob  = varint(len(C)) || C || S
    C     = raw DEFLATE( varint(len(H)) || H || P )

``H``, ``P`` and ``S`` are the decoded header, payload and signature; ``varint`` is
unsigned LEB128. Each full 7-byte chunk of the blob becomes exactly 17 digits
(big-endian, zero-padded); a final chunk of ``k`` bytes becomes ``D[k]`` digits.

The prefix is only letters and a digit because keyboard-wedge scanners with a
German QWERTZ layout type ``W``, ``P`` and digits correctly but garble ``:`` ``/``
``-`` and swap ``Y``/``Z``.

Pure: stdlib and :mod:`wallet.errors` only, so the offline verifier can use it.
"""

from __future__ import annotations

import itertools
import struct
import zlib
from typing import Final

from wallet.codec import b64url_decode, b64url_encode
from wallet.errors import MalformedDataError, QRTextError

__all__ = ["PREFIX", "decode_qr_parts", "decode_qr_text", "encode_qr_text", "is_qr_text"]

PREFIX: Final = "WP1"

_CHUNK_BYTES: Final = 7
_CHUNK_DIGITS: Final = 17
# The fewest decimal digits that hold 256**k - 1, for a final chunk of k bytes.
_PARTIAL_DIGITS: Final[dict[int, int]] = {1: 3, 2: 5, 3: 8, 4: 10, 5: 13, 6: 15}
_PARTIAL_BYTES: Final[dict[int, int]] = {d: k for k, d in _PARTIAL_DIGITS.items()}

# Raw bytes never outnumber base64url characters, so the inflated data of a JWS
# of length L is below L plus the inner varint; the slack keeps tiny limits sane.
_SLACK_BYTES: Final = 64
# A varint longer than this cannot describe a length we would ever accept.
_MAX_VARINT_BYTES: Final = 5


# Every spelling of the prefix: scanners in lower-case mode type "wp1". One set
# lookup on every scan instead of isascii() and upper().
_PREFIX_SPELLINGS: Final = frozenset(
    "".join(spelling) for spelling in itertools.product(*({c.lower(), c.upper()} for c in PREFIX))
)


def is_qr_text(text: str) -> bool:
    """Tell whether `text` carries our prefix, i.e. whether decode_qr_text will decode it."""
    return text[: len(PREFIX)] in _PREFIX_SPELLINGS


def encode_qr_text(jws: str) -> str:
    """Return the numeric QR text for a compact JWS.

    :raises QRTextError: if `jws` is not three canonical base64url segments.
    """
    parts = jws.split(".")
    if len(parts) != 3:
        raise QRTextError("a compact JWS has exactly three dot-separated segments")
    header, payload, signature = (_b64url_decode(part) for part in parts)
    compressor = zlib.compressobj(level=9, wbits=-15)
    inner = _varint(len(header)) + header + payload
    compressed = compressor.compress(inner) + compressor.flush()
    blob = _varint(len(compressed)) + compressed + signature
    return PREFIX + _blob_to_digits(blob)


def decode_qr_text(text: str, *, max_jws_length: int = 4096) -> str:
    """Return the compact JWS in a QR text, or `text` itself if it lacks our prefix.

    Text without the prefix is passed through so a bare JWS keeps working; the
    caller parses it strictly as a token.

    :raises QRTextError: if the text has our prefix but is not a valid encoding,
        or decodes to a JWS longer than `max_jws_length`.
    """
    parts = decode_qr_parts(text, max_jws_length=max_jws_length)
    if parts is None:
        return text
    jws = ".".join(b64url_encode(segment) for segment in parts)
    if len(jws) > max_jws_length:
        raise QRTextError(f"the QR text decodes to a token longer than {max_jws_length} characters")
    return jws


def decode_qr_parts(text: str, *, max_jws_length: int = 4096) -> tuple[bytes, bytes, bytes] | None:
    """The decoded header, payload and signature of a QR text, or None without our prefix.

    The verifier's fast path: it checks the parts without building the JWS text,
    and their length as a token itself (JWSVerifier.verify_parts), so here
    `max_jws_length` only bounds the work: the digits read and the bytes inflated.

    :raises QRTextError: as :func:`decode_qr_text`, except that a token a little
        longer than `max_jws_length` may come back as parts.
    """
    if not is_qr_text(text):
        return None
    digits = text[len(PREFIX) :]
    max_blob = max_jws_length + _SLACK_BYTES
    if len(digits) > _digits_for(max_blob):
        raise QRTextError("the QR text is longer than any pass token we accept")
    blob = _digits_to_blob(digits)

    compressed_length, offset = _read_varint(blob, 0)
    if compressed_length > len(blob) - offset:
        raise QRTextError("the QR text's compressed length exceeds its data")
    compressed = blob[offset : offset + compressed_length]
    signature = blob[offset + compressed_length :]

    inner = _inflate(compressed, max_output=max_jws_length + _SLACK_BYTES)
    header_length, offset = _read_varint(inner, 0)
    if header_length > len(inner) - offset:
        raise QRTextError("the QR text's header length exceeds its data")
    return inner[offset : offset + header_length], inner[offset + header_length :], signature


def _b64url_decode(segment: str) -> bytes:
    """Decode strictly, so that re-encoding gives back the very same segment."""
    if not segment:
        return b""  # the QR encoding is total; judging empty parts is the JWS layer's job
    try:
        return b64url_decode(segment, what="JWS segment")
    except MalformedDataError as exc:
        raise QRTextError(exc.message) from exc


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, offset: int) -> tuple[int, int]:
    """Return (value, next offset); reject truncated, overlong and non-minimal varints."""
    # One or two bytes (up to 16383) are the usual cases: a pass's compressed
    # part is a few hundred bytes, its header a few dozen.
    if offset + 1 < len(data):
        first, second = data[offset], data[offset + 1]
        if first < 0x80:
            return first, offset + 1
        if 0 < second < 0x80:
            return (first & 0x7F) | second << 7, offset + 2
    elif offset < len(data) and data[offset] < 0x80:
        return data[offset], offset + 1
    value = 0
    for index in range(_MAX_VARINT_BYTES):
        if offset + index >= len(data):
            raise QRTextError("the QR text ends inside a length field")
        byte = data[offset + index]
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            if byte == 0 and index > 0:
                raise QRTextError("the QR text has a non-minimal length field")
            return value, offset + index + 1
    raise QRTextError("the QR text has an overlong length field")


def _inflate(compressed: bytes, *, max_output: int) -> bytes:
    """Inflate one complete raw DEFLATE stream, never producing more than `max_output` bytes."""
    inflater = zlib.decompressobj(wbits=-15)
    try:
        inner = inflater.decompress(compressed, max_output + 1)
    except zlib.error as exc:
        raise QRTextError("the QR text's compressed data is corrupt") from exc
    if len(inner) > max_output or inflater.unconsumed_tail:
        raise QRTextError("the QR text's compressed data inflates beyond the size limit")
    if not inflater.eof:
        raise QRTextError("the QR text's compressed data is truncated")
    if inflater.unused_data:
        raise QRTextError("the QR text has trailing data after the compressed stream")
    return inner


def _digits_for(byte_count: int) -> int:
    full, rest = divmod(byte_count, _CHUNK_BYTES)
    return full * _CHUNK_DIGITS + (_PARTIAL_DIGITS[rest] if rest else 0)


def _blob_to_digits(blob: bytes) -> str:
    pieces = []
    for start in range(0, len(blob), _CHUNK_BYTES):
        chunk = blob[start : start + _CHUNK_BYTES]
        width = _CHUNK_DIGITS if len(chunk) == _CHUNK_BYTES else _PARTIAL_DIGITS[len(chunk)]
        pieces.append(str(int.from_bytes(chunk, "big")).zfill(width))
    return "".join(pieces)


_LAYOUTS: dict[int, tuple[struct.Struct, struct.Struct]] = {}
_MAX_LAYOUTS: Final = 32


def _group_layout(full: int) -> tuple[struct.Struct, struct.Struct]:
    """The struct splitting ``full`` digit groups and the one packing them: one per QR length.

    A plain bounded dict, not functools.lru_cache: a tenth of its cost per hit.
    """
    layout = _LAYOUTS.get(full)
    if layout is None:
        layout = struct.Struct(f"{_CHUNK_DIGITS}s" * full), struct.Struct(f">{full}Q")
        if len(_LAYOUTS) < _MAX_LAYOUTS:
            _LAYOUTS[full] = layout
    return layout


def _ascii_digits(digits: str) -> bytes:
    """The digits as ASCII bytes, refusing anything but 0-9.

    bytes.isdigit knows only the ASCII digits (no Unicode digits such as '\u0663')
    and is a plain table lookup, several times cheaper than a regular expression.
    """
    raw = digits.encode("ascii") if digits.isascii() else b"?"
    if raw and not raw.isdigit():
        raise QRTextError("the QR text has characters other than the digits 0-9 after the prefix")
    return raw


def _digits_to_blob(digits: str) -> bytes:
    raw = _ascii_digits(digits)
    full, rest = divmod(len(raw), _CHUNK_DIGITS)
    if rest and rest not in _PARTIAL_BYTES:
        raise QRTextError(f"the QR text has an impossible number of digits ({len(raw)})")
    # Packed as 8-byte big-endian words (17 digits always fit), a group is in range
    # exactly when its word's top byte is zero; dropping those bytes leaves the blob.
    # One unpack, C-level int() on bytes (cheaper than on str) and one pack instead
    # of a Python loop: this runs on every scan.
    groups, words = _group_layout(full)
    packed = bytearray(words.pack(*map(int, groups.unpack_from(raw))))
    if packed[::8].count(0) != full:
        raise QRTextError("the QR text has a digit group out of range")
    del packed[::8]
    blob = bytes(packed)
    if rest:
        size = _PARTIAL_BYTES[rest]
        value = int(raw[full * _CHUNK_DIGITS :])
        if value >= 256**size:
            raise QRTextError("the QR text has a digit group out of range")
        blob += value.to_bytes(size, "big")
    return blob
