"""The staff scanner: an installable offline web app at /scan/.

Everything it runs is served from here: the HTML shell, the app's ES modules
(``static/scan``), the JavaScript verifier beside them, and the ZXing decoder
(JavaScript and WebAssembly) from the npm package in ``node_modules``, of which
only the files on an allow-list are ever served. The service worker precaches
all of them under a name derived from their content, so a changed file makes
devices fetch a new copy the next time they are online.

The pages get a CSP of their own: scripts from this origin only, and
``'wasm-unsafe-eval'`` only on the decoder's worker, the one place that compiles
WebAssembly. The language is chosen in the browser, not here: one cached shell
must serve both languages with the network off.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from flask import Blueprint, Response, abort, render_template, request
from PIL import Image, ImageDraw

from wallet.config import PROJECT_ROOT

blueprint = Blueprint("scanner", __name__, url_prefix="/scan")

APP_FILES = Path(__file__).parent / "static" / "scan"
APP_SUFFIXES = {".js": "text/javascript", ".css": "text/css"}
ZXING_DIST = PROJECT_ROOT / "node_modules" / "zxing-wasm" / "dist"
# URL path under /scan/vendor/zxing-wasm/ -> file under the package's dist folder.
# Only the reader is needed: its ES module, the chunk it imports, and its WebAssembly.
ZXING_FILES = {
    "es/reader/index.js": "text/javascript",
    "es/share.js": "text/javascript",
    "reader/zxing_reader.wasm": "application/wasm",
}
ICON_SIZES = (192, 512)
DECODER_WORKER = "decoder-worker.js"
SERVICE_WORKER = "sw.js"  # served at /scan/sw.js with its cache list put in front

# The pages of the app: no inline script or style, nothing from another origin.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; worker-src 'self'; connect-src 'self'; "
    "img-src 'self' data: blob:; media-src 'self' blob: mediastream:; style-src 'self'; "
    "manifest-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'"
)
# The decoder's worker compiles ZXing's WebAssembly: the only place that may.
WORKER_CSP = (
    "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'; base-uri 'none'"
)
BRAND = (11, 58, 117)  # --brand of wallet.css
THEME_COLOR = "#0b3a75"


def _no_cache(response: Response) -> Response:
    """Always revalidated online: the service worker is what keeps copies for offline."""
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Content-Security-Policy"] = PAGE_CSP
    return response


@dataclass(frozen=True)
class _Encoded:
    """A file as read once: its bytes, their gzip form, and an ETag for each."""

    plain: bytes
    gzipped: bytes
    etag: str


@lru_cache(maxsize=64)
def _encoded(path: Path, mtime_ns: int, size: int) -> _Encoded:
    """Read and compress a file once per version of it (the key holds its mtime and size)."""
    data = path.read_bytes()
    return _Encoded(
        plain=data,
        gzipped=gzip.compress(data, compresslevel=9, mtime=0),
        etag=hashlib.sha256(data).hexdigest()[:32],
    )


def _file_response(path: Path, mimetype: str) -> Response:
    """The file, gzipped when the browser takes it (the decoder shrinks to under half)."""
    stat = path.stat()
    found = _encoded(path, stat.st_mtime_ns, stat.st_size)
    response = Response(mimetype=mimetype)
    response.vary.add("Accept-Encoding")
    if request.accept_encodings["gzip"]:
        response.set_data(found.gzipped)
        response.headers["Content-Encoding"] = "gzip"
        response.set_etag(found.etag + "-gz")  # another representation, another tag
    else:
        response.set_data(found.plain)
        response.set_etag(found.etag)
    _no_cache(response).make_conditional(request)  # 304 for a copy the browser has
    return response


@blueprint.get("/")
def shell() -> Response:
    """The app's one page (German until the script applies the chosen language)."""
    return _no_cache(Response(render_template("scan/index.html"), mimetype="text/html"))


@blueprint.get("/manifest.webmanifest")
def manifest() -> Response:
    body = {
        "name": "Ausweis-Scanner der Stadt · City pass scanner",
        "short_name": "Ausweis-Scanner",
        "description": "Prüft digitale Ausweise der Stadt offline. "
        "Checks the city's digital passes offline.",
        "lang": "de",
        "dir": "ltr",
        "start_url": "/scan/",
        "scope": "/scan/",
        "id": "/scan/",
        "display": "standalone",
        "orientation": "portrait",
        "background_color": "#ffffff",
        "theme_color": THEME_COLOR,
        "icons": [
            {"src": f"/scan/icon-{size}.png", "sizes": f"{size}x{size}", "type": "image/png"}
            for size in ICON_SIZES
        ],
    }
    data = json.dumps(body, ensure_ascii=False, indent=2).encode("utf-8")
    return _no_cache(Response(data, mimetype="application/manifest+json"))


@blueprint.get("/icon-<int:size>.png")
def icon(size: int) -> Response:
    if size not in ICON_SIZES:
        abort(404)
    response = Response(_icon_png(size), mimetype="image/png")
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


