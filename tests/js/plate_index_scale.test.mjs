// The offline plate index at a city's size: 50,000 permits, packed here the way
// wallet/plateindex.py packs them (checked against the Python-signed index of the
// corpus), signed by a root made for the test, verified and searched by the scanner's
// plateindex.js. Every permit is found, with its zone, state and times; no stranger is.

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { b64urlDecode, b64urlEncode } from "../../wallet/web/static/scan/verifier/codec.js";
import { rootKeyFromPem } from "../../wallet/web/static/scan/verifier/keys.js";
import { ENTRY, INDEX_TYP, STATES, keyId, verifyIndex } from "../../wallet/web/static/scan/verifier/plateindex.js";

const corpus = JSON.parse(readFileSync(new URL("../corpus/plate_index.json", import.meta.url), "utf-8"));
const subtle = globalThis.crypto.subtle;
const utf8 = new TextEncoder();
const PERMITS = 50_000;
const NOW = 1_795_000_000; // 2026-11-18

/** The entries of `permits` under `key`, as sign_index packs them (format 2). Node's own
 * HMAC here: this is the server's side, and it keeps the test quick. */
function pack(permits, key, zones) {
  const entries = permits.map((p) => {
    const entry = new Uint8Array(ENTRY);
    const view = new DataView(entry.buffer);
    entry.set(createHmac("sha256", key).update(p.plate, "utf8").digest().subarray(0, 12));
    entry[12] = STATES.indexOf(p.state);
    view.setUint32(13, Math.ceil(p.valid_from / 60));
    view.setUint32(17, Math.floor(p.valid_until / 60));
    entry[21] = zones.indexOf(p.zone);
    return entry;
  });
  // Sorted as bytes, as Python sorts them: one code unit per byte compares the same way.
  const sorted = entries.map((entry) => String.fromCharCode(...entry)).sort();
  const out = new Uint8Array(entries.length * ENTRY);
  sorted.forEach((entry, i) => {
    for (let j = 0; j < ENTRY; j += 1) out[i * ENTRY + j] = entry.charCodeAt(j);
  });
  return out;
}

async function signedIndex(permits, key) {
  const pair = await subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
  const spki = new Uint8Array(await subtle.exportKey("spki", pair.publicKey));
  const pem = `-----BEGIN PUBLIC KEY-----\n${Buffer.from(spki).toString("base64")}\n-----END PUBLIC KEY-----\n`;
  const root = await rootKeyFromPem(pem);
  const zones = [...new Set(permits.map((p) => p.zone))].sort();
  const claims = {
    fmt: 2, iss: "https://pass.example", ver: 1, iat: NOW - 60, exp: NOW + 86_400,
    kid: await keyId(key), zones, e: b64urlEncode(pack(permits, key, zones)),
  };
  const header = { alg: "ES256", kid: root.kid, typ: INDEX_TYP };
  const part = (value) => b64urlEncode(utf8.encode(JSON.stringify(value)));
  const input = `${part(header)}.${part(claims)}`;
  const signature = await subtle.sign({ name: "ECDSA", hash: "SHA-256" }, pair.privateKey, utf8.encode(input));
  return { token: `${input}.${b64urlEncode(new Uint8Array(signature))}`, pem };
}

test("this packer packs as Python does: the corpus index's own entries", async () => {
  const main = corpus.vectors.find((v) => v.name === "genuine index");
  const index = await verifyIndex(corpus.indexes.main, corpus.roots.city, { now: main.now });
  const packed = pack(corpus.permits.main, b64urlDecode(corpus.keys.main, "key"), [...index.zones]);
  assert.deepEqual(packed, index.entries);
});

test("50,000 permits: under 2 MB, verified, and every permit found by binary search", async () => {
  const letters = "ABCDEFGHJKLMNPRSTUVWXYZ";
  const districts = ["D", "DU", "K", "M", "NE", "LÖ", "B", "HH"]; // LÖ: a plate in UTF-8
  const permits = [];
  for (let n = 0; n < PERMITS; n += 1) {
    const plate = `${districts[n % 8]}-${letters[(n >> 3) % 23]}${letters[Math.floor(n / 184) % 23]} ${(n % 9973) + 1}`;
    permits.push({
      plate,
      zone: String((n * 7) % 39 + 1),
      state: n % 50 === 0 ? "suspended" : "valid",
      valid_from: NOW - 86_400 * (n % 300) + (n % 60),
      valid_until: NOW + 86_400 * (n % 400) + 59,
    });
  }
  const key = crypto.getRandomValues(new Uint8Array(32));
  const { token, pem } = await signedIndex(permits, key);
  assert.ok(token.length <= 2_000_000, `${token.length} characters`);
  const index = await verifyIndex(token, pem, { now: NOW });
  assert.equal(index.length, PERMITS);
  const found = [];
  for (let at = 0; at < PERMITS; at += 1000) {
    found.push(...(await Promise.all(permits.slice(at, at + 1000).map((p) => index.lookup(key, p.plate)))));
  }
  permits.forEach((p, i) => {
    const match = found[i].find(
      (f) => f.zone === p.zone && f.state === p.state &&
        f.validFrom === Math.ceil(p.valid_from / 60) * 60 && f.validUntil === Math.floor(p.valid_until / 60) * 60,
    );
    assert.ok(match, `${p.plate} in zone ${p.zone}`);
  });
  for (const stranger of ["D-QQ 1", "HH-AB 9999", "X-Y 1"]) {
    assert.deepEqual(await index.lookup(key, stranger), []);
  }
  const first = permits[1];
  const answer = await index.check(key, first.plate.replace("-", " "), first.zone, { now: NOW });
  assert.equal(answer.verdict, "valid");
  assert.equal(answer.plate, first.plate);
});
