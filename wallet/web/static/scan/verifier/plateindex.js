// The offline plate index (wallet/plateindex.py): keyed hashes of plates with each
// permit's zone, state, start and end, signed by the trust root, and the one verdict
// rule for a plate, so a device offline says what the service says online.
//
//   const index = await verifyIndex(token, pinnedRootPem, { now, highestVersion });
//   const answer = await index.check(keyBytes, "dab1234", "12", { now });
//   // {verdict, plate, zones, valid_until}: PlateCheck.to_json() in Python
//
// Refused as BundleError with code bundle_invalid, bundle_expired or bundle_rollback,
// as the bundle is (Python's BundleError, BundleExpiredError, BundleRollbackError).
// A plate or zone that cannot be one throws PlateInputError {code: "invalid_input",
// field: "plate" | "zone"}, the service's 400 for the same input.
//
// Entries (format 2), ENTRY bytes each, sorted by hash:
//   hash (12: HMAC-SHA256(key, "D-AB 1234")) | state (1) | start (4) | end (4) | zone (1)
// start and end are minutes since the epoch, unsigned big-endian. Both verifiers pass
// tests/corpus/plate_index.json.

import { b64urlDecode, b64urlEncode } from "./codec.js";
import { BundleError, VerifyError } from "./errors.js";
import { codePoints } from "./jws.js";
import { rootKeyFromPem } from "./keys.js";
import { lookupForms } from "./plates.js";
import { verifyRootSigned } from "./rootsigned.js";

export const INDEX_TYP = "wallet-plate-index+jwt";
export const FORMAT = 2;
export const HASH_BYTES = 12;
export const ENTRY = 22;
export const STATES = Object.freeze(["valid", "suspended"]);
export const MAX_ZONE_LENGTH = 16;
export const MAX_INDEX_LENGTH = 16 * 1024 * 1024;
export const MAX_MINUTES = 4_223_371_679; // 9999-12-31 23:59 UTC, the last a Python datetime shows

const invalid = (message) => new BundleError("bundle_invalid", message);
const subtle = () => globalThis.crypto.subtle;
const UTF8 = new TextEncoder();

export class PlateInputError extends Error {
  constructor(field, message) {
    super(message);
    this.name = "PlateInputError";
    this.code = "invalid_input";
    this.field = field;
  }
}

const seconds = (now) =>
  Math.floor(now instanceof Date ? now.getTime() / 1000 : (now ?? Date.now() / 1000));

function bytesOf(key) {
  if (key instanceof Uint8Array) return key;
  if (key instanceof ArrayBuffer) return new Uint8Array(key);
  throw new TypeError("the plate index key must be a Uint8Array or ArrayBuffer");
}

/** The public name of an index key (Python's key_id), so a device pairs key and index. */
export async function keyId(keyBytes) {
  const key = bytesOf(keyBytes);
  const input = new Uint8Array(16 + key.length);
  input.set(UTF8.encode("plate-index-key:"));
  input.set(key, 16);
  const digest = new Uint8Array(await subtle().digest("SHA-256", input));
  return b64urlEncode(digest.subarray(0, 9));
}

// Python's str.isspace, which str.split() and str.strip() use (not JavaScript's \s).
const SPACE = "\\t\\n\\v\\f\\r \\x1c-\\x1f\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const SPACES_RE = new RegExp(`[${SPACE}]+`, "g");

/** The zone as permits name it (Python's normalise_zone): spaces collapsed, upper case. */
export function normaliseZone(zone) {
  const words = typeof zone === "string" ? zone.split(SPACES_RE).filter(Boolean) : [];
  if (!words.length || codePoints(zone, MAX_ZONE_LENGTH) > MAX_ZONE_LENGTH) {
    throw new PlateInputError("zone", "give the zone you are checking, for example 12");
  }
  return words.join(" ").toUpperCase();
}

function plateReadings(text) {
  const found = lookupForms(text);
  if (!found.length) {
    throw new PlateInputError("plate", "type the plate as it is written on the car, for example D-AB 1234");
  }
  return found;
}

