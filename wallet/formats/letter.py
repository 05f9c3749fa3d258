"""Letters that bring a holder without e-mail their claim link: one A4 page each.

DIN 5008 form B: the recipient's address in the envelope window (address field
45 mm from the top, 20 mm from the left, 85 x 45 mm), the city's sender line
above it, fold marks at 105 and 210 mm and a hole mark at 148.5 mm. Then the
subject, short instructions in German with English below, the claim link in
print and as a QR code for the phone's camera, and, where the pass type has a
print design, the printable card at real size with crop marks at the foot.

A print shop gets letters as PDF files of at most ``per_file`` pages, so memory
stays flat however many letters a run makes (a canvas holds its pages until it
is saved). The layout primitives and painter are the printable card's.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from reportlab.pdfgen import canvas  # type: ignore[import-untyped]

from wallet.domain import WalletPass
from wallet.formats.printable import (
    _BLACK,
    _CUT_GAP,
    _CUT_LENGTH,
    _PT_PER_MM,
    A4_HEIGHT_MM,
    A4_WIDTH_MM,
    CARD_HEIGHT_MM,
    CARD_WIDTH_MM,
    PrintDesign,
    _card_layout,
    _date,
    _Item,
    _Layout,
    _Line,
    _paint,
    _printable,
    _QRCode,
    _Text,
    _wrap,
)
from wallet.formats.qr import qr_matrix
from wallet.passtypes import Text

__all__ = ["Letter", "letter_files"]

_LEFT = 25.0  # text column: DIN 5008's 25 mm margin
_WIDTH = A4_WIDTH_MM - _LEFT - 20.0
_ADDRESS_TOP = 45.0 + 17.7  # below the 17.7 mm note zone of the address field
_LINK_QR = 28.0  # a short link is a small code: 28 mm is easy for any phone camera
_CARD_Y = A4_HEIGHT_MM - 12.0 - CARD_HEIGHT_MM
_BODY_BOTTOM = _CARD_Y - _CUT_GAP - _CUT_LENGTH - 4.0

_SUBJECT = Text(de="Ihr digitaler Ausweis: {label}", en="Your digital pass: {label}")
_BODY = {
    "de": (
        "Guten Tag,",
        "Ihr Ausweis „{label}“ gibt es jetzt auch digital. Öffnen Sie den Link unten auf "
        "Ihrem Smartphone (oder scannen Sie den QR-Code rechts mit der Kamera), um ihn in "
        "Apple Wallet oder Google Wallet zu speichern. Ohne Smartphone: Die Karte unten "
        "ausschneiden und mitnehmen, sie gilt ebenso.",
        "Der Link ist persönlich. Er gilt bis {until}.",
    ),
    "en": (
        "Hello,",
        "Your pass “{label}” is now digital too. Open the link below on your smartphone "
        "(or scan the QR code on the right) to add it to Apple Wallet or Google Wallet. "
        "Without a smartphone: cut out the card below and carry it; it is just as valid.",
        "The link is personal. It is valid until {until}.",
    ),
}


@dataclass(frozen=True)
class Letter:
    """One holder's letter: where it goes and what it brings."""

    recipient: tuple[str, ...]  # the address lines, name first
    postcode: str  # letters are sorted by it for the post's discount
    claim_url: str
    wallet_pass: WalletPass
    valid_until: datetime  # of the claim link


def _address(letter: Letter, sender: str) -> list[_Item]:
    items: list[_Item] = [_Text(_LEFT, _ADDRESS_TOP - 3.0, _printable(sender), 7, False, _BLACK)]
    for number, line in enumerate(letter.recipient[:6]):
        items.append(_Text(_LEFT, _ADDRESS_TOP + 2.0 + 4.5 * number, _printable(line), 10,
                           False, _BLACK))  # fmt: skip
    return items


def _marks() -> list[_Item]:
    """Fold marks (105, 210 mm) and the hole mark (148.5 mm) on the left edge."""
    return [
        _Line(3.0, 105.0, 8.0, 105.0, _BLACK, 0.3),
        _Line(3.0, 210.0, 8.0, 210.0, _BLACK, 0.3),
        _Line(3.0, 148.5, 10.0, 148.5, _BLACK, 0.3),
    ]


