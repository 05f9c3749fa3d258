// The scanner app's own small pieces that need no browser: language choice, how the
// data's age is said, the root key's fingerprint and what may be pinned as a key.

import assert from "node:assert/strict";
import { createHash, generateKeyPairSync } from "node:crypto";
import { test } from "node:test";

import { chooseLanguage, language, t, textIn } from "../../wallet/web/static/scan/strings.js";
import { fingerprint, pemToDer } from "../../wallet/web/static/scan/trust.js";
import { when } from "../../wallet/web/static/scan/ui.js";

test("?lang= chooses the language; an unknown one is ignored", () => {
  assert.equal(chooseLanguage("?lang=en"), "en");
  assert.equal(t("syncNow"), "Update now");
  assert.equal(chooseLanguage("?lang=de"), "de");
  assert.equal(t("syncNow"), "Jetzt aktualisieren");
  chooseLanguage("?lang=fr");
  assert.ok(["de", "en"].includes(language()));
});

test("every text exists in German and English, with the same placeholders", async () => {
  const { STRINGS } = await import("../../wallet/web/static/scan/strings.js");
  assert.deepEqual(Object.keys(STRINGS.en).sort(), Object.keys(STRINGS.de).sort());
  const holes = (text) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
  for (const key of Object.keys(STRINGS.de)) {
    assert.deepEqual(holes(STRINGS.en[key]), holes(STRINGS.de[key]), key);
    assert.notEqual(STRINGS.de[key].trim(), "", key);
  }
  assert.equal(textIn("de", "stand", { when: "heute 07:42" }), "Stand: heute 07:42");
});

test("the data's age reads as people say it: heute, gestern, else the date", () => {
  chooseLanguage("?lang=de");
  const now = new Date(2026, 10, 24, 9, 30);
  assert.match(when(new Date(2026, 10, 24, 7, 42), now), /^heute 07:42$/);
  assert.match(when(new Date(2026, 10, 23, 18, 5), now), /^gestern 18:05$/);
  assert.match(when(new Date(2026, 10, 20, 7, 42), now), /^20\.11\.2026 07:42$/);
  chooseLanguage("?lang=en");
  assert.match(when(new Date(2026, 10, 24, 7, 42), now), /^today 07:42$/);
  chooseLanguage("?lang=de");
});

test("the fingerprint is SHA-256 of the key's DER, upper-case hex in groups of four", async () => {
  const { publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const pem = publicKey.export({ type: "spki", format: "pem" });
  const der = publicKey.export({ type: "spki", format: "der" });
  const expected = createHash("sha256").update(der).digest("hex").toUpperCase().match(/.{4}/g).join(" ");
  assert.deepEqual(Buffer.from(pemToDer(pem)), der);
  assert.equal(await fingerprint(pemToDer(pem)), expected);
});

test("a web page is no PEM key", () => {
  assert.throws(() => pemToDer("<!doctype html><title>WLAN-Anmeldung</title>"));
  assert.throws(() => pemToDer("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"));
});
