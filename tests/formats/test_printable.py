"""The printable card: page sizes, a QR code that scans back, text that fits, designs."""

from __future__ import annotations

import io
import tomllib
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest
import zxingcpp
from PIL import Image, ImageFilter

from tests.factories import HOLDERS, NOW, PASS_TYPES, City
from wallet.config import PROJECT_ROOT
from wallet.domain import HolderField, WalletPass
from wallet.errors import InputError, PassTypeError, QRTextError
from wallet.formats.printable import (
    A4_HEIGHT_MM,
    A4_WIDTH_MM,
    CARD_HEIGHT_MM,
    CARD_WIDTH_MM,
    Colour,
    PrintDesign,
    card_pdf,
    card_png,
    load_print_design,
    parse_print_design,
    sheet_pdf,
)
from wallet.formats.qr import qr_info, qr_matrix, render_png
from wallet.formats.qrimage import read_qr_image
from wallet.passtypes import Text

PASSES = PROJECT_ROOT / "templates" / "passes"
PT_PER_MM = 72 / 25.4
LONG_NAME = "Maximiliane Alexandra Theodora Freifrau von und zu Hohenstein-Wittgenstein-Berle"
BANNER_RED = (0xB0, 0x00, 0x20)
DASH = "\u2013"  # en dash
assert len(LONG_NAME) == 80  # the longest name the library type accepts

# The card carries one QR code; linear formats would only find stripes in its text.
QR_ONLY = zxingcpp.BarcodeFormat.QRCode


@pytest.fixture(scope="module")
def qr_texts() -> dict[str, str]:
    """Real QR texts: signed pass tokens in the compact numeric encoding."""
    city = City()
    return {type_id: city.issue_qr(type_id) for type_id in PASS_TYPES}


def make_pass(
    qr_texts: dict[str, str],
    type_id: str = "library",
    *,
    state: str = "valid",
    valid_from: datetime = NOW,
    **holder: str,
) -> WalletPass:
    pass_type = PASS_TYPES[type_id]
    return WalletPass.from_holder(
        pass_type,
        {**HOLDERS[type_id], **holder},
        serial="SERIAL0123456789",
        valid_from=valid_from,
        valid_until=pass_type.valid_until(valid_from),
        state=state,
        reason=None,
        token="header.payload.signature",
        qr_text=qr_texts[type_id],
        updated_at=valid_from,
        authentication_token="0123456789abcdef",
    )


def design(type_id: str = "library") -> PrintDesign:
    return load_print_design(PASSES / type_id)


@pytest.fixture
def open_pdf() -> Iterator[Any]:
    """Open PDF bytes with pdfium; every document is closed after the test."""
    documents: list[pdfium.PdfDocument] = []

    def opener(data: bytes) -> pdfium.PdfDocument:
        documents.append(pdfium.PdfDocument(data))
        return documents[-1]

    yield opener
    for document in reversed(documents):
        document.close()


def page_text(document: pdfium.PdfDocument) -> str:
    return str(document[0].get_textpage().get_text_range())


def page_png(document: pdfium.PdfDocument, *, dpi: int = 300) -> bytes:
    image = document[0].render(scale=dpi / 72).to_pil()
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# --- page sizes and the QR code ---------------------------------------------


@pytest.mark.parametrize("type_id", sorted(PASS_TYPES))
def test_card_pdf_is_one_id1_page(qr_texts: dict[str, str], open_pdf: Any, type_id: str) -> None:
    document = open_pdf(card_pdf(make_pass(qr_texts, type_id), design=design(type_id), lang="de"))
    assert len(document) == 1
    width, height = document[0].get_size()
    assert width == pytest.approx(CARD_WIDTH_MM * PT_PER_MM, abs=0.1)
    assert height == pytest.approx(CARD_HEIGHT_MM * PT_PER_MM, abs=0.1)
    assert (width, height) == pytest.approx((242.65, 153.01), abs=0.1)  # 85.60 x 53.98 mm


def test_sheet_pdf_is_one_a4_portrait_page(qr_texts: dict[str, str], open_pdf: Any) -> None:
    document = open_pdf(sheet_pdf(make_pass(qr_texts), design=design(), lang="en"))
    assert len(document) == 1
    assert document[0].get_size() == pytest.approx((595.28, 841.89), abs=0.1)
    assert (A4_WIDTH_MM, A4_HEIGHT_MM) == (210, 297)


