"""QR rendering (PNG, SVG, sizes) and reading QR codes back from images."""

from __future__ import annotations

import base64
import io
import json
import random
import re
import xml.etree.ElementTree as ET

import pytest
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFilter

from wallet.errors import QRTextError
from wallet.formats.qr import QRCodeInfo, qr_info, render_png, render_svg
from wallet.formats.qrimage import MAX_IMAGE_BYTES, read_qr_image
from wallet.qrtext import encode_qr_text

SVG = "{http://www.w3.org/2000/svg}"

# Data codewords per version at error correction M (ISO/IEC 18004, table 7).
# fmt: off
DATA_CODEWORDS_M = [
    16, 28, 44, 64, 86, 108, 124, 154, 182, 216, 254, 290, 334, 365, 415, 453, 507, 563, 627,
    669, 714, 782, 860, 914, 1000, 1062, 1128, 1193, 1267, 1373, 1455, 1541, 1631, 1725, 1812,
    1914, 1992, 2102, 2216, 2334,
]
# fmt: on


def count_bits(mode: str, version: int) -> int:
    """Width of the character count field (ISO/IEC 18004, table 3)."""
    band = 0 if version <= 9 else 1 if version <= 26 else 2
    return {"numeric": (10, 12, 14), "alnum": (9, 11, 13), "byte": (8, 16, 16)}[mode][band]