// Python's sorted() of str: by code point (UTF-16 order differs above U+FFFF).
function byCodePoint(a, b) {
  const x = Array.from(a, (c) => c.codePointAt(0));
  const y = Array.from(b, (c) => c.codePointAt(0));
  for (let i = 0; i < Math.min(x.length, y.length); i += 1) {
    if (x[i] !== y[i]) return x[i] - y[i];
  }
  return x.length - y.length;
}

/** datetime.fromtimestamp(s, UTC).isoformat() for whole seconds in the years 1970-9999. */
const isoformat = (s) => `${new Date(s * 1000).toISOString().slice(0, 19)}+00:00`;

function state(permit, now) {
  if (permit.state === "suspended") return "suspended";
  if (permit.validUntil <= now) return "expired";
  if (permit.validFrom > now) return "not_yet_valid";
  return "valid";
}

/**
 * The verdict (Python's judge): `hits` maps each reading's display form, in readings()
 * order, to the permits found for it; `now` is Unix seconds. PlateCheck.to_json()'s shape.
 */
export function judge(hits, zone, now) {
  const where = normaliseZone(zone);
  const matching = [...hits].filter(([, found]) => found.length);
  const answer = (verdict, plate = null, zones = [], validUntil = null) => ({
    verdict,
    plate,
    zones,
    valid_until: validUntil === null ? null : isoformat(validUntil),
  });
  if (matching.length > 1) return answer("ambiguous");
  if (!matching.length) return answer("unknown", hits.size === 1 ? [...hits.keys()][0] : null);
  const [[display, found]] = matching;
  const zones = [...new Set(found.map((f) => f.zone))].sort(byCodePoint);
  const here = found.filter((f) => f.zone === where);
  if (!here.length) return answer("wrong_zone", display, zones);
  const permit = here[0]; // one live permit per plate and zone
  return answer(state(permit, seconds(now)), display, zones, permit.validUntil);
}

function compareHash(entries, at, wanted) {
  for (let i = 0; i < HASH_BYTES; i += 1) {
    const d = entries[at + i] - wanted[i];
    if (d) return d;
  }
  return 0;
}

class PlateIndex {
  constructor(fields) {
    Object.assign(this, fields);
    this.length = this.entries.length / ENTRY;
    this.view = new DataView(this.entries.buffer, this.entries.byteOffset, this.entries.byteLength);
    this.hmacKeys = new Map(); // base64url of a key -> promise of its CryptoKey
    Object.freeze(this);
  }

  /** The permits of `display` (stored form, "D-AB 1234"): [{zone, state, validFrom,
   * validUntil}] with Unix seconds; binary search, no scan. */
  async lookup(keyBytes, display) {
    return this.find(await this.hmacKey(keyBytes), display);
  }

  /** The verdict for the plate `text` (as typed) parked in `zone`, as the service gives it. */
  async check(keyBytes, text, zone, { now } = {}) {
    const key = await this.hmacKey(keyBytes);
    const at = seconds(now);
    if (at >= this.expiresAt) {
      throw new BundleError("bundle_expired", "the plate index is out of date; sync before checking plates");
    }
    const found = plateReadings(text);
    const where = normaliseZone(zone);
    const hits = new Map();
    for (const plate of found) hits.set(plate, await this.find(key, plate));
    return judge(hits, where, at);
  }

  // The HMAC key, once its id proved it this index's; the promise is kept, so a burst of
  // lookups imports it once.
  hmacKey(keyBytes) {
    const bytes = bytesOf(keyBytes).slice();
    const name = b64urlEncode(bytes);
    let pending = this.hmacKeys.get(name);
    if (pending === undefined) {
      pending = this.importKey(bytes);
      if (this.hmacKeys.size < 4) {
        this.hmacKeys.set(name, pending);
        pending.catch(() => this.hmacKeys.delete(name));
      }
    }
    return pending;
  }