@pytest.mark.parametrize("type_id", sorted(PASS_TYPES))
def test_card_pdf_qr_code_scans_back_to_the_qr_text(
    qr_texts: dict[str, str], open_pdf: Any, type_id: str
) -> None:
    pdf = card_pdf(make_pass(qr_texts, type_id), design=design(type_id), lang="de")
    assert read_qr_image(page_png(open_pdf(pdf))) == qr_texts[type_id]


@pytest.mark.parametrize("type_id", sorted(PASS_TYPES))
def test_sheet_pdf_qr_code_scans_back_to_the_qr_text(
    qr_texts: dict[str, str], open_pdf: Any, type_id: str
) -> None:
    pdf = sheet_pdf(make_pass(qr_texts, type_id), design=design(type_id), lang="en")
    assert read_qr_image(page_png(open_pdf(pdf))) == qr_texts[type_id]


@pytest.mark.parametrize("type_id", sorted(PASS_TYPES))
@pytest.mark.parametrize("dpi", [150, 300])
def test_card_png_qr_code_scans_back_to_the_qr_text(
    qr_texts: dict[str, str], type_id: str, dpi: int
) -> None:
    png = card_png(make_pass(qr_texts, type_id), design=design(type_id), lang="de", dpi=dpi)
    assert read_qr_image(png) == qr_texts[type_id]


def test_card_qr_code_is_large_enough_to_scan_comfortably(
    qr_texts: dict[str, str], open_pdf: Any
) -> None:
    """At least 20 mm of code, and four light modules of quiet zone on every side."""
    dpi = 300
    image = open_pdf(card_pdf(make_pass(qr_texts), design=design(), lang="de"))[0]
    grey = image.render(scale=dpi / 72).to_pil().convert("L")
    (code,) = zxingcpp.read_barcodes(grey, formats=QR_ONLY)
    # The very code qr.py makes: same version (so same segments) and error correction.
    assert int(code.extra["Version"]) == qr_info(qr_texts["library"]).version
    assert code.ec_level == "M"
    corners = [code.position.top_left, code.position.bottom_right]
    left, top = corners[0].x, corners[0].y
    right, bottom = corners[1].x, corners[1].y
    assert (right - left) / dpi * 25.4 >= 20
    assert (bottom - top) / dpi * 25.4 >= 20
    modules = len(qr_matrix(qr_texts["library"])) - 8  # qr_matrix includes 4 + 4 quiet modules
    quiet = 4 * (right - left) / modules
    outer = [round(left - quiet) + 1, round(top - quiet) + 1]
    ring = grey.crop((*outer, round(right + quiet) - 1, round(bottom + quiet) - 1))
    # Blank out the code itself; what is left is the quiet zone around it.
    ring.paste(
        255, (left - 1 - outer[0], top - 1 - outer[1], right + 1 - outer[0], bottom + 1 - outer[1])
    )
    assert ring.getextrema()[0] > 200, "the quiet zone must stay light"


def test_qr_matrix_is_the_code_render_png_draws(qr_texts: dict[str, str]) -> None:
    text = qr_texts["parking"]
    matrix = qr_matrix(text)
    image = Image.open(io.BytesIO(render_png(text, box_size=1))).convert("L")
    assert image.size == (len(matrix), len(matrix))
    drawn = [[image.getpixel((x, y)) == 0 for x in range(image.width)] for y in range(image.height)]
    assert drawn == matrix
    assert not any(matrix[0]) and not any(row[0] for row in matrix)  # quiet zone included
    assert any(matrix[4])


# --- text on the card -------------------------------------------------------


def test_card_shows_holder_labels_validity_and_serial_in_german(
    qr_texts: dict[str, str], open_pdf: Any
) -> None:
    text = page_text(open_pdf(card_pdf(make_pass(qr_texts), design=design(), lang="de")))
    for expected in (
        "Stadtbüchereien",
        "Bibliotheksausweis",
        "Ausweisnummer",
        "100200300400",
        "Name",
        "Erika Mustermann",
        f"Gültig 24.11.2026 {DASH} 24.11.2028",
        "SERIAL0123456789",
    ):
        assert expected in text
    assert "Card number" not in text
    assert "WIDERRUFEN" not in text and "GESPERRT" not in text


