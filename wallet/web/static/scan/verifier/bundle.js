// The trust bundle (wallet/bundle.py): everything the scanner needs, signed by the trust
// root it pinned at install. Refused unless signed by that root, unexpired, and no
// older than the highest version the device has seen (rollback).

import { isInt, isObject } from "./codec.js";
import { BundleError, VerifyError } from "./errors.js";
import { JWSVerifier } from "./jws.js";
import { KeyProblem, KeyRing, importJwk, keyInfo } from "./keys.js";
import { LIMITS } from "./rules.js";

const invalid = (message) => new BundleError("bundle_invalid", message);

function time(payload, name) {
  const value = payload[name];
  if (!isInt(value) || !(value > 0 && value < 2 ** 34)) {
    throw invalid(`the bundle's ${name} is missing or not a Unix time`);
  }
  return Number(value);
}

async function bundleKey(entry) {
  if (!isObject(entry) || !isObject(entry.jwk) || !isObject(entry.meta)) {
    throw invalid("a bundle key entry needs a jwk and meta");
  }
  let info;
  let imported;
  try {
    info = keyInfo(entry.meta);
    imported = await importJwk(entry.jwk);
  } catch (error) {
    if (error instanceof KeyProblem) throw invalid(`a bundle key is malformed: ${error.message}`);
    throw error;
  }
  if (imported.kid !== info.kid || imported.alg !== info.alg) {
    throw invalid(`bundle key ${info.kid} does not match its metadata`);
  }
  if (info.role !== "pass") throw invalid("a bundle carries pass keys only");
  return { ...info, cryptoKey: imported.cryptoKey };
}

/**
 * The verified content of a signed bundle: {issuer, version, issuedAt, expiresAt,
 * keys, statusLists, passTypes}. `root` is the pinned key (keys.rootKeyFromPem),
 * `now` Unix seconds, `highestVersion` the highest version held (or null).
 * Throws BundleError with code bundle_invalid, bundle_expired or bundle_rollback.
 */
export async function verifyBundle(token, root, { now, highestVersion = null }) {
  let verified;
  try {
    const jws = new JWSVerifier(new KeyRing([root]), {
      typ: LIMITS.BUNDLE_TYP,
      maxLength: LIMITS.MAX_BUNDLE_LENGTH,
    });
    verified = await jws.verify(token);
  } catch (error) {
    if (error instanceof VerifyError) {
      throw invalid(`the bundle is not signed by the pinned trust root (${error.code})`);
    }
    throw error;
  }
  const payload = verified.payload;
  if (payload.fmt !== LIMITS.BUNDLE_FORMAT) throw invalid("the bundle format is unknown; update the app");
  const { iss, ver } = payload;
  if (typeof iss !== "string" || !iss) throw invalid("the bundle names no issuer");
  if (!isInt(ver) || ver < 1) throw invalid("the bundle version must be a positive whole number");
  const issuedAt = time(payload, "iat");
  const expiresAt = time(payload, "exp");
  if (now >= expiresAt) {
    throw new BundleError("bundle_expired", "the bundle has expired; sync a new one");
  }
  if (highestVersion !== null && ver < highestVersion) {
    throw new BundleError(
      "bundle_rollback",
      `the bundle has version ${ver}, older than the held version ${highestVersion}`,
    );
  }
  const { keys, status_lists: lists, pass_types: types } = payload;
  if (!Array.isArray(keys)) throw invalid("the bundle's keys must be a list");
  if (!isObject(lists) || !Object.values(lists).every((v) => typeof v === "string")) {
    throw invalid("the bundle's status lists must map URIs to tokens");
  }
  if (!isObject(types) || !Object.values(types).every(isObject)) {
    throw invalid("the bundle's pass types must map ids to display data");
  }
  const bundleKeys = [];
  for (const entry of keys) bundleKeys.push(await bundleKey(entry));
  return {
    issuer: iss,
    version: Number(ver),
    issuedAt,
    expiresAt,
    keys: bundleKeys,
    statusLists: lists,
    passTypes: types,
  };
}
