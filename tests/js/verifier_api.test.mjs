// The JavaScript verifier's API as the scanner app uses it: pinned PEM text, Dates,
// and a check that never throws, whatever it is handed.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { Verifier, verifyBundle } from "../../wallet/web/static/scan/verifier/index.js";

const corpus = JSON.parse(readFileSync(new URL("../corpus/verifier.json", import.meta.url), "utf-8"));
const genuine = corpus.vectors.find((v) => v.name === "genuine library pass, QR text");
const at = new Date(genuine.now * 1000);

test("the pinned PEM text and a Date are enough to verify a bundle and a pass", async () => {
  const bundle = await verifyBundle(corpus.bundles.main, corpus.roots.city, { now: at });
  const result = await (await Verifier.create(bundle)).check(genuine.input, { now: at });
  assert.equal(result.reason, "ok");
  assert.equal(result.tone, "green");
  assert.equal(result.message.de, "Ausweis gültig.");
  assert.equal(result.claims.holder.card_number, "100200300400");
});

test("a pinned key that is not a key refuses the bundle with bundle_invalid", async () => {
  await assert.rejects(verifyBundle(corpus.bundles.main, "not a PEM", { now: at }), {
    code: "bundle_invalid",
  });
});

test("check never throws: hostile values become verdicts with a reason", async () => {
  const bundle = await verifyBundle(corpus.bundles.main, corpus.roots.city, { now: at });
  const verifier = await Verifier.create(bundle);
  for (const input of [undefined, null, 42, {}, ["WP1"], "", "WP1", "a.b.c", "x".repeat(20000)]) {
    const result = await verifier.check(input, { now: at });
    assert.equal(result.state, "invalid", String(input).slice(0, 20));
    assert.ok(result.reason && result.message.de && result.message.en);
    assert.equal(result.admit, false);
  }
});