def test_card_shows_labels_and_dates_in_english(qr_texts: dict[str, str], open_pdf: Any) -> None:
    wallet_pass = make_pass(qr_texts, "parking")
    text = page_text(open_pdf(card_pdf(wallet_pass, design=design("parking"), lang="en")))
    for expected in (
        "Road Traffic Office",
        "Resident parking permit",
        "Licence plate",
        "D-AB 1234",
        "Zone",
        f"Valid 24 Nov 2026 {DASH} 24 Nov 2027",
    ):
        assert expected in text
    assert "Kennzeichen" not in text and "Gültig" not in text


def test_dates_are_the_days_of_the_city_time_zone(qr_texts: dict[str, str], open_pdf: Any) -> None:
    late = datetime(2026, 11, 24, 23, 30, tzinfo=UTC)  # already 25 November in Berlin
    pdf = card_pdf(make_pass(qr_texts, valid_from=late), design=design(), lang="de")
    assert f"Gültig 25.11.2026 {DASH} 25.11.2028" in page_text(open_pdf(pdf))


@pytest.mark.parametrize(
    ("state", "lang", "banner"),
    [
        ("revoked", "de", f"WIDERRUFEN {DASH} ungültig"),
        ("revoked", "en", f"REVOKED {DASH} not valid"),
        ("suspended", "de", "GESPERRT"),
        ("suspended", "en", "SUSPENDED"),
    ],
)
def test_inactive_pass_carries_a_banner(
    qr_texts: dict[str, str], open_pdf: Any, state: str, lang: str, banner: str
) -> None:
    wallet_pass = make_pass(qr_texts, "parking", state=state)
    text = page_text(open_pdf(card_pdf(wallet_pass, design=design("parking"), lang=lang)))
    assert banner in text


def test_revoked_card_has_no_qr_code(qr_texts: dict[str, str], open_pdf: Any) -> None:
    """As on the citizen's page: a revoked pass shows no code that every check refuses."""
    wallet_pass = make_pass(qr_texts, state="revoked")
    document = open_pdf(card_pdf(wallet_pass, design=design(), lang="de"))
    assert "Kein QR-Code" in page_text(document)
    with pytest.raises(QRTextError):
        read_qr_image(page_png(document))
    with pytest.raises(QRTextError):
        read_qr_image(card_png(wallet_pass, design=design(), lang="de"))


def test_suspended_card_keeps_its_qr_code(qr_texts: dict[str, str], open_pdf: Any) -> None:
    wallet_pass = make_pass(qr_texts, "parking", state="suspended")
    pdf = card_pdf(wallet_pass, design=design("parking"), lang="de")
    assert read_qr_image(page_png(open_pdf(pdf))) == qr_texts["parking"]


def banner_pixels(png: bytes) -> int:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    return sum(count for count, colour in image.getcolors(1 << 20) if colour == BANNER_RED)


def test_png_shows_the_banner_only_for_an_inactive_pass(qr_texts: dict[str, str]) -> None:
    valid = card_png(make_pass(qr_texts), design=design(), lang="en", dpi=150)
    revoked = card_png(make_pass(qr_texts, state="revoked"), design=design(), lang="en", dpi=150)
    assert banner_pixels(valid) == 0
    # a band across the text column (the QR code keeps the full height beside it)
    assert banner_pixels(revoked) > 0.03 * 506 * 319


@pytest.mark.parametrize(
    ("now", "banner"),
    [
        (NOW + timedelta(days=800), f"EXPIRED {DASH} not valid"),
        (NOW - timedelta(days=1), "NOT YET VALID"),
        (NOW + timedelta(days=30), None),
        (None, None),
    ],
)
def test_dates_give_a_banner_when_now_is_given(
    qr_texts: dict[str, str], open_pdf: Any, now: datetime | None, banner: str | None
) -> None:
    pdf = card_pdf(make_pass(qr_texts), design=design(), lang="en", now=now)
    text = page_text(open_pdf(pdf))
    if banner is None:
        assert "not valid" not in text.lower() and "NOT YET" not in text
    else:
        assert banner in text


def test_naive_now_is_refused(qr_texts: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="aware"):
        card_pdf(make_pass(qr_texts), design=design(), lang="de", now=datetime(2026, 12, 1))


