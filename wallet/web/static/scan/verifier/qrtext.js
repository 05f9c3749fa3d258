// The text inside a pass QR code (wallet/qrtext.py): "WP1" + decimal digits.
//
//   blob = varint(len(C)) || C || S,   C = raw DEFLATE( varint(len(H)) || H || P )
//
// Each full 7-byte chunk of the blob is 17 digits, big-endian and zero-padded; a
// final chunk of k bytes is PARTIAL_DIGITS[k] digits. Varints are minimal LEB128.
// Every deviation is `malformed`, as in Python.

import { b64urlLength } from "./codec.js";
import { fail } from "./errors.js";
import { InflateError, inflateRaw } from "./inflate.js";

export const PREFIX = "WP1";
const CHUNK_BYTES = 7;
const CHUNK_DIGITS = 17;
const PARTIAL_DIGITS = { 1: 3, 2: 5, 3: 8, 4: 10, 5: 13, 6: 15 };
const PARTIAL_BYTES = Object.fromEntries(
  Object.entries(PARTIAL_DIGITS).map(([bytes, digits]) => [digits, Number(bytes)]),
);
const SLACK_BYTES = 64;
const MAX_VARINT_BYTES = 5;
const DIGITS_RE = /^[0-9]*$/;

/** Whether `text` carries our prefix (in any case), i.e. is a QR text rather than a JWS. */
export function isQrText(text) {
  return /^[\x00-\x7f]*$/.test(text.slice(0, 3)) && text.slice(0, 3).toUpperCase() === PREFIX;
}

function digitsFor(byteCount) {
  const full = Math.floor(byteCount / CHUNK_BYTES);
  const rest = byteCount % CHUNK_BYTES;
  return full * CHUNK_DIGITS + (rest ? PARTIAL_DIGITS[rest] : 0);
}

function digitsToBlob(digits) {
  if (!DIGITS_RE.test(digits)) {
    fail("malformed", "the QR text has characters other than the digits 0-9 after the prefix");
  }
  const full = Math.floor(digits.length / CHUNK_DIGITS);
  const rest = digits.length % CHUNK_DIGITS;
  if (rest && !(rest in PARTIAL_BYTES)) {
    fail("malformed", `the QR text has an impossible number of digits (${digits.length})`);
  }
  const size = full * CHUNK_BYTES + (rest ? PARTIAL_BYTES[rest] : 0);
  const blob = new Uint8Array(size);
  for (let i = 0; i < full; i += 1) {
    putChunk(blob, i * CHUNK_BYTES, digits.slice(i * CHUNK_DIGITS, (i + 1) * CHUNK_DIGITS), CHUNK_BYTES);
  }
  if (rest) putChunk(blob, full * CHUNK_BYTES, digits.slice(full * CHUNK_DIGITS), PARTIAL_BYTES[rest]);
  return blob;
}

function putChunk(blob, at, group, width) {
  let value = BigInt(group);
  if (value >= 1n << BigInt(8 * width)) fail("malformed", "the QR text has a digit group out of range");
  for (let i = width - 1; i >= 0; i -= 1) {
    blob[at + i] = Number(value & 0xffn);
    value >>= 8n;
  }
}

/** [value, next offset] of a minimal LEB128 varint at `offset`. */
function readVarint(data, offset) {
  let value = 0;
  for (let index = 0; index < MAX_VARINT_BYTES; index += 1) {
    if (offset + index >= data.length) fail("malformed", "the QR text ends inside a length field");
    const byte = data[offset + index];
    value += (byte & 0x7f) * 2 ** (7 * index);
    if (!(byte & 0x80)) {
      if (byte === 0 && index > 0) fail("malformed", "the QR text has a non-minimal length field");
      return [value, offset + index + 1];
    }
  }
  return fail("malformed", "the QR text has an overlong length field");
}

/**
 * The decoded header, payload and signature of a QR text, or null without our prefix
 * (then the text is judged as a compact JWS).
 */
export function decodeQrParts(text, maxJwsLength = 4096) {
  if (!isQrText(text)) return null;
  const digits = text.slice(PREFIX.length);
  const maxBlob = maxJwsLength + SLACK_BYTES;
  if (digits.length > digitsFor(maxBlob)) {
    fail("malformed", "the QR text is longer than any pass token we accept");
  }
  const blob = digitsToBlob(digits);
  const [compressedLength, start] = readVarint(blob, 0);
  if (compressedLength > blob.length - start) {
    fail("malformed", "the QR text's compressed length exceeds its data");
  }
  const compressed = blob.subarray(start, start + compressedLength);
  const signature = blob.subarray(start + compressedLength);
  let inner;
  try {
    inner = inflateRaw(compressed, maxJwsLength + SLACK_BYTES);
  } catch (error) {
    if (error instanceof InflateError) fail("malformed", `the QR text's ${error.message}`);
    throw error;
  }
  const [headerLength, at] = readVarint(inner, 0);
  if (headerLength > inner.length - at) fail("malformed", "the QR text's header length exceeds its data");
  const header = inner.subarray(at, at + headerLength);
  const payload = inner.subarray(at + headerLength);
  const length = b64urlLength(header.length) + b64urlLength(payload.length) + b64urlLength(signature.length) + 2;
  if (length > maxJwsLength) {
    fail("malformed", `the QR text decodes to a token longer than ${maxJwsLength} characters`);
  }
  return [header, payload, signature];
}
