// The JWS layer (wallet/jws.py): compact serialization, strict and pinned.
//
// Before any cryptography: a length cap, canonical base64url, JSON without duplicate
// members, a header of exactly alg, kid and typ, and an algorithm that must equal the
// one pinned to the key, never one chosen by the token. The checks run in the same
// order as in Python, so the same hostile token gets the same reason code.

import { asciiBytes, b64urlDecode, b64urlEncode, b64urlLength, parseJsonObject } from "./codec.js";
import { fail } from "./errors.js";

const HEADER_MEMBERS = ["alg", "kid", "typ"];
const FETCH_HEADERS = ["jku", "x5u", "jwk", "x5c"];
const VERIFY = {
  ES256: { name: "ECDSA", hash: "SHA-256" },
  EdDSA: { name: "Ed25519" },
};

/** Length in code points, as Python's len() counts a str. */
export function codePoints(text, limit) {
  if (text.length <= limit) return text.length; // every code point is at least one unit
  let count = 0;
  for (const _ of text) {
    count += 1;
    if (count > limit) break;
  }
  return count;
}

// What Python's str.strip() removes (str.isspace): not quite JavaScript's \s, which
// also takes U+FEFF and leaves out U+001C-U+001F and U+0085.
const SPACE = "\\t\\n\\v\\f\\r \\x1c-\\x1f\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const STRIP_RE = new RegExp(`^[${SPACE}]+|[${SPACE}]+$`, "g");

function vetHeader(header, keys, typ) {
  const alg = header.alg;
  if (typeof alg !== "string") fail("bad_header", "the header has no algorithm");
  if (alg.replace(STRIP_RE, "").toLowerCase() === "none") {
    fail("alg_none", "unsigned tokens (alg none) are never accepted");
  }
  if (Object.hasOwn(header, "crit")) fail("crit_header", "critical header extensions are not supported");
  const fetched = FETCH_HEADERS.filter((name) => Object.hasOwn(header, name)).sort();
  if (fetched.length) fail("forbidden_header", `keys are never taken from the token (${fetched.join(", ")})`);
  const names = Object.keys(header);
  if (names.length !== 3 || !HEADER_MEMBERS.every((name) => Object.hasOwn(header, name))) {
    fail("bad_header", "unexpected or missing header members");
  }
  if (typeof header.typ !== "string" || header.typ.toLowerCase() !== typ) {
    fail("wrong_typ", `the token type is not ${typ}`);
  }
  const kid = header.kid;
  if (typeof kid !== "string") fail("bad_header", "the key id must be text");
  const candidates = keys.find(kid);
  if (!candidates.length) fail("unknown_kid", `no trusted key has the id ${JSON.stringify(kid.slice(0, 16))}`);
  const pinned = candidates.filter((key) => key.alg === alg);
  if (!pinned.length) fail("alg_mismatch", `key ${kid} is not used with ${alg.slice(0, 16)}`);
  return pinned;
}

async function signatureMatches(key, signingInput, signature) {
  if (key.alg === "ES256" && signature.length !== 64) return false;
  try {
    return await globalThis.crypto.subtle.verify(VERIFY[key.alg], key.cryptoKey, signature, signingInput);
  } catch {
    return false;
  }
}

/** Checks compact JWS of one `typ` against a key ring; the token chooses nothing. */
export class JWSVerifier {
  constructor(keys, { typ, maxLength }) {
    this.keys = keys;
    this.typ = typ;
    this.maxLength = maxLength;
    this.vetted = new Map(); // header segment -> [header, pinned keys]
  }

  /** {key, header, payload} of a genuine compact JWS; throws VerifyError. */
  async verify(token) {
    if (typeof token !== "string") fail("malformed", "a token must be text");
    if (codePoints(token, this.maxLength) > this.maxLength) {
      fail("too_long", `the token is longer than ${this.maxLength} characters`);
    }
    const parts = token.split(".");
    if (parts.length !== 3) fail("malformed", "a compact JWS has exactly three parts");
    // The header is judged before the other parts are decoded, so an unsigned
    // "header.payload." token is named alg_none, not malformed.
    const [header, pinned] = this.vet(parts[0]);
    const payload = b64urlDecode(parts[1], "payload");
    const signature = b64urlDecode(parts[2], "signature");
    const signingInput = asciiBytes(`${parts[0]}.${parts[1]}`);
    return this.checkSignature(header, pinned, payload, signature, signingInput);
  }

  /** The same for a token given as its decoded parts (from QR text). */
  async verifyParts(header, payload, signature) {
    const length = b64urlLength(header.length) + b64urlLength(payload.length) + b64urlLength(signature.length) + 2;
    if (length > this.maxLength) fail("too_long", `the token is longer than ${this.maxLength} characters`);
    const segment = b64urlEncode(header);
    const [parsed, pinned] = this.vet(segment);
    const signingInput = asciiBytes(`${segment}.${b64urlEncode(payload)}`);
    return this.checkSignature(parsed, pinned, payload, signature, signingInput);
  }

  vet(segment) {
    let vetted = this.vetted.get(segment);
    if (vetted === undefined) {
      const header = parseJsonObject(b64urlDecode(segment, "header"), "header");
      vetted = [header, vetHeader(header, this.keys, this.typ)];
      if (this.vetted.size < 64) this.vetted.set(segment, vetted);
    }
    return vetted;
  }

  async checkSignature(header, pinned, payload, signature, signingInput) {
    for (const key of pinned) {
      if (await signatureMatches(key, signingInput, signature)) {
        return { key, header, payload: parseJsonObject(payload, "payload") };
      }
    }
    return fail("bad_signature", "the signature does not match");
  }
}
