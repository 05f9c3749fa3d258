"""QR codes for pass texts: smallest version at error correction M, as PNG or SVG.

Our numeric QR text (see :mod:`wallet.qrtext`) is written as two segments, the
prefix in alphanumeric mode and the digits in numeric mode; letting a library
pick modes could fall back to byte mode and cost several versions. Any other
text (a bare JWS) is written in byte mode.

Building a code (choosing the version, placing and masking modules) costs about
20 ms for a pass; the finished matrix of a pass's QR text is kept in a small
cache, so a page that needs the code's size and its drawing builds it once, and
a reload not at all.
"""

from __future__ import annotations

import functools
import io
import re
from dataclasses import dataclass
from typing import Any, Literal, cast
from xml.sax.saxutils import escape

import qrcode
import qrcode.constants
import qrcode.exceptions
import qrcode.util
from PIL import Image

from wallet.errors import QRTextError
from wallet.qrtext import PREFIX

__all__ = ["QRCodeInfo", "qr_info", "qr_matrix", "render_png", "render_svg"]

_ERROR_CORRECTION = qrcode.constants.ERROR_CORRECT_M
_ERROR_CORRECTION_NAME = "M"
_QUIET_ZONE = 4  # modules; ISO/IEC 18004 asks for at least four
_NUMERIC_TEXT = re.compile(re.escape(PREFIX) + r"[0-9]+")
_CACHED_CODES = 256  # ~8 KB of matrix each: a few MB at most


@dataclass(frozen=True)
class _Code:
    version: int
    matrix: tuple[tuple[bool, ...], ...]  # quiet zone included


@dataclass(frozen=True)
class QRCodeInfo:
    """Size of the QR code a text needs, for layout and for checking scan comfort."""

    version: int
    modules: int  # side length in modules, without the quiet zone
    error_correction: str


def qr_info(text: str) -> QRCodeInfo:
    """Describe the QR code `text` would be rendered as.

    :raises QRTextError: if the text does not fit any QR version.
    """
    code = _code(text)
    return QRCodeInfo(
        version=code.version,
        modules=17 + 4 * code.version,
        error_correction=_ERROR_CORRECTION_NAME,
    )


def qr_matrix(text: str) -> list[list[bool]]:
    """Rows of modules (True = dark), quiet zone included, for drawing the code elsewhere.

    The same code render_png and render_svg draw, so a printed card scans
    exactly like the page's QR code.

    :raises QRTextError: if the text does not fit any QR version.
    """
    return [list(row) for row in _code(text).matrix]


def render_png(text: str, *, box_size: int = 8) -> bytes:
    """Return a black-on-white 1-bit PNG, `box_size` pixels per module, quiet zone included.

    :raises QRTextError: if the text does not fit any QR version.
    """
    if box_size < 1:
        raise ValueError("box_size must be at least 1 pixel")
    matrix = _code(text).matrix
    width = len(matrix)
    pixels = bytes(0 if dark else 255 for row in matrix for dark in row)
    image = Image.frombytes("L", (width, width), pixels)
    image = image.resize((width * box_size, width * box_size), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.convert("1", dither=Image.Dither.NONE).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def render_svg(text: str, *, title: str | None = None) -> str:
    """Return a standalone black-on-white SVG, one path, one user unit per module.

    Dark modules are drawn as 1-unit strokes along each row, the compact form
    segno uses; butt caps keep every edge on the module grid.

    :raises QRTextError: if the text does not fit any QR version.
    """
    matrix = _code(text).matrix
    width = len(matrix)
    title_element = f"<title>{escape(title)}</title>" if title is not None else ""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {width}" '
        f'role="img" shape-rendering="crispEdges">'
        f"{title_element}"
        f'<rect width="{width}" height="{width}" fill="#fff"/>'
        f'<path fill="none" stroke="#000" d="{_path_data(matrix)}"/>'
        f"</svg>\n"
    )


def _code(text: str) -> _Code:
    """The finished code of `text`; a pass's QR text is built once and kept.

    Only pass texts ("WP1" + digits, public anyway: they are printed) are
    kept; anything else, such as a claim link, which is a secret, is built
    afresh and forgotten.
    """
    if _NUMERIC_TEXT.fullmatch(text):
        return _pass_code(text)
    return _finished(_build_code(text))


@functools.lru_cache(maxsize=_CACHED_CODES)
def _pass_code(text: str) -> _Code:
    return _finished(_build_code(text))  # the cache holds only successes


def _finished(code: qrcode.QRCode[Any]) -> _Code:
    return _Code(code.version, tuple(tuple(row) for row in code.get_matrix()))


def _build_code(text: str) -> qrcode.QRCode[Any]:  # Any: we never use its image factory
    """The one place that decides segments, error correction, quiet zone and version."""
    code = qrcode.QRCode(error_correction=_ERROR_CORRECTION, border=_QUIET_ZONE)
    for segment in _segments(text):
        code.add_data(segment)
    try:
        code.make(fit=True)
    except (qrcode.exceptions.DataOverflowError, ValueError) as exc:
        # qrcode 8.2 reports overflow as ValueError("Invalid version (was 41, ...)").
        raise QRTextError("the text is too long for any QR code") from exc
    return code


def _segments(text: str) -> list[qrcode.util.QRData]:
    """Numeric segments only for the canonical form ("WP1" + ASCII digits); else bytes as given."""
    if _NUMERIC_TEXT.fullmatch(text):
        return [
            _segment(PREFIX.encode("ascii"), qrcode.util.MODE_ALPHA_NUM),
            _segment(text[len(PREFIX) :].encode("ascii"), qrcode.util.MODE_NUMBER),
        ]
    return [_segment(text.encode("utf-8"), qrcode.util.MODE_8BIT_BYTE)]


def _segment(data: bytes, mode: int) -> qrcode.util.QRData:
    """A segment in exactly `mode`; QRData raises ValueError if the data does not fit it."""
    # The stubs declare MODE_* as plain int although QRData's overloads want Literal[1, 2, 4].
    return qrcode.util.QRData(data, cast("Literal[1, 2, 4]", mode))


def _path_data(matrix: tuple[tuple[bool, ...], ...]) -> str:
    """Each row's dark runs as strokes one module wide: about 8 characters per run."""
    commands = []
    for y, row in enumerate(matrix):
        runs = _dark_runs(row)
        previous_end: int | None = None
        for start, end in runs:
            if previous_end is None:
                commands.append(f"M{start} {y}.5h{end - start}")
            else:
                commands.append(f"m{start - previous_end} 0h{end - start}")
            previous_end = end
    return "".join(commands)


def _dark_runs(row: tuple[bool, ...]) -> list[tuple[int, int]]:
    """Half-open [start, end) spans of consecutive dark modules."""
    runs = []
    start: int | None = None
    for x, dark in enumerate([*row, False]):
        if dark and start is None:
            start = x
        elif not dark and start is not None:
            runs.append((start, x))
            start = None
    return runs