  async importKey(bytes) {
    if ((await keyId(bytes)) !== this.kid) {
      throw invalid("this key does not belong to this plate index; sync again");
    }
    return subtle().importKey("raw", bytes, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  }

  async find(key, display) {
    const wanted = new Uint8Array(await subtle().sign("HMAC", key, UTF8.encode(display)), 0, HASH_BYTES);
    const entries = this.entries;
    let low = 0;
    let high = this.length;
    while (low < high) {
      // first entry >= wanted
      const middle = (low + high) >>> 1;
      if (compareHash(entries, middle * ENTRY, wanted) < 0) low = middle + 1;
      else high = middle;
    }
    const found = [];
    for (; low < this.length && compareHash(entries, low * ENTRY, wanted) === 0; low += 1) {
      const at = low * ENTRY;
      found.push({
        zone: this.zones[entries[at + ENTRY - 1]],
        state: STATES[entries[at + HASH_BYTES]],
        validFrom: this.view.getUint32(at + HASH_BYTES + 1) * 60,
        validUntil: this.view.getUint32(at + HASH_BYTES + 5) * 60,
      });
    }
    return found;
  }
}

// Signed by the root but malformed (a bug on the server): refused here, so a lookup
// never fails half-way nor misses a permit. Same checks, same order as Python.
function vetEntries(entries, zones) {
  const view = new DataView(entries.buffer, entries.byteOffset, entries.byteLength);
  for (let at = 0; at < entries.length; at += ENTRY) {
    if (entries[at + HASH_BYTES] >= STATES.length || entries[at + ENTRY - 1] >= zones) {
      throw invalid("the plate index names a state or zone it does not have");
    }
    if (view.getUint32(at + HASH_BYTES + 1) > MAX_MINUTES || view.getUint32(at + HASH_BYTES + 5) > MAX_MINUTES) {
      throw invalid("the plate index names a time after the year 9999");
    }
    if (at && compareHash(entries, at - ENTRY, entries.subarray(at, at + HASH_BYTES)) > 0) {
      throw invalid("the plate index entries are not sorted; lookups would miss");
    }
  }
}

/**
 * The verified index: {issuer, version, issuedAt, expiresAt, kid, zones, entries, length,
 * lookup(keyBytes, display), check(keyBytes, text, zone, {now})}. `root` is the pinned
 * PEM text or what rootKeyFromPem made of it; `now` a Date or Unix seconds;
 * `highestVersion` the highest index version held (or null).
 */
export async function verifyIndex(token, root, { now, highestVersion = null } = {}) {
  let pinned = root;
  if (typeof root === "string") {
    try {
      pinned = await rootKeyFromPem(root);
    } catch (error) {
      throw invalid(`the pinned trust-root key is unusable: ${error.message}`);
    }
  }
  const signed = await verifyRootSigned(token, pinned, {
    typ: INDEX_TYP,
    maxLength: MAX_INDEX_LENGTH,
    format: FORMAT,
    what: "the plate index",
    whenExpired: "sync before checking plates",
    now: seconds(now),
    highestVersion,
  });
  const claims = signed.payload;
  const { zones, kid, e: packed } = claims;
  if (!Array.isArray(zones) || !zones.every((z) => typeof z === "string")) {
    throw invalid("the plate index's zones must be a list of names");
  }
  if (typeof kid !== "string" || typeof packed !== "string") {
    throw invalid("the plate index lacks its key id or entries");
  }
  let entries = new Uint8Array(0); // an index of no permits has no entries
  if (packed) {
    try {
      entries = b64urlDecode(packed, "plate index entries");
    } catch (error) {
      if (error instanceof VerifyError) throw invalid("the plate index entries are not base64url");
      throw error;
    }
  }
  if (entries.length % ENTRY) throw invalid("the plate index entries are cut off");
  vetEntries(entries, zones.length);
  return new PlateIndex({
    issuer: signed.issuer,
    version: signed.version,
    issuedAt: signed.issuedAt,
    expiresAt: signed.expiresAt,
    kid,
    zones: Object.freeze([...zones]),
    entries,
  });
}
