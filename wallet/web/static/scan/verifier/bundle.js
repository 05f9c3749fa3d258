// The trust bundle (wallet/bundle.py): everything the scanner needs, signed by the trust
// root it pinned at install. Refused unless signed by that root, unexpired, and no
// older than the highest version the device has seen (rollback).

import { isObject } from "./codec.js";
import { BundleError } from "./errors.js";
import { KeyProblem, importJwk, keyInfo } from "./keys.js";
import { verifyRootSigned } from "./rootsigned.js";
import { LIMITS } from "./rules.js";

const invalid = (message) => new BundleError("bundle_invalid", message);

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
  const signed = await verifyRootSigned(token, root, {
    typ: LIMITS.BUNDLE_TYP,
    maxLength: LIMITS.MAX_BUNDLE_LENGTH,
    format: LIMITS.BUNDLE_FORMAT,
    what: "the bundle",
    whenExpired: "sync a new one",
    now,
    highestVersion,
  });
  const payload = signed.payload;
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
    issuer: signed.issuer,
    version: signed.version,
    issuedAt: signed.issuedAt,
    expiresAt: signed.expiresAt,
    keys: bundleKeys,
    statusLists: lists,
    passTypes: types,
  };
}
