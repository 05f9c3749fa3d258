"""The scanner's files as the service hands them out: manifest, worker, decoder, headers."""

from __future__ import annotations

import gzip
import io
import json
import re

import pytest
from flask.testing import FlaskClient
from PIL import Image

from wallet.web import scanner

requires_decoder = pytest.mark.skipif(
    not (scanner.ZXING_DIST / "reader" / "zxing_reader.wasm").is_file(),
    reason="the scanner's decoder comes from npm: run `npm ci` (scripts/test does)",
)


def test_manifest_is_valid_json_for_an_installable_app_scoped_to_scan(client: FlaskClient) -> None:
    response = client.get("/scan/manifest.webmanifest")
    assert response.status_code == 200
    assert response.mimetype == "application/manifest+json"
    manifest = json.loads(response.data)
    assert manifest["start_url"] == "/scan/" and manifest["scope"] == "/scan/"
    assert manifest["display"] == "standalone"
    assert manifest["lang"] == "de"
    assert manifest["name"] and manifest["short_name"]
    sizes = {icon["sizes"] for icon in manifest["icons"]}
    assert {"192x192", "512x512"} <= sizes
    for icon in manifest["icons"]:
        image = client.get(icon["src"])
        assert image.status_code == 200 and image.mimetype == "image/png", icon
        width, height = Image.open(io.BytesIO(image.data)).size
        assert f"{width}x{height}" == icon["sizes"]


def test_only_the_two_icon_sizes_are_drawn(client: FlaskClient) -> None:
    assert client.get("/scan/icon-4096.png").status_code == 404


def test_service_worker_is_javascript_scoped_to_scan_and_lists_what_it_keeps(
    client: FlaskClient,
) -> None:
    response = client.get("/scan/sw.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert response.headers["Cache-Control"] == "no-cache"  # browsers must see a new version
    # served under /scan/, so its default (and widest) scope is /scan/, never the whole site
    assert "Service-Worker-Allowed" not in response.headers
    found = re.search(r"^const PRECACHE = (\[.*\]);$", response.get_data(as_text=True), re.M)
    assert found is not None
    urls = json.loads(found.group(1))
    for needed in (
        "/scan/",
        "/scan/app.js",
        "/scan/decoder-worker.js",
        "/scan/manifest.webmanifest",
        "/scan/vendor/zxing-wasm/reader/zxing_reader.wasm",
    ):
        assert needed in urls
    assert all(u.startswith("/scan/") for u in urls), urls
    assert "/scan/sw.js" not in urls


def test_service_worker_version_changes_when_an_app_file_changes(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    def version() -> str:
        body = client.get("/scan/sw.js").get_data(as_text=True)
        found = re.search(r'^const VERSION = "(\w+)";$', body, re.M)
        assert found is not None
        return found.group(1)

    before = version()
    assert version() == before  # stable while nothing changes
    original = scanner._content_files

    def one_more(extra: object = tmp_path) -> object:
        path = tmp_path / "changed.js"  # type: ignore[operator]
        path.write_text("// new")
        yield from original()
        yield path

    monkeypatch.setattr(scanner, "_content_files", one_more)
    assert version() != before


@requires_decoder
def test_decoder_files_are_served_from_the_npm_package_with_their_types(
    client: FlaskClient,
) -> None:
    wasm = client.get("/scan/vendor/zxing-wasm/reader/zxing_reader.wasm")
    assert wasm.status_code == 200
    assert wasm.mimetype == "application/wasm"
    assert wasm.data[:4] == b"\0asm"
    module = client.get("/scan/vendor/zxing-wasm/es/reader/index.js")
    assert module.status_code == 200 and module.mimetype == "text/javascript"
    assert 'from "../share.js"' in module.get_data(as_text=True)
    assert client.get("/scan/vendor/zxing-wasm/es/share.js").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/scan/vendor/zxing-wasm/full/zxing_full.wasm",  # in the package, not on the list
        "/scan/vendor/zxing-wasm/es/full/index.js",
        "/scan/vendor/zxing-wasm/../package.json",
        "/scan/vendor/zxing-wasm/..%2f..%2fpackage.json",
        "/scan/vendor/zxing-wasm/%2e%2e/%2e%2e/README.md",
        "/scan/vendor/zxing-wasm/es/reader/index.d.ts",
        "/scan/vendor/type-fest/index.d.ts",
        "/scan/../pyproject.toml",
        "/scan/..%2f..%2fpyproject.toml",
        "/scan/%2e%2e/console.js",
        "/scan/scan.js.map",
        "/scan/nothing.js",
    ],
)
def test_vendor_and_app_routes_refuse_files_outside_the_allow_list(
    client: FlaskClient, path: str
) -> None:
    assert client.get(path).status_code == 404, path


def test_scanner_page_has_a_strict_policy_without_inline_script_or_wasm(
    client: FlaskClient,
) -> None:
    response = client.get("/scan/")
    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy  # wasm too
    assert "frame-ancestors 'none'" in policy
    html = response.get_data(as_text=True)
    assert re.search(r"<script(?![^>]*\bsrc=)", html) is None, "inline script"
    assert "style=" not in html
    assert 'rel="manifest" href="/scan/manifest.webmanifest"' in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "something from another origin"


def test_only_the_decoder_worker_may_compile_webassembly(client: FlaskClient) -> None:
    worker = client.get("/scan/decoder-worker.js")
    assert worker.status_code == 200 and worker.mimetype == "text/javascript"
    assert "'wasm-unsafe-eval'" in worker.headers["Content-Security-Policy"]
    for other in ("/scan/app.js", "/scan/sw.js", "/scan/camera.js"):
        assert "wasm-unsafe-eval" not in client.get(other).headers["Content-Security-Policy"]


_REMOTE = re.compile(r"""(from|import|fetch|importScripts)\s*\(?\s*["'`](https?:)?//""")


def test_app_files_load_nothing_from_another_origin() -> None:
    for path in scanner.APP_FILES.rglob("*.js"):
        assert not _REMOTE.search(path.read_text(encoding="utf-8")), path


def test_app_files_revalidate_and_answer_304_when_unchanged(client: FlaskClient) -> None:
    first = client.get("/scan/app.js")
    assert first.headers["Cache-Control"] == "no-cache"
    again = client.get("/scan/app.js", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304


@requires_decoder
def test_app_and_decoder_are_sent_gzipped_to_browsers_that_take_it(client: FlaskClient) -> None:
    """A first visit on mobile data: the decoder is most of it, and compresses well."""
    plain = client.get("/scan/vendor/zxing-wasm/reader/zxing_reader.wasm")
    packed = client.get(
        "/scan/vendor/zxing-wasm/reader/zxing_reader.wasm", headers={"Accept-Encoding": "gzip"}
    )
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in packed.headers["Vary"]
    assert gzip.decompress(packed.data) == plain.data
    assert len(packed.data) < len(plain.data) * 0.6
    assert packed.headers["ETag"] != plain.headers["ETag"]
    again = client.get(
        "/scan/vendor/zxing-wasm/reader/zxing_reader.wasm",
        headers={"Accept-Encoding": "gzip", "If-None-Match": packed.headers["ETag"]},
    )
    assert again.status_code == 304


@requires_decoder
def test_first_visit_transfer_stays_under_one_and_a_half_megabytes(client: FlaskClient) -> None:
    """Issue 9's budget for everything the service worker keeps, as sent (gzip)."""
    urls = [*scanner.app_urls(), "/scan/sw.js"]
    sent = sum(len(client.get(url, headers={"Accept-Encoding": "gzip"}).data) for url in urls)
    assert sent <= 1_500_000, sent