def test_unknown_language_is_refused(qr_texts: dict[str, str]) -> None:
    with pytest.raises(InputError) as caught:
        card_pdf(make_pass(qr_texts), design=design(), lang="fr")
    assert caught.value.field == "lang"


def flat(text: str) -> str:
    """Page text with line breaks as spaces; pdfium reports a hyphen ending a line as U+FFFE."""
    return " ".join(text.replace("\ufffe", "-").split())


def test_umlauts_and_sharp_s_survive_in_the_pdf_text(
    qr_texts: dict[str, str], open_pdf: Any
) -> None:
    name = "Jürgen Öztürk-Weiß Ähler"
    pdf = card_pdf(make_pass(qr_texts, name=name), design=design(), lang="de")
    assert name in flat(page_text(open_pdf(pdf)))


@pytest.mark.parametrize(
    "name",
    ["Łukasz Ağaoğlu-Nguyễn", "Żółć Đặng Thị Hương", "Dmitrij Дмитрий Σωκράτης"],
)
def test_card_prints_names_outside_latin1(
    qr_texts: dict[str, str], open_pdf: Any, name: str
) -> None:
    """The card carries the name as the page and the token do: "Ł", "ễ", never "L", "e"."""
    wallet_pass = make_pass(qr_texts, name=name)
    pdf = card_pdf(wallet_pass, design=design(), lang="de")
    assert name in flat(page_text(open_pdf(pdf)))
    assert b"/FontFile2" in pdf  # the packaged TrueType font is embedded, not a viewer's font
    assert read_qr_image(card_png(wallet_pass, design=design(), lang="de")) == qr_texts["library"]


def test_png_draws_letters_outside_latin1_not_their_base_letters(qr_texts: dict[str, str]) -> None:
    """The PNG draws "Ł" and "ễ" with their strokes and marks, and no missing-glyph box."""

    def drawn(name: str) -> bytes:
        png = card_png(make_pass(qr_texts, name=name), design=design(), lang="de", dpi=300)
        return Image.open(io.BytesIO(png)).convert("L").tobytes()

    real, folded = drawn("Łukasz Nguyễn"), drawn("Lukasz Nguyen")
    changed = sum(a != b for a, b in zip(real, folded, strict=True))
    assert 0 < changed < 1500  # a stroke and two marks, not whole replacement glyphs


def test_character_the_font_lacks_degrades_to_a_question_mark(
    qr_texts: dict[str, str], open_pdf: Any
) -> None:
    """Han characters are not in the packaged font: "?" on the card, the truth in the QR code."""
    wallet_pass = make_pass(qr_texts, name="Li 李")
    text = page_text(open_pdf(card_pdf(wallet_pass, design=design(), lang="de")))
    assert "Li ?" in text
    assert "■" not in text and "李" not in text


def test_card_font_ships_inside_the_package_with_its_licence() -> None:
    fonts = resources.files("wallet.formats") / "fonts"
    for name in ("DejaVuSansCondensed.ttf", "DejaVuSansCondensed-Bold.ttf", "LICENSE"):
        assert (fonts / name).is_file(), name
    assert "Bitstream Vera" in (fonts / "LICENSE").read_text(encoding="utf-8")
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    shipped = pyproject["tool"]["setuptools"]["package-data"]["wallet.formats"]
    assert {"fonts/*.ttf", "fonts/LICENSE"} <= set(shipped)


def name_lines(text: str) -> list[str]:
    """The lines of the "Name" value in the card's text.

    pdfium joins a line that ends in a hyphen to the next one, with U+FFFE for the hyphen.
    """
    lines = text.replace("\ufffe", "-\n").splitlines()
    return lines[lines.index("Name") + 1 : next(i for i, x in enumerate(lines) if "Gültig" in x)]


@pytest.mark.parametrize(
    "name",
    [
        "Hans-Joachim Königswinter-Oberdollendorf",
        "Maximiliane Alexandra Theodora Königswinter",
        LONG_NAME,
    ],
)
def test_long_name_wraps_at_spaces_never_mid_word(
    qr_texts: dict[str, str], open_pdf: Any, name: str
) -> None:
    """Each line ends at a space or after a hyphen: "Königswint / er" never happens."""
    text = page_text(open_pdf(card_pdf(make_pass(qr_texts, name=name), design=design(), lang="de")))
    lines = name_lines(text)
    assert 1 <= len(lines) <= 3
    rebuilt = ""
    for line in lines:
        assert line == line.strip() and line
        rebuilt += line if not rebuilt or rebuilt.endswith("-") else " " + line
    assert rebuilt == name
    pieces = set(name.replace("-", "- ").split())
    for line in lines:
        assert set(line.replace("-", "- ").split()) <= pieces, f"a word was split: {line!r}"


