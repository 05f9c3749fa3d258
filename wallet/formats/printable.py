"""The printable pass card: a PDF at ID-1 size, an A4 sheet to cut it from, a PNG.

For citizens without a smartphone wallet. One layout, in millimetres from the
top-left corner, is computed from the pass and painted by two renderers:
reportlab for PDF (the QR code as vector rectangles) and Pillow for PNG.

Both renderers draw with the same packaged font (DejaVu Sans Condensed, cut
down to Latin incl. Latin Extended and Vietnamese, Greek and Cyrillic; see
``fonts/README.md``): the PDF embeds it, Pillow rasterises it, and layout
measures with its metrics. Names print as written ("Łukasz Ağaoğlu-Nguyễn"),
on any machine, whatever fonts the system has. A character the font lacks is
folded to its base letter or "?" before layout, never drawn as a missing glyph.

Values wrap at spaces and after hyphens and shrink to fit; a word is broken
between letters only when it alone is wider than the column at the smallest
size. A permit's plates (a second car) wrap between plates, never inside one,
while any size allows that. The QR code takes the full height below the header band, so a typical
pass (version 13-16) gets modules of at least 0.5 mm, which survive a 150-dpi
print or scan.
"""

from __future__ import annotations

import functools
import io
import itertools
import math
import re
import tomllib
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal, overload
from zoneinfo import ZoneInfo

from PIL import Image, ImageDraw, ImageFont
from reportlab.pdfbase import pdfmetrics  # type: ignore[import-untyped]
from reportlab.pdfbase.ttfonts import TTFont  # type: ignore[import-untyped]
from reportlab.pdfgen import canvas  # type: ignore[import-untyped]

from wallet.domain import WalletPass
from wallet.errors import ConfigError, InputError, PassTypeError
from wallet.formats.qr import qr_matrix
from wallet.passtypes import LANGUAGES, PassType, Text, split_plates

__all__ = [
    "A4_HEIGHT_MM",
    "A4_WIDTH_MM",
    "CARD_HEIGHT_MM",
    "CARD_WIDTH_MM",
    "DISPLAY_TIMEZONE",
    "MIN_CONTRAST",
    "Colour",
    "PrintDesign",
    "card_pdf",
    "card_png",
    "load_print_design",
    "parse_print_design",
    "sheet_pdf",
]

CARD_WIDTH_MM: Final = 85.60  # ISO/IEC 7810 ID-1, the size of a bank card
CARD_HEIGHT_MM: Final = 53.98
A4_WIDTH_MM: Final = 210.0
A4_HEIGHT_MM: Final = 297.0
MIN_CONTRAST: Final = 4.5  # WCAG 2 level AA for normal-size text; card text is small
# The city's wall clock, as on the web pages (wallet.web.i18n.DISPLAY_TIMEZONE):
# a date on the card is the day people there read it as.
DISPLAY_TIMEZONE: Final = "Europe/Berlin"

_PT_PER_MM: Final = 72 / 25.4
_FONT_DIR: Final = Path(__file__).parent / "fonts"
# reportlab's font registry is process-wide: names of our own, registered on first use.
_FONTS: Final = {
    False: ("WalletCard", "DejaVuSansCondensed.ttf"),
    True: ("WalletCard-Bold", "DejaVuSansCondensed-Bold.ttf"),
}
# Vertical metrics as fractions of the font size: the baseline sits this far
# below a line's top (room for the dots on "Ä"), lines advance by _LEADING.
_ASCENT: Final = 0.82
_LEADING: Final = 1.2
_MONTHS_EN: Final = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
)  # fmt: skip
_MIN_DPI: Final = 72
_MAX_DPI: Final = 1200

# --- the card's geometry, in mm from its top-left corner -------------------
_MARGIN: Final = 4.0
_HEADER_HEIGHT: Final = 8.5
_BANNER_HEIGHT: Final = 5.0
# The QR code with its quiet zone fills this square, all the height below the
# header band: a version-16 code (89 modules with the quiet zone) still gets
# 0.505 mm modules, a typical pass (version 13-15) 0.53-0.58 mm. The quiet zone
# (four modules, 2 mm and more) is the white margin to the cut edge.
_QR_EDGE: Final = 0.5
_QR_BOX: Final = CARD_HEIGHT_MM - _HEADER_HEIGHT - _QR_EDGE
_QR_X: Final = CARD_WIDTH_MM - _QR_EDGE - _QR_BOX
_QR_Y: Final = _HEADER_HEIGHT
_COLUMN_WIDTH: Final = _QR_X - 0.5 - _MARGIN  # the quiet zone adds more white
_FIELD_GAP: Final = 1.5
_LABEL_SIZE: Final = 5.5
_VALUE_SIZES: Final = (9.0, 8.5, 8.0, 7.5, 7.0, 6.5, 6.0, 5.5)
_VALUE_MAX_LINES: Final = 3
_VALIDITY_BASELINE: Final = CARD_HEIGHT_MM - 6.0
_SERIAL_BASELINE: Final = CARD_HEIGHT_MM - 2.4
_FOOTER_SIZES: Final = (6.5, 6.0, 5.5, 5.0)
_BODY_BOTTOM: Final = _VALIDITY_BASELINE - _ASCENT * _FOOTER_SIZES[0] / _PT_PER_MM - 1.0

