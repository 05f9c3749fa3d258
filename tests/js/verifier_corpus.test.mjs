// The shared corpus, run through the scanner's JavaScript verifier (node --test).
// The same vectors pass through wallet/verifier.py in tests/corpus/test_verifier_corpus.py.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { Verifier, rootKeyFromPem, verifyBundle } from "../../wallet/web/static/scan/verifier/index.js";

const corpus = JSON.parse(readFileSync(new URL("../corpus/verifier.json", import.meta.url), "utf-8"));

async function bundleOf(vector) {
  const root = await rootKeyFromPem(corpus.roots[vector.root]);
  return verifyBundle(corpus.bundles[vector.bundle], root, {
    now: vector.now,
    highestVersion: vector.held_version,
  });
}

for (const vector of corpus.vectors.filter((v) => v.kind === "pass")) {
  test(`pass vector: ${vector.name}`, async () => {
    const verifier = await Verifier.create(await bundleOf(vector));
    const result = await verifier.check(vector.input, { now: vector.now });
    assert.deepEqual(
      { state: result.state, reason: result.reason, admit: result.admit },
      vector.expect,
      result.detail,
    );
  });
}

for (const vector of corpus.vectors.filter((v) => v.kind === "bundle")) {
  test(`bundle vector: ${vector.name}`, async () => {
    let outcome = "ok";
    try {
      await bundleOf(vector);
    } catch (error) {
      outcome = error.code ?? `not a verdict: ${error}`;
    }
    assert.equal(outcome, vector.expect.bundle);
  });
}

test("the corpus is not empty", () => {
  assert.ok(corpus.vectors.length > 50);
});