@pytest.mark.parametrize(
    ("plates", "lines"),
    [
        ("D-AB 1234, D-CD 56", ["D-AB 1234, D-CD 56"]),
        # The longest two plates: "SÜW-" over "CD 456H" would read as another car.
        ("SÜW-AB 123E, SÜW-CD 456H", ["SÜW-AB 123E,", "SÜW-CD 456H"]),
    ],
)
def test_a_permits_two_plates_wrap_between_the_plates_never_inside_one(
    qr_texts: dict[str, str], open_pdf: Any, plates: str, lines: list[str]
) -> None:
    parking = make_pass(qr_texts, "parking", plate=plates)
    text = page_text(open_pdf(card_pdf(parking, design=design("parking"), lang="de")))
    shown = text.replace("\ufffe", "-\n").splitlines()
    assert shown[shown.index("Kennzeichen") + 1 : shown.index("Zone")] == lines


def test_long_name_shrinks_before_it_wraps_into_more_lines(
    qr_texts: dict[str, str], open_pdf: Any
) -> None:
    """A name that fits three lines only at a smaller size is set smaller, not broken."""
    document = open_pdf(card_pdf(make_pass(qr_texts, name=LONG_NAME), design=design(), lang="de"))
    short_pass = make_pass(qr_texts, name="Erika Mustermann")
    short = open_pdf(card_pdf(short_pass, design=design(), lang="de"))

    def name_height(doc: pdfium.PdfDocument) -> float:
        boxes = [box for char, box in char_boxes(doc) if char == "M"]
        return boxes[-1][3] - boxes[-1][1]  # the last "M" is in the name

    assert name_height(document) < name_height(short)
    assert len(name_lines(page_text(document))) == 3


def qr_text_of_version(version: int) -> str:
    """A numeric QR text ("WP1" + digits) that needs exactly this QR version."""
    digits = 600
    while qr_info("WP1" + "7" * digits).version < version:
        digits += 10
    text = "WP1" + "7" * digits
    assert qr_info(text).version == version
    return text


@pytest.mark.parametrize("version", [13, 15, 16])
def test_card_qr_modules_are_at_least_half_a_millimetre(
    qr_texts: dict[str, str], open_pdf: Any, version: int
) -> None:
    """Typical passes are versions 13-16; 0.5 mm modules leave room for a 150-dpi print."""
    text = qr_text_of_version(version)
    wallet_pass = replace(make_pass(qr_texts), qr_text=text)
    dpi = 600
    document = open_pdf(card_pdf(wallet_pass, design=design(), lang="de"))
    (code,) = zxingcpp.read_barcodes(
        document[0].render(scale=dpi / 72).to_pil().convert("L"), formats=QR_ONLY
    )
    assert code.text == text
    width_px = code.position.top_right.x - code.position.top_left.x
    module_mm = width_px / (17 + 4 * version) / dpi * 25.4
    assert module_mm >= 0.5


@pytest.mark.parametrize("version", [13, 15, 16])
@pytest.mark.parametrize("blur", [0.8, 1.2])
def test_card_qr_decodes_at_150_dpi_with_blur(
    qr_texts: dict[str, str], open_pdf: Any, version: int, blur: float
) -> None:
    """A 150-dpi print or scan, softened by a Gaussian blur of about 0.13-0.2 mm."""
    text = qr_text_of_version(version)
    wallet_pass = replace(make_pass(qr_texts), qr_text=text)
    document = open_pdf(card_pdf(wallet_pass, design=design(), lang="de"))
    scan = document[0].render(scale=150 / 72).to_pil().convert("L")
    scan = scan.filter(ImageFilter.GaussianBlur(blur))
    assert [code.text for code in zxingcpp.read_barcodes(scan, formats=QR_ONLY)] == [text]
    png = Image.open(io.BytesIO(card_png(wallet_pass, design=design(), lang="de", dpi=150)))
    blurred_png = png.convert("L").filter(ImageFilter.GaussianBlur(blur))
    assert [code.text for code in zxingcpp.read_barcodes(blurred_png, formats=QR_ONLY)] == [text]


