"""The scanner's JavaScript verifier in real Chromium: the shared corpus, once, in a page.

Node runs the corpus on every `scripts/test` (tests/js/verifier_corpus.test.mjs);
this runs it where the scanner really runs, with the browser's own WebCrypto.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import Flask, Response, send_from_directory

from tests.corpus.verifier_vectors import CORPUS
from tests.web.browser import chromium, live_server, requires_chromium

VERIFIER = Path(__file__).resolve().parents[2] / "wallet/web/static/scan/verifier"

PAGE = """<!doctype html><meta charset="utf-8"><title>corpus</title>
<script type="module">
import { Verifier, rootKeyFromPem, verifyBundle } from "/verifier/index.js";
const corpus = await (await fetch("/corpus.json")).json();
const outcomes = [];
for (const v of corpus.vectors) {
  let got;
  try {
    const root = await rootKeyFromPem(corpus.roots[v.root]);
    const bundle = await verifyBundle(corpus.bundles[v.bundle], root,
      { now: v.now, highestVersion: v.held_version });
    if (v.kind === "bundle") {
      got = { bundle: "ok" };
    } else {
      const r = await (await Verifier.create(bundle)).check(v.input, { now: v.now });
      got = { state: r.state, reason: r.reason, admit: r.admit };
    }
  } catch (error) {
    got = { bundle: error.code ?? String(error) };
  }
  outcomes.push({ name: v.name, got, expect: v.expect });
}
window.outcomes = outcomes;
</script>"""


def _site() -> Flask:
    app = Flask(__name__)

    @app.get("/")
    def page() -> Response:
        return Response(PAGE, mimetype="text/html")

    @app.get("/corpus.json")
    def corpus() -> Response:
        return Response(CORPUS.read_bytes(), mimetype="application/json")

    @app.get("/verifier/<path:name>")
    def module(name: str) -> Response:
        return send_from_directory(VERIFIER, name, mimetype="text/javascript")

    return app


@requires_chromium
def test_the_javascript_verifier_agrees_with_every_corpus_vector_in_chromium() -> None:
    vectors = json.loads(CORPUS.read_text(encoding="utf-8"))["vectors"]
    with live_server(_site()) as url, chromium() as browser:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(url + "/")
        page.wait_for_function("() => window.outcomes !== undefined", timeout=60_000)
        outcomes: list[dict[str, Any]] = page.evaluate("() => window.outcomes")
    assert errors == []
    assert len(outcomes) == len(vectors)
    disagreements = [o for o in outcomes if o["got"] != o["expect"]]
    assert disagreements == []