def segment_bits(mode: str, length: int, version: int) -> int:
    if mode == "numeric":
        data = 10 * (length // 3) + (0, 4, 7)[length % 3]
    elif mode == "alnum":
        data = 11 * (length // 2) + 6 * (length % 2)
    else:
        data = 8 * length
    return 4 + count_bits(mode, version) + data


def smallest_version(segments: list[tuple[str, int]]) -> int:
    for version in range(1, 41):
        bits = sum(segment_bits(mode, length, version) for mode, length in segments)
        if bits <= 8 * DATA_CODEWORDS_M[version - 1]:
            return version
    raise AssertionError("does not fit")


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def make_jws(*, seed: int) -> str:
    """A realistic ES256 parking permit token with a payload of about 250 bytes."""
    rng = random.Random(seed)
    header = {"alg": "ES256", "kid": "Ab3dE6gH", "typ": "pass+jwt"}
    payload = {
        "iss": "https://pass.stadt.example",
        "sub": b64url(rng.randbytes(16)),
        "pt": "resident_parking",
        "nbf": 1767225600,
        "exp": 1798761600,
        "plate": "D-AB 1234",
        "zone": "12",
        "status": {
            "status_list": {
                "idx": rng.randrange(1 << 19, 1 << 20),
                "uri": "https://pass.stadt.example/status/resident_parking/1",
            }
        },
    }
    raw_header = json.dumps(header, separators=(",", ":")).encode()
    raw_payload = json.dumps(payload, separators=(",", ":")).encode()
    assert 240 <= len(raw_payload) <= 260, len(raw_payload)
    return ".".join([b64url(raw_header), b64url(raw_payload), b64url(rng.randbytes(64))])


def png_image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.fixture(scope="module")
def jws() -> str:
    return make_jws(seed=7)


@pytest.fixture(scope="module")
def text(jws: str) -> str:
    return encode_qr_text(jws)


# --- sizes -------------------------------------------------------------------------------


def test_numeric_version_is_the_one_the_segments_need(text: str) -> None:
    expected = smallest_version([("alnum", 3), ("numeric", len(text) - 3)])
    assert qr_info(text) == QRCodeInfo(
        version=expected, modules=17 + 4 * expected, error_correction="M"
    )


def test_realistic_token_fits_version_13_and_beats_byte_mode(jws: str, text: str) -> None:
    numeric = qr_info(text)
    byte_mode = qr_info(jws)
    assert numeric.version <= 13
    assert numeric.version < byte_mode.version


def test_bare_jws_is_sized_as_byte_mode(jws: str) -> None:
    expected = smallest_version([("byte", len(jws))])
    assert qr_info(jws) == QRCodeInfo(
        version=expected, modules=17 + 4 * expected, error_correction="M"
    )


def test_lowercase_prefix_is_rendered_as_bytes_unchanged(text: str) -> None:
    lower = "wp1" + text[3:]
    assert qr_info(lower).version == smallest_version([("byte", len(lower))])
    assert read_qr_image(render_png(lower, box_size=2)) == lower


def test_scanner_sees_the_version_and_level_we_report(text: str) -> None:
    codes = zxingcpp.read_barcodes(png_image(render_png(text, box_size=2)))
    assert len(codes) == 1
    extra = codes[0].extra
    assert isinstance(extra, dict)
    assert int(extra["Version"]) == qr_info(text).version
    assert codes[0].ec_level == "M"


def test_text_too_long_for_any_qr_code_is_refused() -> None:
    with pytest.raises(QRTextError):
        qr_info("x" * 3000)


# --- PNG ---------------------------------------------------------------------------------


def test_png_decodes_back_to_the_text(text: str) -> None:
    assert read_qr_image(render_png(text)) == text


def test_png_geometry_and_colours(text: str) -> None:
    box = 3
    image = png_image(render_png(text, box_size=box))
    side = (qr_info(text).modules + 8) * box
    assert image.format == "PNG"
    assert image.mode in ("1", "L")
    assert image.size == (side, side)
    grey = image.convert("L")
    histogram = grey.histogram()
    assert histogram[0] > 0 and histogram[255] > 0
    assert histogram[0] + histogram[255] == side * side  # pure black and white
    # quiet zone: four white modules all round
    quiet = 4 * box
    for x, y in [(quiet - 1, quiet - 1), (side - quiet, side - quiet), (0, side // 2)]:
        assert grey.getpixel((x, y)) == 255
    # the finder pattern starts right after the quiet zone, dark
    assert grey.getpixel((quiet, quiet)) == 0


def test_png_box_size_must_be_positive(text: str) -> None:
    with pytest.raises(ValueError):
        render_png(text, box_size=0)


def test_bare_jws_png_decodes_back(jws: str) -> None:
    assert read_qr_image(render_png(jws, box_size=3)) == jws


# --- SVG ---------------------------------------------------------------------------------


def svg_dark_modules(svg: str) -> set[tuple[int, int]]:
    """Rasterise the path: per row `M{x} {y}.5h{n}` then `m{gap} 0h{n}` for further runs."""
    root = ET.fromstring(svg)
    (path,) = root.iter(f"{SVG}path")
    assert path.attrib["stroke"] == "#000" and path.attrib["fill"] == "none"
    rows = re.findall(r"M(\d+) (\d+)\.5h(\d+)((?:m\d+ 0h\d+)*)", path.attrib["d"])
    assert "".join(f"M{x} {y}.5h{n}{rest}" for x, y, n, rest in rows) == path.attrib["d"]
    dark: set[tuple[int, int]] = set()
    for x, y, run, rest in rows:
        position = int(x)
        for gap, length in [(0, int(run))] + [
            (int(g), int(n)) for g, n in re.findall(r"m(\d+) 0h(\d+)", rest)
        ]:
            assert gap > 0 or position == int(x)
            position += gap
            dark.update((position + i, int(y)) for i in range(length))
            position += length
    return dark


def test_svg_is_well_formed_with_title_and_viewbox(text: str) -> None:
    svg = render_svg(text, title='Bibliotheksausweis <Erika> & "Co"')
    root = ET.fromstring(svg)
    side = qr_info(text).modules + 8
    assert root.tag == f"{SVG}svg"
    assert root.attrib["role"] == "img"
    assert root.attrib["viewBox"] == f"0 0 {side} {side}"
    assert root.attrib["shape-rendering"] == "crispEdges"
    title = root.find(f"{SVG}title")
    assert title is not None and title.text == 'Bibliotheksausweis <Erika> & "Co"'
    assert next(iter(root)) is title  # first child, where assistive technology looks
    (background,) = root.iter(f"{SVG}rect")
    assert background.attrib["fill"] == "#fff"


def test_svg_without_title_has_none(text: str) -> None:
    root = ET.fromstring(render_svg(text))
    assert root.find(f"{SVG}title") is None


def test_svg_draws_the_same_modules_as_the_png(text: str) -> None:
    grey = png_image(render_png(text, box_size=1)).convert("L")
    png_dark = {
        (x, y) for y in range(grey.height) for x in range(grey.width) if grey.getpixel((x, y)) == 0
    }
    assert svg_dark_modules(render_svg(text)) == png_dark


def test_svg_is_compact(text: str) -> None:
    side = qr_info(text).modules
    assert len(render_svg(text)) < side * side * 2  # under two characters per module


# --- reading images ----------------------------------------------------------------------


def as_jpeg(image: Image.Image, *, quality: int = 75) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def as_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_photo_of_the_code_still_decodes(text: str) -> None:
    code = png_image(render_png(text, box_size=4)).convert("L")
    code = code.resize((int(code.width * 1.37),) * 2, Image.Resampling.BICUBIC)
    code = code.rotate(4.5, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    photo = Image.new("L", (code.width + 420, code.height + 300), 140)
    ImageDraw.Draw(photo).rectangle((30, 20, 200, 90), fill=60)  # some clutter
    photo.paste(code, (250, 170))
    noise = Image.effect_noise(photo.size, 40)
    photo = Image.blend(photo, noise, 0.15)
    photo = photo.filter(ImageFilter.GaussianBlur(1.2))
    rgb = Image.merge("RGB", (photo, photo.point(lambda v: v * 0.95), photo))
    jpeg = as_jpeg(rgb, quality=70)
    assert read_qr_image(jpeg) == text


def test_transparent_screenshot_decodes(text: str) -> None:
    grey = png_image(render_png(text, box_size=3)).convert("L")
    transparent = Image.new("RGBA", grey.size, (0, 0, 0, 0))
    black = Image.new("RGBA", grey.size, (0, 0, 0, 255))
    transparent.paste(black, mask=grey.point(lambda v: 255 - v))
    assert read_qr_image(as_png(transparent)) == text


def test_same_code_twice_counts_once(text: str) -> None:
    code = png_image(render_png(text, box_size=3)).convert("L")
    sheet = Image.new("L", (code.width * 2, code.height), 255)
    sheet.paste(code, (0, 0))
    sheet.paste(code, (code.width, 0))
    assert read_qr_image(as_png(sheet)) == text


def read_error(data: bytes) -> str:
    with pytest.raises(QRTextError) as info:
        read_qr_image(data)
    assert info.value.code == "malformed"
    return info.value.message


def test_two_different_codes_are_refused(text: str, jws: str) -> None:
    first = png_image(render_png(text, box_size=3)).convert("L")
    second = png_image(render_png(jws, box_size=3)).convert("L")
    sheet = Image.new("L", (first.width + second.width, max(first.height, second.height)), 255)
    sheet.paste(first, (0, 0))
    sheet.paste(second, (first.width, 0))
    assert "several QR codes" in read_error(as_png(sheet))


def test_not_an_image_is_refused() -> None:
    assert read_error(b"this is a text file, not a picture") == (
        "the file is not an image Pillow can read"
    )


def test_unsupported_format_is_not_parsed() -> None:
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    assert "not an image" in read_error(eps)


def test_image_without_a_qr_code_is_refused() -> None:
    picture = Image.new("L", (300, 200), 255)
    ImageDraw.Draw(picture).ellipse((50, 50, 250, 150), fill=0)
    assert read_error(as_png(picture)) == "no QR code found in the image"


def test_truncated_image_is_refused(text: str) -> None:
    png = render_png(text)
    assert "damaged" in read_error(png[: len(png) // 2])


def test_too_large_file_is_refused_before_parsing() -> None:
    assert "larger than 20 MB" in read_error(b"\x89PNG" + b"\x00" * MAX_IMAGE_BYTES)


def test_pixel_bomb_is_refused() -> None:
    bomb = as_png(Image.new("1", (8000, 8000), 1))
    assert len(bomb) < 100_000
    assert "megapixels" in read_error(bomb)


def test_empty_file_is_refused() -> None:
    read_error(b"")


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_damaged_files_raise_only_qr_text_errors(data: st.DataObject) -> None:
    png = render_png("WP1123456", box_size=2)
    damaged = bytearray(png)
    for _ in range(data.draw(st.integers(1, 8))):
        damaged[data.draw(st.integers(0, len(png) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(png)))
    try:
        result = read_qr_image(bytes(damaged[:cut]))
    except QRTextError:
        return
    assert result == "WP1123456"