def _paragraphs(letter: Letter, lang: str, top: float, width: float) -> tuple[list[_Item], float]:
    label = letter.wallet_pass.pass_type.label.get(lang)
    until = _date(letter.valid_until, lang)
    items: list[_Item] = []
    y = top
    for paragraph in _BODY[lang]:
        for line in _wrap(_printable(paragraph.format(label=label, until=until)), size=10,
                          bold=False, width=width):  # fmt: skip
            items.append(_Text(_LEFT, y, line, 10, False, _BLACK))
            y += 4.4
        y += 2.0
    return items, y


def _page(letter: Letter, design: PrintDesign | None, sender: str, now: datetime) -> _Layout:
    pass_type = letter.wallet_pass.pass_type
    first, second = "de", "en"
    items: list[_Item] = [*_marks(), *_address(letter, sender)]
    items.append(_Text(A4_WIDTH_MM - 20.0 - 30.0, 100.0, _date(now, "de"), 10, False, _BLACK))
    subject = " / ".join(_SUBJECT.get(code).format(label=pass_type.label.get(code))
                         for code in (first, second))  # fmt: skip
    y = 108.0
    for line in _wrap(_printable(subject), size=11, bold=True, width=_WIDTH):
        items.append(_Text(_LEFT, y, line, 11, True, _BLACK))
        y += 5.0
    text_width = _WIDTH - _LINK_QR - 5.0
    qr_top = y + 2.0
    german, y = _paragraphs(letter, first, y + 4.0, text_width)
    items += german
    for line in _wrap(letter.claim_url, size=9, bold=True, width=text_width):
        items.append(_Text(_LEFT, y, line, 9, True, _BLACK))
        y += 4.0
    matrix = tuple(tuple(row) for row in qr_matrix(letter.claim_url))
    qr_x = A4_WIDTH_MM - 20.0 - _LINK_QR
    items.append(_QRCode(qr_x, qr_top, _LINK_QR, matrix))
    english, y = _paragraphs(letter, second, y + 4.0, _WIDTH)
    items += english
    if y > _BODY_BOTTOM:
        raise ValueError("the letter's text runs into the card; shorten the pass type's label")
    if design is not None:
        card = _card_layout(letter.wallet_pass, design, first, now)
        x0, y0 = (A4_WIDTH_MM - CARD_WIDTH_MM) / 2, _CARD_Y
        x1, y1 = x0 + card.width, y0 + card.height
        items += [item.moved(x0, y0) for item in card.items]
        for x, y_, sx, sy in ((x0, y0, -1, -1), (x1, y0, 1, -1), (x0, y1, -1, 1), (x1, y1, 1, 1)):
            near, far = _CUT_GAP, _CUT_GAP + _CUT_LENGTH
            items.append(_Line(x + sx * near, y_, x + sx * far, y_, _BLACK, 0.5))
            items.append(_Line(x, y_ + sy * near, x, y_ + sy * far, _BLACK, 0.5))
    return _Layout(A4_WIDTH_MM, A4_HEIGHT_MM, tuple(items))


def letter_files(
    letters: Iterable[Letter],
    *,
    designs: dict[str, PrintDesign],
    sender: str,
    now: datetime,
    per_file: int = 1000,
) -> Iterator[tuple[int, bytes]]:
    """PDF files of at most ``per_file`` letters each: (letters in the file, its bytes).

    ``designs`` maps a pass type to its print design; a type without one gets a
    letter without the card.
    """
    batch: list[Letter] = []
    for letter in letters:
        batch.append(letter)
        if len(batch) == per_file:
            yield len(batch), _file(batch, designs, sender, now)
            batch = []
    if batch:
        yield len(batch), _file(batch, designs, sender, now)


def _file(
    letters: list[Letter], designs: dict[str, PrintDesign], sender: str, now: datetime
) -> bytes:
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=(A4_WIDTH_MM * _PT_PER_MM, A4_HEIGHT_MM * _PT_PER_MM),
                        invariant=1, pageCompression=1, lang="de")  # fmt: skip
    pdf.setTitle("Briefe: digitale Ausweise")
    pdf.setCreator("wallet")
    for letter in letters:
        _paint(pdf, _page(letter, designs.get(letter.wallet_pass.pass_type.id), sender, now))
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()
