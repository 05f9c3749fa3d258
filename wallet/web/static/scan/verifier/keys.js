// Public keys as the bundle carries them (wallet/keys.py): a JWK, one pinned algorithm,
// a kid of 8 base64url characters of the RFC 7638 thumbprint, and metadata.
//
// ES256 keys verify through WebCrypto's ECDSA P-256; EdDSA keys through WebCrypto's
// Ed25519, which Chromium (113+), Firefox (129+), Safari (17+) and Node have. Where a
// browser lacks it, such a key cannot be imported and the bundle that carries it is
// refused as a whole (bundle_invalid) rather than half-trusted: the app then says
// the device cannot check passes and must be updated.

import { b64urlDecode, b64urlEncode, isInt, isObject } from "./codec.js";

export const KID_LENGTH = 8;
const ALGORITHMS = ["ES256", "EdDSA"];
const ROLES = ["pass", "root"];
const STATES = ["active", "retired", "revoked"];

export class KeyProblem extends Error {}

const subtle = () => globalThis.crypto.subtle;

function coordinate(value, what) {
  if (typeof value !== "string") throw new KeyProblem("a JWK coordinate must be base64url text");
  try {
    return b64urlDecode(value, what);
  } catch {
    throw new KeyProblem(`the JWK ${what} is not canonical base64url`);
  }
}

/** The required JWK members in RFC 7638 order, checked strictly. */
function requiredMembers(jwk) {
  if (jwk.kty === "OKP" && jwk.crv === "Ed25519") {
    if (coordinate(jwk.x, "x").length !== 32) throw new KeyProblem("Ed25519 key must be 32 bytes");
    return { alg: "EdDSA", members: { crv: "Ed25519", kty: "OKP", x: jwk.x } };
  }
  if (jwk.kty === "EC" && jwk.crv === "P-256") {
    if (coordinate(jwk.x, "x").length !== 32 || coordinate(jwk.y, "y").length !== 32) {
      throw new KeyProblem("P-256 coordinates must be 32 bytes each");
    }
    return { alg: "ES256", members: { crv: "P-256", kty: "EC", x: jwk.x, y: jwk.y } };
  }
  throw new KeyProblem("only EC P-256 and OKP Ed25519 JWKs are supported");
}

async function thumbprintKid(members) {
  const canonical = JSON.stringify(members); // members are already in sorted order
  const digest = await subtle().digest("SHA-256", new TextEncoder().encode(canonical));
  return b64urlEncode(new Uint8Array(digest)).slice(0, KID_LENGTH);
}

const IMPORT = {
  ES256: { name: "ECDSA", namedCurve: "P-256" },
  EdDSA: { name: "Ed25519" },
};

/** {alg, kid, cryptoKey} of a public JWK; throws KeyProblem. */
export async function importJwk(jwk) {
  if (!isObject(jwk)) throw new KeyProblem("a JWK must be an object");
  const { alg, members } = requiredMembers(jwk);
  let cryptoKey;
  try {
    cryptoKey = await subtle().importKey("jwk", { ...members }, IMPORT[alg], false, ["verify"]);
  } catch (error) {
    throw new KeyProblem(`the ${alg} key cannot be used here: ${error.message}`);
  }
  return { alg, kid: await thumbprintKid(members), cryptoKey };
}

/** The pinned trust root from its PEM text (SPKI), as a key ring entry. */
export async function rootKeyFromPem(pem) {
  const body = String(pem)
    .replace(/-----(BEGIN|END) PUBLIC KEY-----/g, "")
    .replace(/\s+/g, "");
  let der;
  try {
    der = Uint8Array.from(atob(body), (c) => c.charCodeAt(0));
  } catch {
    throw new KeyProblem("the trust-root key is not a PEM public key");
  }
  for (const alg of ALGORITHMS) {
    let key;
    try {
      key = await subtle().importKey("spki", der, IMPORT[alg], true, ["verify"]);
    } catch {
      continue;
    }
    const jwk = await subtle().exportKey("jwk", key);
    const { members } = requiredMembers(jwk);
    const verifyKey = await subtle().importKey("jwk", { ...members }, IMPORT[alg], false, ["verify"]);
    return {
      kid: await thumbprintKid(members),
      alg,
      role: "root",
      state: "active",
      notBefore: 0,
      notAfter: null,
      passTypes: new Set(),
      cryptoKey: verifyKey,
    };
  }
  throw new KeyProblem("the trust-root key must be a P-256 or Ed25519 public key");
}

function timestamp(value, name) {
  if (value === null || value === undefined) return null;
  if (!isInt(value) || !(value >= 0 && value < 2 ** 40)) {
    throw new KeyProblem(`key metadata ${name} must be a Unix time`);
  }
  return Number(value);
}

/** KeyInfo.from_json: the metadata beside a bundle's JWK. */
export function keyInfo(raw) {
  for (const name of ["kid", "alg", "role", "state", "pass_types", "created", "not_before"]) {
    if (!Object.hasOwn(raw, name)) throw new KeyProblem(`key metadata is incomplete: ${name}`);
  }
  const created = timestamp(raw.created, "created");
  const notBefore = timestamp(raw.not_before, "not_before");
  const notAfter = timestamp(raw.not_after, "not_after");
  if (typeof raw.kid !== "string" || !raw.kid || !ALGORITHMS.includes(raw.alg)) {
    throw new KeyProblem("key metadata needs a kid and an algorithm (ES256 or EdDSA)");
  }
  const types = raw.pass_types;
  if (!Array.isArray(types) || !types.every((t) => typeof t === "string")) {
    throw new KeyProblem("key metadata pass_types must be a list of type ids");
  }
  if (created === null || notBefore === null) {
    throw new KeyProblem("key metadata needs created and not_before");
  }
  if (!ROLES.includes(raw.role) || !STATES.includes(raw.state)) {
    throw new KeyProblem("key metadata has an unknown role or state");
  }
  return {
    kid: raw.kid,
    alg: raw.alg,
    role: raw.role,
    state: raw.state,
    notBefore,
    notAfter,
    passTypes: new Set(types),
  };
}

/** Keys by kid; several keys may share a shortened kid. */
export class KeyRing {
  constructor(keys) {
    this.byKid = new Map();
    for (const key of keys) this.byKid.set(key.kid, [...(this.byKid.get(key.kid) ?? []), key]);
  }

  find(kid) {
    return this.byKid.get(kid) ?? [];
  }
}

export const covers = (key, seconds) =>
  key.notBefore <= seconds && (key.notAfter === null || seconds <= key.notAfter);

export const allows = (key, passType) => key.role === "pass" && key.passTypes.has(passType);