def char_boxes(document: pdfium.PdfDocument) -> list[tuple[str, tuple[float, float, float, float]]]:
    textpage = document[0].get_textpage()
    boxes = []
    for index in range(textpage.count_chars()):
        char = textpage.get_text_range(index, 1)
        if char.strip():
            boxes.append((char, textpage.get_charbox(index)))
    return boxes


def qr_left_edge_pt(document: pdfium.PdfDocument) -> float:
    """Where the scanner finds the QR code, in points from the page's left edge."""
    scale = 300 / 72
    (code,) = zxingcpp.read_barcodes(
        document[0].render(scale=scale).to_pil().convert("L"), formats=QR_ONLY
    )
    return min(code.position.top_left.x, code.position.bottom_left.x) / scale


@pytest.mark.parametrize(
    "name",
    [LONG_NAME, "Hubert" + "x" * 74],  # many words, and one word longer than a line
)
def test_longest_name_stays_on_the_card_and_off_the_qr_code(
    qr_texts: dict[str, str], open_pdf: Any, name: str
) -> None:
    document = open_pdf(card_pdf(make_pass(qr_texts, name=name), design=design(), lang="de"))
    width, height = document[0].get_size()
    qr_left = qr_left_edge_pt(document)
    text = flat(page_text(document))
    assert "".join(name.split()) in "".join(text.split())  # wrapped, nothing dropped
    boxes = char_boxes(document)
    assert len(boxes) > 80
    for char, (left, bottom, right, top) in boxes:
        assert left >= 0 and right <= width and bottom >= 0 and top <= height, char
    header_chars = len("StadtbüchereienBibliotheksausweis")
    for char, (_, _, right, _) in boxes[header_chars:]:
        assert right < qr_left, f"{char!r} runs into the QR code"


def test_too_much_holder_text_is_cut_off_instead_of_overflowing(
    qr_texts: dict[str, str], open_pdf: Any
) -> None:
    """A pass type with many long fields: the column ends with an ellipsis above the footer."""
    base = make_pass(qr_texts)
    fields = tuple(
        HolderField(f"f{i}", Text(de=f"Feld {i}", en=f"Field {i}"), f"Wert{i} " * 30)
        for i in range(5)
    )
    document = open_pdf(card_pdf(replace(base, holder=fields), design=design(), lang="de"))
    text = page_text(document)
    assert "…" in text
    assert f"Gültig 24.11.2026 {DASH} 24.11.2028" in text
    boxes = char_boxes(document)
    chars = "".join(char for char, _ in boxes)
    fields_start, footer_start = len("StadtbüchereienBibliotheksausweis"), chars.index("Gültig")
    validity_top = max(box[3] for _, box in boxes[footer_start : footer_start + 6])
    qr_left = qr_left_edge_pt(document)
    assert footer_start - fields_start > 100
    for char, (_, bottom, right, _) in boxes[fields_start:footer_start]:
        assert bottom > validity_top, f"{char!r} runs into the footer"
        assert right < qr_left, f"{char!r} runs into the QR code"
    assert read_qr_image(page_png(document)) == qr_texts["library"]


# --- PDF properties ---------------------------------------------------------


def test_pdf_metadata_names_the_pass_and_the_language(
    qr_texts: dict[str, str], open_pdf: Any
) -> None:
    pdf = card_pdf(make_pass(qr_texts), design=design(), lang="en")
    metadata = open_pdf(pdf).get_metadata_dict()
    assert metadata["Title"] == "Library card"
    assert metadata["Author"] == "City Libraries"
    assert b"/Lang (en)" in pdf
    assert b"/PrintScaling /None" in pdf


@pytest.mark.parametrize("render", [card_pdf, sheet_pdf, card_png])
def test_same_pass_gives_the_same_bytes(qr_texts: dict[str, str], render: Any) -> None:
    first = render(make_pass(qr_texts), design=design(), lang="de")
    second = render(make_pass(qr_texts), design=design(), lang="de")
    other = render(make_pass(qr_texts, name="Max Mustermann"), design=design(), lang="de")
    assert first == second
    assert first != other


