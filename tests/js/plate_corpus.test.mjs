// The shared plate corpus, run through the scanner's plate reader (node --test).
// The same vectors pass through wallet/plates.py in tests/corpus/test_plate_corpus.py.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { performance } from "node:perf_hooks";

import {
  MAX_CHARACTERS,
  MAX_INPUT,
  MAX_LENGTH,
  PlateError,
  foreignPlate,
  lookupForms,
  parsePlate,
  readings,
} from "../../wallet/web/static/scan/verifier/plates.js";

const CORPUS = new URL("../corpus/plates.json", import.meta.url);
const vectors = JSON.parse(readFileSync(CORPUS, "utf-8"));

function assertIsPlate(plate) {
  assert.ok(Object.isFrozen(plate));
  assert.deepEqual(Object.keys(plate), ["district", "letters", "number", "suffix", "display"]);
  const { district, letters, number, suffix, display } = plate;
  assert.equal(display, `${district}-${letters} ${number}${suffix}`);
}

for (const vector of vectors) {
  test(`readings: ${vector.name}`, () => {
    const found = readings(vector.input);
    found.forEach(assertIsPlate);
    assert.deepEqual(found.map((p) => p.display), vector.readings);
  });

  test(`parsePlate: ${vector.name}`, () => {
    if ("parse" in vector) {
      const plate = parsePlate(vector.input);
      assertIsPlate(plate);
      assert.equal(plate.display, vector.parse);
    } else {
      assert.throws(
        () => parsePlate(vector.input),
        (error) =>
          error instanceof PlateError &&
          error instanceof Error &&
          error.name === "PlateError" &&
          error.message === vector.parse_error,
      );
    }
  });
}

for (const vector of vectors) {
  test(`foreign plate: ${vector.name}`, () => {
    assert.equal(foreignPlate(vector.input), vector.input_foreign ?? null);
    assert.deepEqual(lookupForms(vector.input), vector.lookup ?? vector.readings);
  });
}

test("the corpus is not empty", () => {
  assert.ok(vectors.length >= 60);
});

test("the plate limits are Python's", () => {
  assert.equal(MAX_CHARACTERS, 8);
  assert.equal(MAX_LENGTH, 40);
  assert.equal(MAX_INPUT, 200);
});

test("a 100,000-character value is refused at once, not matched in quadratic time", () => {
  // explain's pattern backtracks quadratically on this shape, as Python's does.
  const attack = `D-${"A".repeat(99_997)}!`;
  assert.equal(attack.length, 100_000);
  const started = performance.now();
  assert.throws(() => parsePlate(attack), {
    name: "PlateError",
    message: "a plate has at most 40 characters; type only the plate",
  });
  assert.deepEqual(readings(attack), []);
  assert.ok(performance.now() - started < 50);
});

test("inputs JSON cannot carry have no reading either", () => {
  const plate = "D-AB 1234";
  for (const input of [undefined, 1234n, Symbol(plate), new String(plate), () => plate]) {
    assert.deepEqual(readings(input), []);
    assert.throws(() => parsePlate(input), {
      name: "PlateError",
      message: "this is not a German plate (for example D-AB 1234)",
    });
  }
});
