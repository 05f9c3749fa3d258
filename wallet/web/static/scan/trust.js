// The trust root the scanner pins: taken once from the service it was installed
// from, kept in IndexedDB, never replaced by what a later download says. Its
// fingerprint (SHA-256 of the key's SubjectPublicKeyInfo, DER) is shown so an
// officer can compare it with the one the city administration gives.

import * as store from "./store.js";

export const ROOT_KEY_URL = "/verifier/root-key.pem";
const PEM = /-----BEGIN PUBLIC KEY-----([A-Za-z0-9+/=\s]+)-----END PUBLIC KEY-----/;

/** The DER bytes of a PEM public key, or throws. */
export function pemToDer(pem) {
  const match = PEM.exec(pem);
  if (!match) {
    throw new Error("not a PEM public key");
  }
  const binary = atob(match[1].replace(/\s+/g, ""));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/** SHA-256 of the DER, as upper-case hex in groups of four: "3F2A 9C01 …". */
export async function fingerprint(der) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", der));
  const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("").toUpperCase();
  return hex.match(/.{4}/g).join(" ");
}

/**
 * The pinned root key {pem, fingerprint, pinnedAt}; on the very first run, fetched
 * and pinned. Undefined when it was never pinned and the network is off, or what
 * came is no usable key (a hotel's sign-in page, say): that is never pinned.
 * `usable(pem)` resolves when the verifier can use the key and rejects when not.
 */
export async function pinnedRootKey({ now = new Date(), usable = async () => {} } = {}) {
  const held = await store.rootKey();
  if (held) {
    return held;
  }
  let pem;
  try {
    const response = await fetch(ROOT_KEY_URL, { cache: "no-store", credentials: "omit" });
    if (!response.ok) {
      return undefined;
    }
    pem = await response.text();
  } catch {
    return undefined; // offline before the first visit: nothing to pin yet
  }
  let der;
  try {
    der = pemToDer(pem);
    await usable(pem);
  } catch {
    return undefined;
  }
  const pinned = { pem, fingerprint: await fingerprint(der), pinnedAt: now.toISOString() };
  await store.pinRootKey(pinned);
  return pinned;
}
