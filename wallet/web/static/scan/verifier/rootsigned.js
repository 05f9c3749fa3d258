// What the trust root signs (the bundle, the plate index): the checks they all get, as
// wallet/rootsigned.py makes them. Each is a JWS of its own typ signed by the pinned root,
// with a format number, the issuer, a version that only grows, and iat and exp; what a
// document carries besides is its own module's business.

import { isInt } from "./codec.js";
import { BundleError, VerifyError } from "./errors.js";
import { JWSVerifier } from "./jws.js";
import { KeyRing } from "./keys.js";

const MAX_TIME = 2 ** 34; // iat and exp: Unix seconds, far beyond any real date

const invalid = (message) => new BundleError("bundle_invalid", message);

/** "2026-12-04 16:05", as Python's %Y-%m-%d %H:%M of the same moment. */
const minute = (seconds) => new Date(seconds * 1000).toISOString().slice(0, 16).replace("T", " ");

function time(payload, name, what) {
  const value = payload[name];
  if (!isInt(value) || !(value > 0 && value < MAX_TIME)) {
    throw invalid(`${what}'s ${name} is missing or not a Unix time`);
  }
  return Number(value);
}

/**
 * Check the signature, format, issuer, version, times, expiry and rollback of a document
 * the pinned `root` key signed. `now` is Unix seconds; `what` names the document in
 * messages ("the bundle"), `whenExpired` says what to do about an expired one.
 * Returns {payload, issuer, version, issuedAt, expiresAt} (times in Unix seconds);
 * throws BundleError with code bundle_invalid, bundle_expired or bundle_rollback.
 */
export async function verifyRootSigned(
  token, root, { typ, maxLength, format, what, whenExpired, now, highestVersion = null },
) {
  let verified;
  try {
    verified = await new JWSVerifier(new KeyRing([root]), { typ, maxLength }).verify(token);
  } catch (error) {
    if (error instanceof VerifyError) {
      throw invalid(`${what} is not signed by the pinned trust root (${error.code})`);
    }
    throw error;
  }
  const payload = verified.payload;
  if (!isInt(payload.fmt) || payload.fmt !== format) {
    throw invalid(`${what} format is unknown; update the verifier`);
  }
  const { iss, ver } = payload;
  if (typeof iss !== "string" || !iss) throw invalid(`${what} names no issuer`);
  if (!isInt(ver) || ver < 1) throw invalid(`${what} version must be a positive whole number`);
  const issuedAt = time(payload, "iat", what);
  const expiresAt = time(payload, "exp", what);
  if (now >= expiresAt) {
    throw new BundleError("bundle_expired", `${what} expired on ${minute(expiresAt)} UTC; ${whenExpired}`);
  }
  if (highestVersion !== null && ver < highestVersion) {
    throw new BundleError(
      "bundle_rollback",
      `${what} has version ${ver}, older than the held version ${highestVersion}`,
    );
  }
  return { payload, issuer: iss, version: Number(ver), issuedAt, expiresAt };
}