# --- the A4 sheet -----------------------------------------------------------
_SHEET_CARD_X: Final = (A4_WIDTH_MM - CARD_WIDTH_MM) / 2
_SHEET_CARD_Y: Final = 40.0
_CUT_GAP: Final = 2.0  # crop marks stop short of the corner so no mark ends up on the card
_CUT_LENGTH: Final = 6.0
_SHEET_TEXT_X: Final = 30.0
_SHEET_TEXT_WIDTH: Final = A4_WIDTH_MM - 2 * _SHEET_TEXT_X
_RULER_MM: Final = 50.0

_HEX_COLOUR = re.compile(r"#([0-9a-fA-F]{2})([0-9a-fA-F]{2})([0-9a-fA-F]{2})")
# Letters without a Unicode decomposition that still have an obvious base letter.
_BASE_LETTERS: Final = str.maketrans(
    {"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "Ħ": "H", "ħ": "h", "\u0131": "i", "Ŧ": "T", "ŧ": "t"}
)

_DASH: Final = "\u2013"  # en dash
_WORDS: Final = {
    "valid": Text(de="Gültig", en="Valid"),
    "serial": Text(de="Seriennummer", en="Serial number"),
    "revoked": Text(de=f"WIDERRUFEN {_DASH} ungültig", en=f"REVOKED {_DASH} not valid"),
    "suspended": Text(
        de=f"GESPERRT {_DASH} vorübergehend ungültig", en=f"SUSPENDED {_DASH} not valid at present"
    ),
    "expired": Text(de=f"ABGELAUFEN {_DASH} ungültig", en=f"EXPIRED {_DASH} not valid"),
    "not_yet_valid": Text(de="NOCH NICHT GÜLTIG", en="NOT YET VALID"),
    "no_qr": Text(de="Kein QR-Code:", en="No QR code:"),
    "no_qr_reason": Text(de="Ausweis widerrufen", en="pass revoked"),
    "instructions": Text(de="So drucken Sie Ihren Ausweis", en="How to print your card"),
    "print": Text(
        de="Drucken Sie diese Seite in Originalgröße / 100 % aus, nicht „An Seite anpassen“.",
        en="Print this page at actual size / 100 %, not “Fit to page”.",
    ),
    "cut": Text(
        de="Schneiden Sie die Karte entlang der Schnittmarken an den vier Ecken aus.",
        en="Cut the card out along the marks at its four corners.",
    ),
    "keep": Text(
        de="Bewahren Sie sie trocken und ungeknickt auf: Das Personal prüft den QR-Code.",
        en="Keep it dry and do not fold it: staff check the QR code.",
    ),
    "ruler": Text(
        de="Kontrolle: Bei 100 % ist diese Linie genau 5 cm lang.",
        en="Check: at 100 % this line is exactly 5 cm long.",
    ),
}


@dataclass(frozen=True)
class Colour:
    """An sRGB colour, 0-255 per channel."""

    red: int
    green: int
    blue: int

    @classmethod
    def parse(cls, text: object, *, where: str) -> Colour:
        """Read ``#rrggbb``; anything else is a mistake in a design file."""
        match = _HEX_COLOUR.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise PassTypeError(f"{where} must be a colour written as #rrggbb")
        red, green, blue = (int(part, 16) for part in match.groups())
        return cls(red, green, blue)

    @property
    def hex(self) -> str:
        return f"#{self.red:02x}{self.green:02x}{self.blue:02x}"

    @property
    def rgb(self) -> tuple[int, int, int]:
        return (self.red, self.green, self.blue)

    def luminance(self) -> float:
        """Relative luminance as WCAG 2 defines it."""

        def linear(channel: int) -> float:
            c = channel / 255
            return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

        return 0.2126 * linear(self.red) + 0.7152 * linear(self.green) + 0.0722 * linear(self.blue)

    def contrast(self, other: Colour) -> float:
        """WCAG 2 contrast ratio, from 1 (none) to 21 (black on white)."""
        light, dark = sorted((self.luminance(), other.luminance()), reverse=True)
        return (light + 0.05) / (dark + 0.05)


_WHITE: Final = Colour(255, 255, 255)
_BLACK: Final = Colour(0, 0, 0)
_BANNER: Final = Colour(0xB0, 0x00, 0x20)  # white on it: 7.3:1


@dataclass(frozen=True)
class PrintDesign:
    """Colours and an optional title of a pass type's printed card.

    Construction refuses colour pairs below WCAG AA contrast: the card is
    read in poor light at a desk or through a windscreen.
    """

    accent: Colour  # the band across the top
    on_accent: Colour  # issuer and title on the band
    text: Colour  # everything else
    background: Colour = _WHITE
    title: Text | None = None  # replaces the pass type's label on the card

    def __post_init__(self) -> None:
        for fore, back, what in (
            (self.text, self.background, "text on background"),
            (self.on_accent, self.accent, "on_accent on accent"),
        ):
            ratio = fore.contrast(back)
            if ratio < MIN_CONTRAST:
                raise PassTypeError(
                    f"{what} ({fore.hex} on {back.hex}) has a contrast of {ratio:.2f}:1; "
                    f"WCAG AA needs at least {MIN_CONTRAST}:1"
                )

    def title_for(self, pass_type: PassType, lang: str) -> str:
        """The card's title: the design's own, else the pass type's label."""
        return (pass_type.label if self.title is None else self.title).get(lang)


def parse_print_design(raw: Mapping[str, Any], *, source: str) -> PrintDesign:
    """Build a print design from its parsed ``design.toml``, refusing anything odd."""
    unknown = set(raw) - {"accent", "on_accent", "text", "background", "title"}
    if unknown:
        raise PassTypeError(f"{source}: unknown keys: {', '.join(sorted(unknown))}")
    for required in ("accent", "on_accent", "text"):
        if required not in raw:
            raise PassTypeError(f"{source}: {required} is required")
    title = raw.get("title")
    if title is not None and not (
        isinstance(title, dict)
        and set(title) == set(LANGUAGES)
        and all(isinstance(title[lang], str) and title[lang].strip() for lang in LANGUAGES)
    ):
        raise PassTypeError(f"{source}: title needs non-empty text in exactly de and en")
    try:
        return PrintDesign(
            accent=Colour.parse(raw["accent"], where="accent"),
            on_accent=Colour.parse(raw["on_accent"], where="on_accent"),
            text=Colour.parse(raw["text"], where="text"),
            background=Colour.parse(raw.get("background", _WHITE.hex), where="background"),
            title=None if title is None else Text(de=title["de"], en=title["en"]),
        )
    except PassTypeError as exc:
        raise PassTypeError(f"{source}: {exc.message}") from exc


def load_print_design(folder: Path) -> PrintDesign:
    """Read ``<folder>/print/design.toml``, `folder` being a pass type's folder.

    :raises PassTypeError: if the file is missing, unreadable or not acceptable.
    """
    path = folder / "print" / "design.toml"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PassTypeError(f"{path}: cannot be read: {exc}") from exc
    return parse_print_design(raw, source=str(path))


def card_pdf(
    wallet_pass: WalletPass, *, design: PrintDesign, lang: str, now: datetime | None = None
) -> bytes:
    """One PDF page exactly the size of an ID-1 card, for print shops and card printers.

    With `now` (aware), an expired or not yet valid pass gets a banner, as a
    revoked or suspended one always does; a revoked pass shows no QR code.
    The same input gives the same bytes.

    :raises InputError: for a language other than de or en.
    :raises QRTextError: if the QR text fits no QR code.
    """
    card = _card_layout(wallet_pass, design, _language(lang), now)
    return _pdf(card, wallet_pass, design, lang)


def sheet_pdf(
    wallet_pass: WalletPass, *, design: PrintDesign, lang: str, now: datetime | None = None
) -> bytes:
    """An A4 page with the card at real size, crop marks and how to print and cut it.

    :raises InputError: for a language other than de or en.
    """
    card = _card_layout(wallet_pass, design, _language(lang), now)
    return _pdf(_sheet_layout(card, wallet_pass, design, lang), wallet_pass, design, lang)


def card_png(
    wallet_pass: WalletPass,
    *,
    design: PrintDesign,
    lang: str,
    dpi: int = 300,
    now: datetime | None = None,
) -> bytes:
    """The card as a PNG of 85.60 x 53.98 mm at `dpi`, with that resolution recorded.

    :raises InputError: for a language other than de or en, or a dpi outside 72-1200.
    """
    if isinstance(dpi, bool) or not isinstance(dpi, int) or not _MIN_DPI <= dpi <= _MAX_DPI:
        raise InputError(f"dpi must be a whole number from {_MIN_DPI} to {_MAX_DPI}", field="dpi")
    return _png(_card_layout(wallet_pass, design, _language(lang), now), dpi=dpi)


def _language(lang: str) -> str:
    if lang not in LANGUAGES:
        raise InputError(f"the card is printed in {' or '.join(LANGUAGES)}", field="lang")
    return lang


# --- layout -----------------------------------------------------------------


@dataclass(frozen=True)
class _Rect:
    x: float
    y: float
    width: float
    height: float
    fill: Colour | None
    stroke: Colour | None = None
    stroke_pt: float = 0.0

    def moved(self, dx: float, dy: float) -> _Rect:
        return replace(self, x=self.x + dx, y=self.y + dy)


@dataclass(frozen=True)
class _Line:
    x1: float
    y1: float
    x2: float
    y2: float
    colour: Colour
    width_pt: float

    def moved(self, dx: float, dy: float) -> _Line:
        return replace(self, x1=self.x1 + dx, y1=self.y1 + dy, x2=self.x2 + dx, y2=self.y2 + dy)


@dataclass(frozen=True)
class _Text:
    x: float  # left edge, or centre when centred
    baseline: float
    text: str  # already made printable
    size: float  # points
    bold: bool
    colour: Colour
    centred: bool = False

    def moved(self, dx: float, dy: float) -> _Text:
        return replace(self, x=self.x + dx, baseline=self.baseline + dy)


@dataclass(frozen=True)
class _QRCode:
    x: float
    y: float
    size: float  # side of the square, quiet zone included
    matrix: tuple[tuple[bool, ...], ...] = field(repr=False)

    def moved(self, dx: float, dy: float) -> _QRCode:
        return replace(self, x=self.x + dx, y=self.y + dy)


_Item = _Rect | _Line | _Text | _QRCode


@dataclass(frozen=True)
class _Layout:
    """A page: its size and what is drawn on it, in painting order, all in mm."""

    width: float
    height: float
    items: tuple[_Item, ...]


def _card_layout(
    wallet_pass: WalletPass, design: PrintDesign, lang: str, now: datetime | None
) -> _Layout:
    """Header band, banner if any, QR code on the right, holder column, validity and serial."""
    pass_type = wallet_pass.pass_type
    full_width = CARD_WIDTH_MM - 2 * _MARGIN
    items: list[_Item] = [
        _Rect(0, 0, CARD_WIDTH_MM, CARD_HEIGHT_MM, fill=design.background),
        _Rect(0, 0, CARD_WIDTH_MM, _HEADER_HEIGHT, fill=design.accent),
    ]
    size, issuer = _fit_line(
        pass_type.issuer_name.get(lang), sizes=(6.5, 6.0, 5.5, 5.0), bold=False, width=full_width
    )
    items.append(_Text(_MARGIN, 3.3, issuer, size, False, design.on_accent))
    size, title = _fit_line(
        design.title_for(pass_type, lang), sizes=(10, 9, 8, 7), bold=True, width=full_width
    )
    items.append(_Text(_MARGIN, 7.2, title, size, True, design.on_accent))

    body_top = _HEADER_HEIGHT + 2.5
    banner = _banner(wallet_pass, now)
    if banner is not None:
        # Across the text column only: the QR code keeps the card's full height.
        band_width = _QR_X
        size, text = _fit_line(
            _WORDS[banner].get(lang), sizes=(8, 7, 6, 5), bold=True, width=band_width - 2
        )
        middle = _HEADER_HEIGHT + _BANNER_HEIGHT / 2
        items += [
            _Rect(0, _HEADER_HEIGHT, band_width, _BANNER_HEIGHT, fill=_BANNER),
            _Text(band_width / 2, middle + _mm(0.36 * size), text, size, True, _WHITE, True),
        ]
        body_top = _HEADER_HEIGHT + _BANNER_HEIGHT + 2.0

    if wallet_pass.state == "revoked":
        # As on the citizen's page: a code that every check refuses only invites trouble.
        items.append(
            _Rect(_QR_X, _QR_Y, _QR_BOX, _QR_BOX, fill=None, stroke=design.text, stroke_pt=0.75)
        )
        middle = _QR_Y + _QR_BOX / 2
        for offset, key in ((-1.0, "no_qr"), (3.0, "no_qr_reason")):
            size, text = _fit_line(
                _WORDS[key].get(lang), sizes=(8, 7, 6), bold=True, width=_QR_BOX - 4
            )
            items.append(
                _Text(_QR_X + _QR_BOX / 2, middle + offset, text, size, True, design.text, True)
            )
    else:
        matrix = tuple(tuple(row) for row in qr_matrix(wallet_pass.qr_text))
        # White whatever the background: the quiet zone must be light for scanners.
        items.append(_Rect(_QR_X, _QR_Y, _QR_BOX, _QR_BOX, fill=_WHITE))
        items.append(_QRCode(_QR_X, _QR_Y, _QR_BOX, matrix))

    lists = {f.name for f in pass_type.fields if f.kind == "plate" and f.max_plates > 1}
    fields = [
        (f.label.get(lang), f.value, tuple(split_plates(f.value)) if f.name in lists else ())
        for f in wallet_pass.holder
    ]
    items += _field_blocks(fields, top=body_top, bottom=_BODY_BOTTOM, colour=design.text)

    start, end = _date(wallet_pass.valid_from, lang), _date(wallet_pass.valid_until, lang)
    size, text = _fit_line(
        f"{_WORDS['valid'].get(lang)} {start} {_DASH} {end}",
        sizes=_FOOTER_SIZES,
        bold=True,
        width=_COLUMN_WIDTH,
    )
    items.append(_Text(_MARGIN, _VALIDITY_BASELINE, text, size, True, design.text))
    size, text = _fit_line(
        f"{_WORDS['serial'].get(lang)} {wallet_pass.serial}",
        sizes=_FOOTER_SIZES[1:],
        bold=False,
        width=_COLUMN_WIDTH,
    )
    items.append(_Text(_MARGIN, _SERIAL_BASELINE, text, size, False, design.text))
    return _Layout(CARD_WIDTH_MM, CARD_HEIGHT_MM, tuple(items))


def _banner(wallet_pass: WalletPass, now: datetime | None) -> str | None:
    """Which warning the card carries, if any: the stored state first, then the dates."""
    if wallet_pass.state != "valid":
        return wallet_pass.state
    if now is not None:
        if now.tzinfo is None:
            raise ValueError("now must be an aware datetime")
        if now >= wallet_pass.valid_until:
            return "expired"
        if now < wallet_pass.valid_from:
            return "not_yet_valid"
    return None


def _field_blocks(
    fields: Sequence[tuple[str, str, tuple[str, ...]]],
    *,
    top: float,
    bottom: float,
    colour: Colour,
) -> list[_Item]:
    """Labels and values in the text column, shrunk and wrapped to fit between top and bottom.

    Each field is (label, value, the items of a list value that no line may break).

    All values share a size cap, lowered until the whole column fits; what still
    does not fit at the smallest size is cut off with an ellipsis rather than
    drawn over the footer or the QR code.
    """
    label_height = _mm(_LEADING * _LABEL_SIZE)
    blocks: list[tuple[str, float, list[str]]] = []
    for cap_index in range(len(_VALUE_SIZES)):
        sizes = _VALUE_SIZES[cap_index:]
        blocks = [
            (label, *_fit_block(value, sizes=sizes, items=items)) for label, value, items in fields
        ]
        height = sum(label_height + _mm(_LEADING * size) * len(lines) for _, size, lines in blocks)
        if height + _FIELD_GAP * (len(blocks) - 1) <= bottom - top:
            break
    items: list[_Item] = []
    y = top
    for label, size, lines in blocks:
        line_height = _mm(_LEADING * size)
        if y + label_height + line_height > bottom:
            break
        _, label_text = _fit_line(label, sizes=(_LABEL_SIZE,), bold=False, width=_COLUMN_WIDTH)
        baseline = y + _mm(_ASCENT * _LABEL_SIZE)
        items.append(_Text(_MARGIN, baseline, label_text, _LABEL_SIZE, False, colour))
        y += label_height
        for index, line in enumerate(lines):
            more = index < len(lines) - 1
            cut = more and y + 2 * line_height > bottom  # this line fits, the next would not
            text = _ellipsized(line, size=size, bold=True, width=_COLUMN_WIDTH) if cut else line
            items.append(_Text(_MARGIN, y + _mm(_ASCENT * size), text, size, True, colour))
            y += line_height
            if cut:
                break
        y += _FIELD_GAP
    return items


def _fit_block(
    text: str, *, sizes: Sequence[float], items: Sequence[str] = ()
) -> tuple[float, list[str]]:
    """The largest size at which a value wraps into at most three lines, no word split.

    A list value (``items``: a permit's plates) first tries to wrap between its items
    only: "SÜW-AB 123E," over "SÜW-CD 456H", never "SÜW-" over "CD 456H" (another
    plate). Only when no size achieves the wrap is a word broken between letters (at
    the smallest size), and what still does not fit is cut off with an ellipsis.
    """
    shown = _printable(text)
    if len(items) > 1:
        pieces = [_printable(item) for item in items]
        for size in sizes:
            found = _wrap_items(pieces, size=size, width=_COLUMN_WIDTH)
            if found is not None and len(found) <= _VALUE_MAX_LINES:
                return size, found
    for size in sizes:
        lines = _wrap(shown, size=size, bold=True, width=_COLUMN_WIDTH, split_words=False)
        if lines is not None and len(lines) <= _VALUE_MAX_LINES:
            return size, lines
    size = sizes[-1]
    lines = _wrap(shown, size=size, bold=True, width=_COLUMN_WIDTH) or [""]
    if len(lines) > _VALUE_MAX_LINES:
        lines = lines[:_VALUE_MAX_LINES]
        lines[-1] = _ellipsized(lines[-1], size=size, bold=True, width=_COLUMN_WIDTH)
    return size, lines


def _fit_line(text: str, *, sizes: Sequence[float], bold: bool, width: float) -> tuple[float, str]:
    """The largest size at which `text` fits one line; at the smallest, cut with an ellipsis."""
    shown = _printable(text)
    for size in sizes:
        if _width(shown, size, bold) <= width:
            return size, shown
    return sizes[-1], _ellipsized(shown, size=sizes[-1], bold=bold, width=width)


# A line may end after a space or after a hyphen (which stays at the line's end).
_HYPHENS: Final = ("-", "\u2010")


def _pieces(text: str) -> list[tuple[str, str]]:
    """(joiner, piece) pairs: joiner " " starts a new word, "" continues one after a hyphen."""
    pieces: list[tuple[str, str]] = []
    for word in text.split():
        joiner = " "
        part = ""
        for char in word:
            part += char
            if char in _HYPHENS and len(part) > 1:
                pieces.append((joiner, part))
                joiner, part = "", ""
        if part:
            pieces.append((joiner, part))
    return pieces


@overload
def _wrap(
    text: str, *, size: float, bold: bool, width: float, split_words: Literal[True] = ...
) -> list[str]: ...
@overload
def _wrap(
    text: str, *, size: float, bold: bool, width: float, split_words: bool
) -> list[str] | None: ...
def _wrap(
    text: str, *, size: float, bold: bool, width: float, split_words: bool = True
) -> list[str] | None:
    """Greedy wrap at spaces and after hyphens.

    A piece wider than the whole line is broken between letters if
    `split_words`, else the text does not fit at this size: None.
    """
    lines: list[str] = []
    current = ""
    for joiner, piece in _pieces(text):
        candidate = f"{current}{joiner}{piece}" if current else piece
        if _width(candidate, size, bold) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = ""
        if _width(piece, size, bold) <= width:
            current = piece
            continue
        if not split_words:
            return None
        for char in piece:
            if current and _width(current + char, size, bold) > width:
                lines.append(current)
                current = ""
            current += char
    if current:
        lines.append(current)
    return lines or [""]


def _wrap_items(items: Sequence[str], *, size: float, width: float) -> list[str] | None:
    """Greedy wrap of a list between its items ("A, B": a line ends "A,"), in bold; None
    if an item alone is wider than a line."""
    lines: list[str] = []
    current = ""
    for index, item in enumerate(items):
        piece = item if index == len(items) - 1 else item + ","
        candidate = f"{current} {piece}" if current else piece
        if _width(candidate, size, True) <= width:
            current = candidate
        elif _width(piece, size, True) <= width:
            lines.append(current)  # not empty: the piece alone fits, so it did not
            current = piece
        else:
            return None
    return [*lines, current]


def _ellipsized(text: str, *, size: float, bold: bool, width: float) -> str:
    """`text` cut short to fit `width` with a trailing ellipsis (always added)."""
    while text and _width(text + "…", size, bold) > width:
        text = text[:-1]
    return text.rstrip() + "…"


def _width(text: str, size: float, bold: bool) -> float:
    """Width in mm of `text` in the card's font (both renderers draw with its metrics)."""
    points = pdfmetrics.stringWidth(text, _pdf_font(bold), size)
    return float(points) / _PT_PER_MM


def _printable(text: str) -> str:
    """`text` as the packaged font can draw it: NFC, else a base letter, else "?"."""
    out = []
    for char in unicodedata.normalize("NFC", text):
        if _covered(char):
            out.append(char)
            continue
        base = unicodedata.normalize("NFKD", char.translate(_BASE_LETTERS))
        base = "".join(c for c in base if not unicodedata.combining(c))
        out.append(base if base and all(_covered(c) for c in base) else "?")
    return "".join(out)


def _covered(char: str) -> bool:
    """Whether both weights of the card's font have a glyph for `char`."""
    return all(ord(char) in codepoints for codepoints in _font_codepoints())


@functools.cache
def _font_codepoints() -> tuple[frozenset[int], frozenset[int]]:
    return tuple(  # type: ignore[return-value]
        frozenset(pdfmetrics.getFont(_pdf_font(bold)).face.charToGlyph) for bold in (False, True)
    )


@functools.cache
def _pdf_font(bold: bool) -> str:
    """Register the packaged font with reportlab (once per process); its name there.

    :raises ConfigError: if the installation lacks the font file.
    """
    name, filename = _FONTS[bold]
    try:
        pdfmetrics.registerFont(TTFont(name, str(_FONT_DIR / filename)))
    except (OSError, ValueError) as exc:  # reportlab reports a bad TTF as TTFError(Exception)
        raise ConfigError(f"the card's font {filename} cannot be loaded: {exc}") from exc
    return name


def _date(moment: datetime, lang: str) -> str:
    """24.11.2026 in German; 24 Nov 2026 in English (a month name cannot be misread)."""
    day = moment.astimezone(ZoneInfo(DISPLAY_TIMEZONE)).date()
    if lang == "de":
        return f"{day.day:02d}.{day.month:02d}.{day.year}"
    return f"{day.day} {_MONTHS_EN[day.month - 1]} {day.year}"


def _mm(points: float) -> float:
    return points / _PT_PER_MM


def _sheet_layout(
    card: _Layout, wallet_pass: WalletPass, design: PrintDesign, lang: str
) -> _Layout:
    """The card at real size on A4, crop marks at its corners, instructions below."""
    x0, y0 = _SHEET_CARD_X, _SHEET_CARD_Y
    x1, y1 = x0 + card.width, y0 + card.height
    centre = A4_WIDTH_MM / 2
    items: list[_Item] = []
    size, title = _fit_line(
        design.title_for(wallet_pass.pass_type, lang),
        sizes=(16, 14, 12),
        bold=True,
        width=_SHEET_TEXT_WIDTH,
    )
    items.append(_Text(centre, 22.0, title, size, True, _BLACK, True))
    size, issuer = _fit_line(
        wallet_pass.pass_type.issuer_name.get(lang),
        sizes=(10,),
        bold=False,
        width=_SHEET_TEXT_WIDTH,
    )
    items.append(_Text(centre, 28.0, issuer, size, False, _BLACK, True))
    items += [item.moved(x0, y0) for item in card.items]
    for x, y, sx, sy in ((x0, y0, -1, -1), (x1, y0, 1, -1), (x0, y1, -1, 1), (x1, y1, 1, 1)):
        near, far = _CUT_GAP, _CUT_GAP + _CUT_LENGTH
        items.append(_Line(x + sx * near, y, x + sx * far, y, _BLACK, 0.5))
        items.append(_Line(x, y + sy * near, x, y + sy * far, _BLACK, 0.5))

    y = y1 + _CUT_GAP + _CUT_LENGTH + 12.0
    items.append(
        _Text(_SHEET_TEXT_X, y, _printable(_WORDS["instructions"].get(lang)), 12, True, _BLACK)
    )
    y += 4.0
    for number, key in enumerate(("print", "cut", "keep"), start=1):
        y += 6.0
        items.append(_Text(_SHEET_TEXT_X, y, f"{number}.", 10, False, _BLACK))
        lines = _wrap(
            _printable(_WORDS[key].get(lang)), size=10, bold=False, width=_SHEET_TEXT_WIDTH - 6
        )
        for line in lines:
            items.append(_Text(_SHEET_TEXT_X + 6, y, line, 10, False, _BLACK))
            y += _mm(_LEADING * 10)
    y += 12.0
    items.append(_Text(_SHEET_TEXT_X, y, _printable(_WORDS["ruler"].get(lang)), 10, False, _BLACK))
    y += 5.0
    end = _SHEET_TEXT_X + _RULER_MM
    items += [
        _Line(_SHEET_TEXT_X, y, end, y, _BLACK, 0.75),
        _Line(_SHEET_TEXT_X, y - 2, _SHEET_TEXT_X, y + 2, _BLACK, 0.75),
        _Line(end, y - 2, end, y + 2, _BLACK, 0.75),
    ]
    return _Layout(A4_WIDTH_MM, A4_HEIGHT_MM, tuple(items))


# --- painters ---------------------------------------------------------------


def _pdf(layout: _Layout, wallet_pass: WalletPass, design: PrintDesign, lang: str) -> bytes:
    """Paint a layout with reportlab; invariant mode keeps the bytes reproducible."""
    title = design.title_for(wallet_pass.pass_type, lang)
    buffer = io.BytesIO()
    page_height = layout.height * _PT_PER_MM
    pdf = canvas.Canvas(
        buffer,
        pagesize=(layout.width * _PT_PER_MM, page_height),
        invariant=1,
        pageCompression=1,
        lang=lang,
    )
    pdf.setTitle(title)
    pdf.setAuthor(wallet_pass.pass_type.issuer_name.get(lang))
    pdf.setSubject(f"{title}, {_WORDS['serial'].get(lang)} {wallet_pass.serial}")
    pdf.setCreator("wallet")
    pdf.setViewerPreference("DisplayDocTitle", "true")
    # Ask viewers not to "fit to page": the card must come out at its real size.
    pdf.setViewerPreference("PrintScaling", "None")

    _paint(pdf, layout)
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def _paint(pdf: Any, layout: _Layout) -> None:
    """Draw one layout on the canvas's current page (the letters share this painter)."""
    page_height = layout.height * _PT_PER_MM

    def x(mm: float) -> float:
        return mm * _PT_PER_MM

    def y(mm: float) -> float:
        return page_height - mm * _PT_PER_MM

    for item in layout.items:
        if isinstance(item, _Rect):
            if item.fill is not None:
                pdf.setFillColorRGB(*(c / 255 for c in item.fill.rgb))
            if item.stroke is not None:
                pdf.setStrokeColorRGB(*(c / 255 for c in item.stroke.rgb))
                pdf.setLineWidth(item.stroke_pt)
            pdf.rect(
                x(item.x),
                y(item.y + item.height),
                x(item.width),
                x(item.height),
                stroke=int(item.stroke is not None),
                fill=int(item.fill is not None),
            )
        elif isinstance(item, _Line):
            pdf.setStrokeColorRGB(*(c / 255 for c in item.colour.rgb))
            pdf.setLineWidth(item.width_pt)
            pdf.line(x(item.x1), y(item.y1), x(item.x2), y(item.y2))
        elif isinstance(item, _Text):
            pdf.setFillColorRGB(*(c / 255 for c in item.colour.rgb))
            pdf.setFont(_pdf_font(item.bold), item.size)
            draw = pdf.drawCentredString if item.centred else pdf.drawString
            draw(x(item.x), y(item.baseline), item.text)
        else:
            # One path for all dark modules: no hairline seams between rectangles.
            module = item.size / len(item.matrix)
            path = pdf.beginPath()
            for row_index, row in enumerate(item.matrix):
                top = item.y + row_index * module
                for start, end in _dark_runs(row):
                    path.rect(
                        x(item.x + start * module),
                        y(top + module),
                        x((end - start) * module),
                        x(module),
                    )
            pdf.setFillColorRGB(0, 0, 0)
            pdf.drawPath(path, stroke=0, fill=1)


def _png(layout: _Layout, *, dpi: int) -> bytes:
    """Paint a layout with Pillow at `dpi`; the QR modules snap to whole pixels."""
    scale = dpi / 25.4

    def px(mm: float) -> int:
        return round(mm * scale)

    image = Image.new("RGB", (px(layout.width), px(layout.height)), _WHITE.rgb)
    draw = ImageDraw.Draw(image)
    for item in layout.items:
        if isinstance(item, _Rect):
            width = max(1, round(item.stroke_pt / 72 * dpi)) if item.stroke is not None else 0
            draw.rectangle(
                (px(item.x), px(item.y), px(item.x + item.width) - 1, px(item.y + item.height) - 1),
                fill=None if item.fill is None else item.fill.rgb,
                outline=None if item.stroke is None else item.stroke.rgb,
                width=width,
            )
        elif isinstance(item, _Line):
            width = max(1, round(item.width_pt / 72 * dpi))
            draw.line((px(item.x1), px(item.y1), px(item.x2), px(item.y2)), item.colour.rgb, width)
        elif isinstance(item, _Text):
            draw.text(
                (item.x * scale, item.baseline * scale),
                item.text,
                fill=item.colour.rgb,
                font=_raster_font(item.bold, round(item.size / 72 * dpi, 2)),
                anchor="ms" if item.centred else "ls",
            )
        else:
            count = len(item.matrix)
            # Whole pixels per module, rounded: at 150 dpi a 0.505 mm module is 3 px, not
            # 2 (0.34 mm). Rounding up may eat at most half a module of each quiet zone.
            exact = item.size * scale / count
            module = max(1, round(exact))
            if module * count > px(item.size) + module:
                module = max(1, math.floor(exact))
            left = px(item.x) + (px(item.size) - module * count) // 2
            top = px(item.y) + (px(item.size) - module * count) // 2
            for row_index, row in enumerate(item.matrix):
                y = top + row_index * module
                for start, end in _dark_runs(row):
                    box = (left + start * module, y, left + end * module - 1, y + module - 1)
                    draw.rectangle(box, fill=_BLACK.rgb)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", dpi=(dpi, dpi))
    return buffer.getvalue()


@functools.lru_cache(maxsize=32)
def _raster_font(bold: bool, size_px: float) -> ImageFont.FreeTypeFont:
    """The packaged font for Pillow; basic layout (no kerning), as reportlab measures it.

    :raises ConfigError: if the installation lacks the font file.
    """
    filename = _FONTS[bold][1]
    try:
        return ImageFont.truetype(
            str(_FONT_DIR / filename), size_px, layout_engine=ImageFont.Layout.BASIC
        )
    except OSError as exc:
        raise ConfigError(f"the card's font {filename} cannot be loaded: {exc}") from exc


def _dark_runs(row: Sequence[bool]) -> list[tuple[int, int]]:
    """Half-open [start, end) spans of consecutive dark modules, drawn as one rectangle each."""
    runs = []
    start = 0
    for dark, group in itertools.groupby(row):
        end = start + sum(1 for _ in group)
        if dark:
            runs.append((start, end))
        start = end
    return runs
