// The shared plate-index corpus, run through the scanner's offline plate index (node --test).
// The same vectors pass through wallet/plateindex.py in tests/corpus/test_plate_index_corpus.py.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { b64urlDecode } from "../../wallet/web/static/scan/verifier/codec.js";
import * as verifier from "../../wallet/web/static/scan/verifier/index.js";
import {
  ENTRY,
  FORMAT,
  HASH_BYTES,
  INDEX_TYP,
  MAX_INDEX_LENGTH,
  MAX_MINUTES,
  MAX_ZONE_LENGTH,
  PlateInputError,
  STATES,
  keyId,
  verifyIndex,
} from "../../wallet/web/static/scan/verifier/plateindex.js";

const { BundleError, rootKeyFromPem } = verifier;
const corpus = JSON.parse(readFileSync(new URL("../corpus/plate_index.json", import.meta.url), "utf-8"));
const keyOf = (name) => b64urlDecode(corpus.keys[name], "key");

async function indexOf(vector, now) {
  const root = await rootKeyFromPem(corpus.roots[vector.root]);
  return verifyIndex(corpus.indexes[vector.index], root, { now, highestVersion: vector.held_version ?? null });
}

for (const vector of corpus.vectors.filter((v) => v.kind === "index")) {
  test(`index vector: ${vector.name}`, async () => {
    let got;
    try {
      const index = await indexOf(vector, vector.now);
      got = { index: "ok", version: index.version, length: index.length, zones: [...index.zones] };
    } catch (error) {
      if (!(error instanceof BundleError)) throw error;
      got = { index: error.code };
      assert.ok(error.message.includes(vector.why), `${error.message} lacks ${vector.why}`);
    }
    assert.deepEqual(got, vector.expect);
  });
}

for (const vector of corpus.vectors.filter((v) => v.kind === "check")) {
  test(`check vector: ${vector.name}`, async () => {
    const index = await indexOf(vector, vector.verified_at);
    let got;
    try {
      got = await index.check(keyOf(vector.key), vector.text, vector.zone, { now: vector.now });
    } catch (error) {
      if (error instanceof PlateInputError) got = { error: error.code, field: error.field };
      else if (error instanceof BundleError) got = { error: error.code };
      else throw error;
    }
    assert.deepEqual(got, vector.expect);
  });
}

test("the index shares Python's constants", () => {
  assert.deepEqual(corpus.constants, {
    typ: INDEX_TYP,
    format: FORMAT,
    entry: ENTRY,
    hash_bytes: HASH_BYTES,
    states: [...STATES],
    max_zone_length: MAX_ZONE_LENGTH,
    max_index_length: MAX_INDEX_LENGTH,
    max_minutes: MAX_MINUTES,
  });
});

test("keyId names each key as Python does, and index.js exports the index", async () => {
  const main = corpus.vectors.find((v) => v.name === "genuine index");
  const at = new Date(main.now * 1000);
  const index = await verifier.verifyIndex(corpus.indexes.main, corpus.roots.city, { now: at });
  assert.equal(await verifier.keyId(keyOf("main")), index.kid);
  assert.equal(await keyId(keyOf("main").buffer), index.kid);
  assert.notEqual(await keyId(keyOf("stranger")), index.kid);
});

test("lookup finds each permit of the index, with its times, and nothing else", async () => {
  const main = corpus.vectors.find((v) => v.name === "genuine index");
  const index = await indexOf(main, main.now);
  const key = keyOf("main");
  for (const permit of corpus.permits.main) {
    const found = await index.lookup(key, permit.plate);
    const mine = found.find((f) => f.zone === permit.zone);
    assert.ok(mine, permit.plate);
    assert.equal(mine.state, permit.state);
    assert.equal(mine.validFrom, Math.ceil(permit.valid_from / 60) * 60);
    assert.equal(mine.validUntil, Math.floor(permit.valid_until / 60) * 60);
  }
  assert.deepEqual(await index.lookup(key, "D-AB 1235"), []);
  await assert.rejects(index.lookup(keyOf("stranger"), "D-AB 1234"), { code: "bundle_invalid" });
});

test("the pinned root as PEM text and a Date work; a PEM that is not a key is bundle_invalid", async () => {
  const main = corpus.vectors.find((v) => v.name === "genuine index");
  const at = new Date(main.now * 1000);
  const index = await verifyIndex(corpus.indexes.main, corpus.roots.city, { now: at });
  const answer = await index.check(keyOf("main"), "dab1234", "12", { now: at });
  assert.equal(answer.verdict, "valid");
  await assert.rejects(verifyIndex(corpus.indexes.main, "not a PEM", { now: at }), { code: "bundle_invalid" });
  await assert.rejects(verifyIndex(42, corpus.roots.city, { now: at }), { code: "bundle_invalid" });
});
