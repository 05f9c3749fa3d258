"""The scanner's JavaScript verifier in headless Chromium: one check against a bare
WebCrypto ECDSA P-256 verify of the same signature (issue 9, section 4).

Both run in the same page, awaited one after another, in alternating rounds of N
calls, so drift on a shared machine hits both alike; the result is the median time
per call. The bare verify gets its key, signature and signing input ready-made; the
check gets the text a camera would read (the compact JWS, or the QR text).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VERIFIER = ROOT / "wallet/web/static/scan/verifier"
CHROMIUM = Path("/usr/bin/chromium")

PAGE = """<!doctype html><meta charset="utf-8"><title>bench</title>
<script type="module">
import { Verifier, verifyBundle } from "/verifier/index.js";
import { b64urlDecode, asciiBytes } from "/verifier/codec.js";
const input = await (await fetch("/input.json")).json();
const now = input.now;
const bundle = await verifyBundle(input.bundle, input.root, { now });
const verifier = await Verifier.create(bundle);
const [head, body, sig] = input.jws.split(".");
const kid = JSON.parse(new TextDecoder().decode(b64urlDecode(head, "header"))).kid;
const key = bundle.keys.find((k) => k.kid === kid).cryptoKey;
const signature = b64urlDecode(sig, "signature");
const data = asciiBytes(`${head}.${body}`);
const algorithm = { name: "ECDSA", hash: "SHA-256" };
const bare = () => crypto.subtle.verify(algorithm, key, signature, data);
for (const text of [input.jws, input.qr]) {
  const r = await verifier.check(text, { now });
  if (r.reason !== "ok") throw new Error("setup: " + r.reason);
}
if (!(await bare())) throw new Error("setup: bare verify failed");
async function per(call, n) {
  const start = performance.now();
  for (let i = 0; i < n; i += 1) await call();
  return (performance.now() - start) / n;
}
const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const out = {};
for (const [form, text] of [["JWS", input.jws], ["QR text", input.qr]]) {
  const check = () => verifier.check(text, { now });
  await per(check, input.n); await per(bare, input.n);  // warm up
  const checks = [], bares = [];
  for (let round = 0; round < input.rounds; round += 1) {
    checks.push(await per(check, input.n));
    bares.push(await per(bare, input.n));
  }
  out[form] = { check_ms: median(checks), bare_ms: median(bares) };
}
window.result = out;
</script>"""


@dataclass(frozen=True)
class JsTiming:
    form: str  # "JWS" or "QR text"
    check_ms: float
    bare_ms: float


@contextmanager
def page_server(
    document: dict[str, Any], *, page: str = PAGE, isolated: bool = False
) -> Iterator[str]:
    """A page, its input and the scanner's verifier modules on a local port. Cross-origin
    isolated if asked: performance.now() is then not coarsened to 100 µs."""
    from flask import Flask, Response, send_from_directory
    from werkzeug.serving import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            """No access log in the benchmark's output."""

    app = Flask(__name__)
    app.add_url_rule("/", "page", lambda: Response(page, mimetype="text/html"))
    app.add_url_rule(
        "/input.json", "input", lambda: Response(json.dumps(document), mimetype="application/json")
    )
    app.add_url_rule(
        "/verifier/<path:name>",
        "verifier",
        lambda name: send_from_directory(VERIFIER, name, mimetype="text/javascript"),
    )
    if isolated:

        @app.after_request
        def isolate(response: Response) -> Response:
            response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
            response.headers["Cross-Origin-Embedder-Policy"] = "require-corp"
            return response

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def bench_js_check(
    *, bundle: str, root_pem: str, jws: str, qr_text: str, now: int, quick: bool = False
) -> list[JsTiming]:
    """Median ms per call of the JS check (JWS and QR text) and of the bare verify."""
    from playwright.sync_api import sync_playwright

    document = {
        "bundle": bundle,
        "root": root_pem,
        "jws": jws,
        "qr": qr_text,
        "now": now,
        "n": 50 if quick else 400,
        "rounds": 3 if quick else 9,
    }
    with page_server(document) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless=new", "--no-sandbox"]
        )
        try:
            page = browser.new_page()
            page.goto(url + "/")
            page.wait_for_function("() => window.result !== undefined", timeout=300_000)
            result = page.evaluate("() => window.result")
        finally:
            browser.close()
    return [JsTiming(form, v["check_ms"], v["bare_ms"]) for form, v in result.items()]