@lru_cache(maxsize=len(ICON_SIZES))
def _icon_png(size: int) -> bytes:
    """The app icon, drawn here: the three finder squares of a QR code on the city's blue.

    Drawn to the maskable safe zone (the inner 80 %), so launchers may crop it round.
    """
    image = Image.new("RGB", (size, size), BRAND)
    draw = ImageDraw.Draw(image)
    unit = size / 10  # the motif spans the middle 6 units of 10
    white, blue = (255, 255, 255), BRAND
    for col, row in ((2, 2), (5.2, 2), (2, 5.2)):
        x, y = col * unit, row * unit
        draw.rectangle((x, y, x + 2.8 * unit, y + 2.8 * unit), fill=white)
        draw.rectangle((x + 0.5 * unit, y + 0.5 * unit, x + 2.3 * unit, y + 2.3 * unit), fill=blue)
        draw.rectangle((x + 0.9 * unit, y + 0.9 * unit, x + 1.9 * unit, y + 1.9 * unit), fill=white)
    # a tick in the fourth corner: the check
    tick = [(5.6 * unit, 6.7 * unit), (6.5 * unit, 7.6 * unit), (8.0 * unit, 5.8 * unit)]
    draw.line(tick, fill=white, width=max(2, int(0.5 * unit)), joint="curve")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _app_file(name: str) -> Path | None:
    """A file of the app under static/scan, or None (no escaping the folder, no other types)."""
    path = (APP_FILES / name).resolve()
    if path.suffix not in APP_SUFFIXES or not path.is_file() or name == SERVICE_WORKER:
        return None
    if not path.is_relative_to(APP_FILES.resolve()):
        return None
    return path


@blueprint.get("/<path:name>")
def app_file(name: str) -> Response:
    """The app's ES modules and style sheet (the verifier's modules among them)."""
    path = _app_file(name)
    if path is None:
        abort(404)
    response = _file_response(path, APP_SUFFIXES[path.suffix])
    if name == DECODER_WORKER:
        response.headers["Content-Security-Policy"] = WORKER_CSP
    return response


@blueprint.get("/vendor/zxing-wasm/<path:name>")
def zxing(name: str) -> Response:
    """The decoder, only the allow-listed files of the pinned npm package."""
    mimetype = ZXING_FILES.get(name)
    if mimetype is None:
        abort(404)
    path = ZXING_DIST / name
    if not path.is_file():  # npm ci was not run: say so plainly rather than fail in the phone
        abort(503, description="the scanner's decoder is not installed: run `npm ci`")
    response = _file_response(path, mimetype)
    # The decoder module runs inside the worker; the worker's own policy is what applies.
    response.headers["Content-Security-Policy"] = WORKER_CSP
    return response


def app_urls() -> list[str]:
    """Every URL the service worker keeps for offline use."""
    modules = sorted(
        p.relative_to(APP_FILES).as_posix()
        for p in APP_FILES.rglob("*")
        if p.is_file() and p.suffix in APP_SUFFIXES and p.name != SERVICE_WORKER
    )
    return [
        "/scan/",
        "/scan/manifest.webmanifest",
        *(f"/scan/icon-{size}.png" for size in ICON_SIZES),
        *(f"/scan/{name}" for name in modules),
        *(f"/scan/vendor/zxing-wasm/{name}" for name in ZXING_FILES),
    ]


def _content_files() -> Iterable[Path]:
    yield from sorted(p for p in APP_FILES.rglob("*") if p.is_file())
    yield PROJECT_ROOT / "templates" / "web" / "scan" / "index.html"
    yield Path(__file__)  # the manifest and icons are made here
    yield from (ZXING_DIST / name for name in ZXING_FILES)


def _stamp(files: Iterable[Path]) -> tuple[tuple[str, int, int], ...]:
    found = []
    for path in files:
        stat = path.stat() if path.is_file() else None
        found.append((str(path), stat.st_mtime_ns if stat else 0, stat.st_size if stat else -1))
    return tuple(found)


@lru_cache(maxsize=4)
def _version(stamp: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for name, _mtime, size in stamp:
        digest.update(name.encode())
        if size >= 0:
            digest.update(Path(name).read_bytes())
    return digest.hexdigest()[:16]


def app_version() -> str:
    """A digest of every file the app is made of: a new one when any changed."""
    return _version(_stamp(_content_files()))


@blueprint.get("/sw.js")
def service_worker() -> Response:
    """The worker with its cache list and version: a changed file means a changed sw.js."""
    head = f"const VERSION = {json.dumps(app_version())};\n"
    head += f"const PRECACHE = {json.dumps(app_urls())};\n"
    body = head + (APP_FILES / SERVICE_WORKER).read_text(encoding="utf-8")
    response = Response(body, mimetype="text/javascript")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Content-Security-Policy"] = WORKER_CSP.replace(" 'wasm-unsafe-eval'", "")
    return response
