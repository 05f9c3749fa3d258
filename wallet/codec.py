"""The one codec of the core: base64url and strict JSON, as every signed artefact uses them.

Decoding is strict, so that one value has exactly one spelling: no padding,
whitespace or stray trailing bits in base64url; JSON in UTF-8 without a BOM,
duplicate members or NaN. Models: PyJWT's ``utils.py``, itsdangerous's
``encoding.py``. Errors are :class:`~wallet.errors.MalformedDataError`; each
caller translates them into its own (a token is "malformed", a status list
"invalid") with ``raise ... from``.
"""

from __future__ import annotations

import binascii
import json
from typing import Any

from wallet.errors import DuplicateJSONMemberError, MalformedDataError

__all__ = ["b64url_decode", "b64url_encode", "b64url_length", "parse_json_object"]

# For a text of length 4n+2 (or 4n+3) the last character carries 4 (or 2) bits
# that decode to nothing; canonical base64url has them zero.
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_UNUSED_BITS_MASK = {2: 0x0F, 3: 0x03}
_CANONICAL_LAST = {
    rest: frozenset(c for i, c in enumerate(_ALPHABET) if not i & mask)
    for rest, mask in _UNUSED_BITS_MASK.items()
}


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url (RFC 7515, section 2)."""
    # binascii directly: base64.urlsafe_b64encode adds two Python calls on every scan.
    encoded = binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE)
    return encoded.rstrip(b"=").decode("ascii")


def b64url_length(raw_length: int) -> int:
    """Length of the unpadded base64url of ``raw_length`` bytes, without building it."""
    return (4 * raw_length + 2) // 3


def b64url_decode(text: str, *, what: str) -> bytes:
    """Canonical unpadded base64url only: re-encoding gives back the very same text.

    :raises MalformedDataError: naming ``what`` and whether it is not base64url
        at all or only not canonical.
    """
    # binascii's strict mode refuses every character outside the standard alphabet
    # (C code, about twice as fast as a regular expression over the text). Only
    # the standard alphabet's own "+", "/" and "=" would slip through the
    # translation, so those are refused first.
    rest = len(text) % 4
    if rest == 1 or not text or "+" in text or "/" in text or "=" in text:
        raise MalformedDataError(f"the {what} is not base64url")
    try:
        data = text.encode("ascii").translate(_TO_STANDARD)
        decoded = binascii.a2b_base64(data + b"==="[: (4 - rest) % 4], strict_mode=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise MalformedDataError(f"the {what} is not base64url") from exc
    if rest and text[-1] not in _CANONICAL_LAST[rest]:
        raise MalformedDataError(f"the {what} is not canonical base64url")
    return decoded


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise DuplicateJSONMemberError(f"duplicate JSON member {duplicate[:32]!r}")
    return result


def _no_constants(name: str) -> Any:
    raise MalformedDataError(f"JSON constant {name} is not allowed")


_STRICT_JSON = json.JSONDecoder(object_pairs_hook=_unique_members, parse_constant=_no_constants)


def parse_json_object(data: bytes, *, what: str) -> dict[str, Any]:
    """Strict JSON: UTF-8 without BOM, no duplicate members, no NaN or Infinity, an object.

    :raises MalformedDataError: (or its :class:`DuplicateJSONMemberError`) naming ``what``.
    """
    try:
        text = data.decode("utf-8")
        # raw_decode reads one value from the start, without decode()'s two
        # whitespace scans; only when it fails or leaves something over
        # (surrounding whitespace, extra data) does decode() run, and its
        # verdict stands.
        try:
            value, end = _STRICT_JSON.raw_decode(text)
        except ValueError:
            end = -1
        if end != len(text):
            value = _STRICT_JSON.decode(text)
    except MalformedDataError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedDataError(f"the {what} is not valid JSON") from exc
    if not isinstance(value, dict):
        raise MalformedDataError(f"the {what} is not a JSON object")
    return value