def test_sheet_tells_how_to_print_and_cut_in_the_chosen_language(
    qr_texts: dict[str, str], open_pdf: Any
) -> None:
    german = page_text(open_pdf(sheet_pdf(make_pass(qr_texts), design=design(), lang="de")))
    english = page_text(open_pdf(sheet_pdf(make_pass(qr_texts), design=design(), lang="en")))
    assert "Originalgröße / 100 %" in german and "Schnittmarken" in german
    assert "QR-Code" in german and "trocken" in german
    assert "actual size / 100 %" in english and "marks" in english
    assert "Originalgröße" not in english
    assert "Erika Mustermann" in german


def test_sheet_has_crop_marks_outside_the_card_corners(
    qr_texts: dict[str, str], open_pdf: Any
) -> None:
    dpi = 300
    document = open_pdf(sheet_pdf(make_pass(qr_texts), design=design(), lang="de"))
    grey = document[0].render(scale=dpi / 72).to_pil().convert("L")
    left = (A4_WIDTH_MM - CARD_WIDTH_MM) / 2  # the card sits centred horizontally
    right = left + CARD_WIDTH_MM
    # Its top is where its accent band starts, just inside its left edge.
    column = round((left + 2) / 25.4 * dpi)
    top = next(y for y in range(grey.height) if grey.getpixel((column, y)) < 128) / dpi * 25.4
    bottom = top + CARD_HEIGHT_MM

    def dark(x_mm: float, y_mm: float) -> bool:
        x, y = round(x_mm / 25.4 * dpi), round(y_mm / 25.4 * dpi)
        return min(grey.getpixel((x + dx, y + dy)) for dx in (-2, 0, 2) for dy in (-2, 0, 2)) < 128

    for x, y, sx, sy in (
        (left, top, -1, -1),
        (right, top, 1, -1),
        (left, bottom, -1, 1),
        (right, bottom, 1, 1),
    ):
        assert dark(x + sx * 5, y), "horizontal mark along the card edge"
        assert dark(x, y + sy * 5), "vertical mark along the card edge"
        assert not dark(x + sx * 1, y + sy * 1), "marks stay off the corner itself"
        assert not dark(x + sx * 5, y + sy * 5)


# --- PNG ----------------------------------------------------------------------


@pytest.mark.parametrize("dpi", [96, 300, 600])
def test_png_is_card_sized_at_its_dpi(qr_texts: dict[str, str], dpi: int) -> None:
    png = card_png(make_pass(qr_texts), design=design(), lang="de", dpi=dpi)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    assert abs(image.width - CARD_WIDTH_MM / 25.4 * dpi) <= 1
    assert abs(image.height - CARD_HEIGHT_MM / 25.4 * dpi) <= 1
    assert image.info["dpi"] == pytest.approx((dpi, dpi), abs=0.05)  # stored per metre


@pytest.mark.parametrize("dpi", [0, 71, 1201, True])
def test_png_dpi_out_of_range_is_refused(qr_texts: dict[str, str], dpi: int) -> None:
    with pytest.raises(InputError) as caught:
        card_png(make_pass(qr_texts), design=design(), lang="de", dpi=dpi)
    assert caught.value.field == "dpi"


def test_png_draws_umlauts_not_missing_glyph_boxes(qr_texts: dict[str, str]) -> None:
    """The same word drawn with "ü" and with "u" differs only where the dots are."""

    def header(issuer: str) -> Image.Image:
        pass_type = replace(PASS_TYPES["library"], issuer_name=Text(de=issuer, en=issuer))
        wallet_pass = replace(make_pass(qr_texts), pass_type=pass_type)
        png = card_png(wallet_pass, design=design(), lang="de", dpi=300)
        return Image.open(io.BytesIO(png)).convert("L").crop((0, 0, 1011, 60))

    with_umlaut, without = header("Stadtbüchereien"), header("Stadtbuchereien")
    difference = [a != b for a, b in zip(with_umlaut.tobytes(), without.tobytes(), strict=True)]
    changed = sum(difference)
    assert 0 < changed < 200  # two dots, not a whole replacement glyph


# --- designs ------------------------------------------------------------------


