"""Reading the QR code in an uploaded photo, screenshot or scan.

Uploads are hostile: the byte size is capped before parsing, and the pixel count
is checked from the header before any pixel is decoded, so a small file cannot
expand into gigabytes of memory.
"""

from __future__ import annotations

import io
from typing import Final

import zxingcpp
from PIL import Image, UnidentifiedImageError

from wallet.errors import QRTextError

__all__ = ["MAX_IMAGE_BYTES", "MAX_IMAGE_PIXELS", "read_qr_image"]

MAX_IMAGE_BYTES: Final = 20 * 1024 * 1024
# 50 megapixels admits photos from current phone cameras. Checked from the header
# right after opening; Pillow's own, process-wide limit is left alone.
MAX_IMAGE_PIXELS: Final = 50_000_000
# Formats people upload; others (EPS would run Ghostscript) are never parsed.
_FORMATS: Final = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")


def read_qr_image(data: bytes) -> str:
    """Return the text of the QR code in an image file (PNG, JPEG, ...).

    The same code found twice counts once; two different codes are refused
    rather than guessing which one the user meant.

    :raises QRTextError: if the file is too large or not an image, or if it
        holds no QR code or several different ones.
    """
    if len(data) > MAX_IMAGE_BYTES:
        raise QRTextError(f"the image file is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB")
    image = _load_grey(data)
    try:
        codes = zxingcpp.read_barcodes(
            image,
            formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode),
            text_mode=zxingcpp.TextMode.Plain,
        )
    except (RuntimeError, ValueError) as exc:
        raise QRTextError("the image could not be searched for a QR code") from exc
    texts = list(dict.fromkeys(code.text for code in codes if code.valid))
    if not texts:
        raise QRTextError("no QR code found in the image")
    if len(texts) > 1:
        raise QRTextError("several QR codes found in the image; upload an image with only one")
    return texts[0]


def _load_grey(data: bytes) -> Image.Image:
    """Decode the first frame into 8-bit grey, transparent areas becoming white."""
    try:
        with Image.open(io.BytesIO(data), formats=_FORMATS) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise QRTextError(
                    f"the image has more than {MAX_IMAGE_PIXELS // 1_000_000} megapixels"
                )
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                rgba = image.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                return Image.alpha_composite(background, rgba).convert("L")
            return image.convert("L")
    except Image.DecompressionBombError as exc:
        raise QRTextError("the image is too large to decode safely") from exc
    except UnidentifiedImageError as exc:
        raise QRTextError("the file is not an image Pillow can read") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        # Pillow reports damaged or truncated files with any of these.
        raise QRTextError("the image file is damaged or truncated") from exc
