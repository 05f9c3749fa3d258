// The scanner's offline verifier: the JavaScript twin of wallet/verifier.py.
//
//   const bundle = await verifyBundle(jws, pinnedRootPem, { now, highestVersion });
//   const verifier = await Verifier.create(bundle);
//   const result = await verifier.check(scannedText, { now }); // never throws
//
// `now` is a Date or Unix seconds (default: the device clock); the root key is the
// pinned PEM text or what rootKeyFromPem made of it. A result is {state, reason, admit, tone, message: {de, en},
// claims, warnings, detail}: the Python VerificationResult.to_json() plus its tone.
// Both verifiers pass the same corpus (tests/corpus/verifier.json).

import { BundleError, VerifyError } from "./errors.js";
import { decodeQrParts } from "./qrtext.js";
import { KeyRing } from "./keys.js";
import { codePoints } from "./jws.js";
import { INVALID, SUSPENDED, VALID } from "./statuslist.js";
import { PassTokenVerifier, display, verifyStatusListToken } from "./tokens.js";
import { ADMITTING_REASONS, FORGED, LIMITS, MESSAGES, REASONS, TONES } from "./rules.js";
import { verifyBundle as verifySignedBundle } from "./bundle.js";
import { rootKeyFromPem } from "./keys.js";

export { BundleError, rootKeyFromPem };
export { keyId, verifyIndex } from "./plateindex.js";
export { lookupForms, readings } from "./plates.js";

const seconds = (now) =>
  Math.floor(now instanceof Date ? now.getTime() / 1000 : (now ?? Date.now() / 1000));

/** The verified bundle, or a BundleError (bundle_invalid, bundle_expired, bundle_rollback). */
export async function verifyBundle(token, root, { now, highestVersion = null } = {}) {
  let pinned = root;
  if (typeof root === "string") {
    try {
      pinned = await rootKeyFromPem(root);
    } catch (error) {
      throw new BundleError("bundle_invalid", `the pinned trust-root key is unusable: ${error.message}`);
    }
  }
  return verifySignedBundle(token, pinned, { now: seconds(now), highestVersion });
}

/** A verdict, shaped as VerificationResult.to_json() plus `tone`. */
export function verdict(state, reason, { claims = {}, detail = "" } = {}) {
  const message = MESSAGES[reason] ?? FORGED;
  return {
    state,
    reason,
    admit: ADMITTING_REASONS.includes(reason) && REASONS[reason] === state,
    tone: TONES[state] ?? "red",
    message: { de: message.de, en: message.en },
    claims,
    warnings: [],
    detail,
  };
}

export class Verifier {
  /** Build from a verified bundle: status list tokens are verified once, here. */
  static async create(bundle) {
    const keys = new KeyRing(bundle.keys.filter((key) => key.role === "pass"));
    const lists = new Map();
    for (const [uri, token] of Object.entries(bundle.statusLists)) {
      try {
        lists.set(uri, await verifyStatusListToken(token, keys, { issuer: bundle.issuer, uri }));
      } catch (error) {
        if (!(error instanceof VerifyError)) throw error;
        lists.set(uri, error); // a pass that points at a bad list is refused with why
      }
    }
    return new Verifier(bundle, keys, lists);
  }

  constructor(bundle, keys, lists) {
    this.bundle = bundle;
    this.passes = new PassTokenVerifier(keys, bundle.issuer);
    this.lists = lists;
  }

  /** Judge a scanned QR text or bare JWS. Never throws. */
  async check(text, { now } = {}) {
    try {
      return await this.judge(text, seconds(now));
    } catch (error) {
      if (error instanceof VerifyError) {
        return verdict(REASONS[error.code] ?? "invalid", error.code, {
          claims: error.claims ?? {},
          detail: error.message,
        });
      }
      return verdict("invalid", "internal_error", { detail: error?.name ?? "Error" });
    }
  }

  async judge(text, now) {
    if (typeof text !== "string") return verdict("invalid", "malformed", { detail: "not text" });
    if (codePoints(text, LIMITS.MAX_INPUT_LENGTH) > LIMITS.MAX_INPUT_LENGTH) {
      return verdict("invalid", "too_long", { detail: "input too long" });
    }
    const parts = decodeQrParts(text);
    const claims =
      parts === null
        ? await this.passes.verify(text, now)
        : await this.passes.verifyParts(...parts, now);
    return this.withStatus(claims, now);
  }

  withStatus(claims, now) {
    const shown = display(claims);
    const passType = this.bundle.passTypes[claims.passType];
    if (passType === undefined) return verdict("invalid", "unknown_pass_type", { claims: shown });
    const failClosed = passType.stale_status !== "warn";
    const entry = this.lists.get(claims.statusUri);
    if (entry instanceof VerifyError) {
      const reason = entry.code === "status_list_subject" ? "status_list_subject" : "status_list_invalid";
      return verdict("invalid", reason, { claims: shown, detail: entry.message });
    }
    if (entry === undefined) return unchecked(shown, failClosed, "status_list_unknown");
    if (claims.statusIdx >= entry.statusList.size) {
      return verdict("invalid", "status_index_out_of_range", { claims: shown });
    }
    const value = entry.statusList.get(claims.statusIdx);
    if (value === INVALID) return verdict("revoked", "revoked", { claims: shown });
    if (value === SUSPENDED) return verdict("suspended", "suspended", { claims: shown });
    if (value !== VALID) return verdict("invalid", "status_unknown", { claims: shown });
    if (now >= entry.expiresAt) return unchecked(shown, failClosed, "status_stale");
    return verdict("valid", "ok", { claims: shown });
  }
}

/** The status list is missing or stale: amber, never valid; the policy decides `admit`. */
function unchecked(shown, failClosed, reason) {
  const code = failClosed ? `${reason}_closed` : reason;
  return verdict(REASONS[code], code, { claims: shown });
}