@pytest.mark.parametrize("type_id", sorted(PASS_TYPES))
def test_every_pass_type_has_a_print_design_with_enough_contrast(type_id: str) -> None:
    loaded = design(type_id)
    assert loaded.text.contrast(loaded.background) >= 4.5
    assert loaded.on_accent.contrast(loaded.accent) >= 4.5


def test_contrast_is_computed_as_wcag_defines_it() -> None:
    white, black = Colour(255, 255, 255), Colour(0, 0, 0)
    assert black.contrast(white) == pytest.approx(21)
    assert Colour.parse("#767676", where="x").contrast(white) == pytest.approx(4.54, abs=0.01)
    assert Colour.parse("#777777", where="x").contrast(white) == pytest.approx(4.48, abs=0.01)


def write_design(folder: Path, body: str) -> Path:
    (folder / "print").mkdir(parents=True)
    (folder / "print" / "design.toml").write_text(body, encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('accent = "#0b4f8a"\non_accent = "#ffffff"\ntext = "#777777"\n', "text on background"),
        ('accent = "#6fa8dc"\non_accent = "#ffffff"\ntext = "#000000"\n', "on_accent on accent"),
        (
            'accent = "#0b4f8a"\non_accent = "#ffffff"\ntext = "#ffffff"\nbackground = "#f0f0f0"\n',
            "text on background",
        ),
    ],
)
def test_design_with_too_little_contrast_is_refused(
    tmp_path: Path, body: str, message: str
) -> None:
    with pytest.raises(PassTypeError, match=message) as caught:
        load_print_design(write_design(tmp_path, body))
    assert "design.toml" in caught.value.message
    assert "4.5:1" in caught.value.message


def test_design_built_in_code_is_checked_too() -> None:
    grey = Colour(0x99, 0x99, 0x99)
    with pytest.raises(PassTypeError, match="contrast"):
        PrintDesign(accent=Colour(0, 0, 0), on_accent=Colour(255, 255, 255), text=grey)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"accent": "#000", "on_accent": "#ffffff", "text": "#000000"}, "#rrggbb"),
        ({"accent": "navy", "on_accent": "#ffffff", "text": "#000000"}, "#rrggbb"),
        ({"on_accent": "#ffffff", "text": "#000000"}, "accent is required"),
        ({"accent": "#000000", "on_accent": "#ffffff", "text": "#000000", "font": "x"}, "unknown"),
        (
            {"accent": "#000000", "on_accent": "#ffffff", "text": "#000000", "title": {"de": "x"}},
            "title",
        ),
    ],
)
def test_malformed_design_is_refused(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(PassTypeError, match=message):
        parse_print_design(raw, source="design.toml")


def test_missing_design_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PassTypeError, match="cannot be read"):
        load_print_design(tmp_path)


def test_title_override_replaces_the_label(
    tmp_path: Path, qr_texts: dict[str, str], open_pdf: Any
) -> None:
    body = (
        'accent = "#0b4f8a"\non_accent = "#ffffff"\ntext = "#1a1a1a"\n'
        'title = { de = "Leseausweis", en = "Reader card" }\n'
    )
    custom = load_print_design(write_design(tmp_path, body))
    document = open_pdf(card_pdf(make_pass(qr_texts), design=custom, lang="en"))
    assert "Reader card" in page_text(document)
    assert "Library card" not in page_text(document)
    assert document.get_metadata_dict()["Title"] == "Reader card"


@pytest.mark.parametrize("version", [13, 15, 16])
def test_card_qr_decodes_from_a_300_dpi_scan_shown_at_40_percent(
    qr_texts: dict[str, str], open_pdf: Any, version: int
) -> None:
    """A scan viewed or forwarded at 40 % (120 dpi) and soft: one clean read.

    The old 0.42 mm modules fail this from version 15 on.
    """
    text = qr_text_of_version(version)
    wallet_pass = replace(make_pass(qr_texts), qr_text=text)
    scan = open_pdf(card_pdf(wallet_pass, design=design(), lang="de"))[0]
    image = scan.render(scale=300 / 72).to_pil().convert("L")
    small = image.resize((round(image.width * 0.4), round(image.height * 0.4)))
    small = small.filter(ImageFilter.GaussianBlur(0.9))
    assert [code.text for code in zxingcpp.read_barcodes(small, formats=QR_ONLY)] == [text]
