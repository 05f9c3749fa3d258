// Pass tokens and status list tokens (wallet/tokens.py): the claims' shape, then their
// meaning against the key, the issuer and the time, in Python's order.

import { isInt, isObject } from "./codec.js";
import { VerifyError, fail } from "./errors.js";
import { JWSVerifier } from "./jws.js";
import { allows, covers } from "./keys.js";
import { LIMITS } from "./rules.js";
import { StatusList, StatusListProblem } from "./statuslist.js";

const {
  PASS_TYP,
  STATUS_LIST_TYP,
  MAX_PASS_TOKEN_LENGTH,
  MAX_STATUS_LIST_TOKEN_LENGTH,
  LEEWAY_SECONDS,
  MAX_VALIDITY_SECONDS,
  MAX_TIMESTAMP,
  SERIAL_PATTERN,
} = LIMITS;
const SERIAL_RE = new RegExp(`^${SERIAL_PATTERN}$`);

function timeClaim(payload, name, code = "bad_claim") {
  const value = payload[name];
  if (!isInt(value) || !(value > 0 && value < MAX_TIMESTAMP)) {
    fail(code, `the ${name} claim ${value === undefined || value === null ? "is missing" : "is not a sensible Unix time"}`);
  }
  return Number(value);
}

const iso = (seconds) => new Date(seconds * 1000).toISOString().replace(".000Z", "+00:00");

/** Claims as plain values for showing to staff (PassClaims.display). */
export function display(claims) {
  const shown = {
    serial: claims.serial,
    pass_type: claims.passType,
    issuer: claims.issuer,
    issued_at: iso(claims.issuedAt),
    expires_at: iso(claims.expiresAt),
    holder: { ...claims.holder },
  };
  if (claims.notBefore !== null) shown.not_before = iso(claims.notBefore);
  return shown;
}

/** The claims' shape, before any judgement of time or status. */
function passClaims(payload, kid) {
  const { iss, sub, pt } = payload;
  if (typeof iss !== "string" || typeof sub !== "string" || typeof pt !== "string") {
    fail("bad_claim", "the iss, sub and pt claims must be text");
  }
  if (!SERIAL_RE.test(sub)) fail("bad_claim", "the serial (sub) is malformed");
  const iat = timeClaim(payload, "iat");
  const exp = timeClaim(payload, "exp");
  const nbf = Object.hasOwn(payload, "nbf") ? timeClaim(payload, "nbf") : null;
  if (!(iat < exp && exp <= iat + MAX_VALIDITY_SECONDS)) {
    fail("bad_claim", "the expiry (exp) is not within the longest validity after iat");
  }
  const holder = Object.hasOwn(payload, "h") ? payload.h : {};
  if (!isObject(holder) || !Object.values(holder).every((v) => typeof v === "string")) {
    fail("bad_claim", "the holder claim (h) must map field names to text");
  }
  const ref = isObject(payload.status) ? payload.status.status_list : undefined;
  const refNames = isObject(ref) ? Object.keys(ref).sort().join(",") : "";
  if (refNames !== "idx,uri") fail("bad_claim", "the status claim must be {status_list: {idx, uri}}");
  if (!isInt(ref.idx) || ref.idx < 0 || typeof ref.uri !== "string") {
    fail("bad_claim", "the status reference needs a whole-number idx and a uri");
  }
  return {
    issuer: iss,
    serial: sub,
    passType: pt,
    issuedAt: iat,
    expiresAt: exp,
    notBefore: nbf,
    holder,
    statusIdx: ref.idx,
    statusUri: ref.uri,
    kid,
  };
}

function checkKeyFor(key, issuedAt) {
  if (key.state === "revoked") fail("key_revoked", `key ${key.kid} has been revoked`);
  if (key.role !== "pass") fail("key_not_allowed", `key ${key.kid} does not sign passes or status lists`);
  if (!covers(key, issuedAt)) {
    fail("key_window", `key ${key.kid} was not valid for signing at the token's issue time`);
  }
}

/** Verifies pass tokens of one issuer against a key ring, many times over. */
export class PassTokenVerifier {
  constructor(keys, issuer) {
    this.issuer = issuer;
    this.jws = new JWSVerifier(keys, { typ: PASS_TYP, maxLength: MAX_PASS_TOKEN_LENGTH });
  }

  async verify(token, now) {
    return this.judge(await this.jws.verify(token), now);
  }

  async verifyParts(header, payload, signature, now) {
    return this.judge(await this.jws.verifyParts(header, payload, signature), now);
  }

  judge(verified, now) {
    const claims = passClaims(verified.payload, verified.key.kid);
    const key = verified.key;
    try {
      if (claims.issuer !== this.issuer) fail("wrong_issuer", "the pass names another issuer");
      checkKeyFor(key, claims.issuedAt);
      if (!allows(key, claims.passType)) {
        fail("key_not_allowed", `key ${key.kid} may not sign ${claims.passType.slice(0, 32)} passes`);
      }
      if (claims.issuedAt > now + LEEWAY_SECONDS) {
        fail("issued_in_future", "the pass claims to be issued in the future");
      }
      if (claims.notBefore !== null && claims.notBefore > now + LEEWAY_SECONDS) {
        fail("not_yet_valid", "the pass is not valid yet");
      }
      if (now >= claims.expiresAt + LEEWAY_SECONDS) fail("expired", "the pass has expired");
    } catch (error) {
      if (error instanceof VerifyError) error.claims = display(claims); // genuine: show it
      throw error;
    }
    return claims;
  }
}

/** A status list token's signature, subject and shape (not its age); throws VerifyError. */
export async function verifyStatusListToken(token, keys, { issuer, uri }) {
  const jws = new JWSVerifier(keys, { typ: STATUS_LIST_TYP, maxLength: MAX_STATUS_LIST_TOKEN_LENGTH });
  const verified = await jws.verify(token);
  const payload = verified.payload;
  if (payload.sub !== uri) fail("status_list_subject", "the status list's subject differs from the pass's uri");
  if (payload.iss !== issuer) fail("wrong_issuer", "the status list names another issuer, or none");
  const issuedAt = timeClaim(payload, "iat");
  const expiresAt = timeClaim(payload, "exp"); // without exp a copy would never go stale
  checkKeyFor(verified.key, issuedAt);
  const ttl = payload.ttl;
  if (ttl !== undefined && ttl !== null && (!isInt(ttl) || ttl <= 0)) {
    fail("bad_claim", "the status list's ttl must be a positive whole number");
  }
  let statusList;
  try {
    statusList = StatusList.fromClaim(payload.status_list);
  } catch (error) {
    if (error instanceof StatusListProblem) fail("bad_claim", `the status list is malformed: ${error.message}`);
    throw error;
  }
  return { uri, issuedAt, expiresAt, statusList, kid: verified.key.kid };
}
