// The one codec of the verifier: strict base64url and strict JSON, as wallet/codec.py.
//
// One value has exactly one spelling: no padding, whitespace or stray trailing bits
// in base64url; JSON in UTF-8 without a BOM, duplicate members, NaN or Infinity.
// JSON.parse cannot see duplicate members nor tell 1 from 1.0 (Python can, and a
// time claim of 1.0 is refused there), hence the small parser below. Numbers come
// back as: a Number for a whole-number literal that fits, a BigInt for a larger
// one, and a JsonFloat for any literal with a fraction or exponent.

import { fail } from "./errors.js";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const VALUE = new Int16Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i += 1) VALUE[ALPHABET.charCodeAt(i)] = i;
const SEGMENT_RE = /^[A-Za-z0-9_-]+$/;

export class JsonFloat {
  constructor(value) {
    this.value = value;
  }
}

/** Whole number as Python's `type(x) is int` sees it (booleans and floats are not). */
export const isInt = (value) =>
  (typeof value === "number" && Number.isInteger(value)) || typeof value === "bigint";

export const isObject = (value) =>
  value !== null && typeof value === "object" && !Array.isArray(value) &&
  !(value instanceof JsonFloat);

/** Canonical unpadded base64url only; throws `malformed` naming `what`. */
export function b64urlDecode(text, what, code = "malformed") {
  const rest = text.length % 4;
  if (rest === 1 || !SEGMENT_RE.test(text)) fail(code, `the ${what} is not base64url`);
  const last = VALUE[text.charCodeAt(text.length - 1)];
  if ((rest === 2 && last & 0x0f) || (rest === 3 && last & 0x03)) {
    fail(code, `the ${what} is not canonical base64url`);
  }
  const out = new Uint8Array(Math.floor((text.length * 3) / 4));
  let bits = 0;
  let buffer = 0;
  let at = 0;
  for (let i = 0; i < text.length; i += 1) {
    buffer = (buffer << 6) | VALUE[text.charCodeAt(i)];
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[at] = (buffer >> bits) & 0xff;
      at += 1;
    }
  }
  return out;
}

export function b64urlEncode(bytes) {
  let out = "";
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63] + ALPHABET[(n >> 6) & 63] + ALPHABET[n & 63];
  }
  if (i < bytes.length) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8);
    out += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63];
    if (i + 1 < bytes.length) out += ALPHABET[(n >> 6) & 63];
  }
  return out;
}

/** Length of the unpadded base64url of `n` bytes, without building it. */
export const b64urlLength = (n) => Math.floor((4 * n + 2) / 3);

const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export function utf8(bytes, what, code = "malformed") {
  try {
    return UTF8.decode(bytes);
  } catch {
    return fail(code, `the ${what} is not valid JSON`);
  }
}

export const asciiBytes = (text) => {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i += 1) out[i] = text.charCodeAt(i);
  return out;
};

/**
 * Strict JSON object (wallet.codec.parse_json_object). Codes: `duplicate_member`
 * for a repeated member (found when its object closes, as Python's hook does),
 * else `malformed` (or the caller's code).
 */
export function parseJsonObject(bytes, what, code = "malformed") {
  const value = new Parser(utf8(bytes, what, code), what, code).document();
  if (!isObject(value)) fail(code, `the ${what} is not a JSON object`);
  return value;
}

const MAX_DEPTH = 512; // Python gives up near its recursion limit; nothing genuine nests deep
const NUMBER_RE = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?/y;
const ESCAPES = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };

class Parser {
  constructor(text, what, code) {
    this.text = text;
    this.at = 0;
    this.what = what;
    this.code = code;
  }

  bad() {
    fail(this.code, `the ${this.what} is not valid JSON`);
  }

  space() {
    const t = this.text;
    while (this.at < t.length) {
      const c = t.charCodeAt(this.at);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
      this.at += 1;
    }
  }

  document() {
    this.space();
    const value = this.value(0);
    this.space();
    if (this.at !== this.text.length) this.bad();
    return value;
  }

  value(depth) {
    if (depth > MAX_DEPTH) this.bad();
    const c = this.text[this.at];
    if (c === "{") return this.object(depth);
    if (c === "[") return this.array(depth);
    if (c === '"') return this.string();
    for (const [word, result] of [["true", true], ["false", false], ["null", null]]) {
      if (this.text.startsWith(word, this.at)) {
        this.at += word.length;
        return result;
      }
    }
    return this.number();
  }

  number() {
    NUMBER_RE.lastIndex = this.at;
    const found = NUMBER_RE.exec(this.text);
    if (!found) this.bad();
    this.at += found[0].length;
    if (found[1] !== undefined || found[2] !== undefined) return new JsonFloat(Number(found[0]));
    const small = Number(found[0]);
    return Number.isSafeInteger(small) ? small : BigInt(found[0]);
  }

  string() {
    const t = this.text;
    this.at += 1;
    let out = "";
    let start = this.at;
    for (;;) {
      if (this.at >= t.length) this.bad();
      const c = t.charCodeAt(this.at);
      if (c === 0x22) {
        out += t.slice(start, this.at);
        this.at += 1;
        return out;
      }
      if (c < 0x20) this.bad(); // strict: control characters must be escaped
      if (c === 0x5c) {
        out += t.slice(start, this.at);
        const e = t[this.at + 1];
        if (e === "u") {
          const hex = t.slice(this.at + 2, this.at + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.bad();
          out += String.fromCharCode(parseInt(hex, 16));
          this.at += 6;
        } else if (e !== undefined && Object.hasOwn(ESCAPES, e)) {
          out += ESCAPES[e];
          this.at += 2;
        } else {
          this.bad();
        }
        start = this.at;
      } else {
        this.at += 1;
      }
    }
  }

  array(depth) {
    this.at += 1;
    const out = [];
    this.space();
    if (this.text[this.at] === "]") {
      this.at += 1;
      return out;
    }
    for (;;) {
      this.space();
      out.push(this.value(depth + 1));
      this.space();
      const c = this.text[this.at];
      this.at += 1;
      if (c === "]") return out;
      if (c !== ",") this.bad();
    }
  }

  object(depth) {
    this.at += 1;
    const pairs = [];
    this.space();
    if (this.text[this.at] === "}") {
      this.at += 1;
      return Object.create(null);
    }
    for (;;) {
      this.space();
      if (this.text[this.at] !== '"') this.bad();
      const name = this.string();
      this.space();
      if (this.text[this.at] !== ":") this.bad();
      this.at += 1;
      this.space();
      pairs.push([name, this.value(depth + 1)]);
      this.space();
      const c = this.text[this.at];
      this.at += 1;
      if (c === "}") break;
      if (c !== ",") this.bad();
    }
    // A plain object without a prototype: "__proto__" is just a member name here.
    const out = Object.create(null);
    for (const [name, item] of pairs) {
      if (Object.hasOwn(out, name)) {
        fail("duplicate_member", `duplicate JSON member ${JSON.stringify(name.slice(0, 32))}`);
      }
      out[name] = item;
    }
    return out;
  }
}
