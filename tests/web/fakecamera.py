"""A fake camera for Chromium: a Y4M video of a still picture (a pass card, a phone screen).

Chromium plays the file in a loop as the camera when started with
``--use-fake-device-for-media-stream --use-file-for-fake-video-capture=FILE``;
``--use-fake-ui-for-media-stream`` answers the permission prompt with yes. The
picture is letterboxed onto a grey frame, a little smaller than the frame, the way
a card held in front of a phone looks. A camera file can only be chosen when the
browser starts, so each video needs a browser of its own.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image

from tests.web.browser import CHROMIUM, CHROMIUM_ARGS

FRAME = (1280, 720)
BACKGROUND = (96, 96, 96)  # a grey desk
FILL = 0.92  # the share of the frame's height the picture takes
FPS = 10
FRAMES = 10


def frame_from_picture(png: bytes, *, size: tuple[int, int] = FRAME) -> Image.Image:
    """The picture, scaled to fit, centred on a grey frame of ``size``."""
    picture = Image.open(io.BytesIO(png)).convert("RGB")
    width, height = size
    scale = min(width * FILL / picture.width, height * FILL / picture.height)
    shown = picture.resize(
        (round(picture.width * scale), round(picture.height * scale)), Image.Resampling.LANCZOS
    )
    frame = Image.new("RGB", size, BACKGROUND)
    frame.paste(shown, ((width - shown.width) // 2, (height - shown.height) // 2))
    return frame


def write_y4m(frame: Image.Image, path: Path, *, frames: int = FRAMES) -> Path:
    """Write ``frame`` as a still Y4M video (4:2:0, the layout Chromium's reader expects)."""
    width, height = frame.size
    y, cb, cr = frame.convert("YCbCr").split()
    half = (width // 2, height // 2)
    chroma = (
        cb.resize(half, Image.Resampling.BOX).tobytes()
        + cr.resize(half, Image.Resampling.BOX).tobytes()
    )
    picture = y.tobytes() + chroma
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{FPS}:1 Ip A1:1 C420jpeg\n".encode("ascii"))
        for _ in range(frames):
            out.write(b"FRAME\n")
            out.write(picture)
    return path


def video_of(png: bytes, path: Path) -> Path:
    """A camera video showing the picture ``png``."""
    return write_y4m(frame_from_picture(png), path)


@contextmanager
def camera_browser(playwright: Any, video: Path) -> Iterator[Any]:
    """A headless Chromium whose camera shows ``video`` and that may use it without asking.

    ``playwright`` is the running (sync) Playwright: one per process at a time.
    """
    args = [
        *CHROMIUM_ARGS,
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    ]
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
    try:
        yield browser
    finally:
        browser.close()


@contextmanager
def chromium_with_camera(video: Path) -> Iterator[Any]:
    """The same, with a Playwright of its own (for scripts)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright, camera_browser(playwright, video) as browser:
        yield browser
