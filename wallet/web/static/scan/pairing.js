// Pairing this phone with the service, once: the console shows a QR of
// /scan/#pair=wpp_…; opening it (or scanning it in the app) sends the one-time code
// to /device/v1/pair and keeps the device credential it answers with. From then on
// the bundle is fetched with that credential, so staff see the device's last sync,
// and a device revoked in the console is told so.

import * as store from "./store.js";

export const PAIR_URL = "/device/v1/pair";
export const DEVICE_BUNDLE_URL = "/device/v1/bundle";
export const PUBLIC_BUNDLE_URL = "/verifier/bundle";
const CODE_RE = /(?:^|[#&/])pair=(wpp_[A-Za-z0-9_-]{8,200})$/;

/** The pairing code in a URL fragment or a scanned pairing link, else null. */
export function pairingCode(text) {
  const found = CODE_RE.exec(String(text).trim());
  return found ? found[1] : null;
}

/** The paired device {id, name, credential, pairedAt}, or undefined. */
export const device = () => store.get("device");

/**
 * Send the code once: {kind: "paired", name} | {kind: "refused"} (unknown, used or
 * expired) | {kind: "offline"}.
 */
export async function pair(code, { now = new Date() } = {}) {
  let response;
  try {
    response = await fetch(PAIR_URL, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code }),
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    return { kind: "offline" };
  }
  if (response.status !== 201) {
    return { kind: response.status >= 500 ? "offline" : "refused" };
  }
  const answer = await response.json();
  await store.put("device", {
    id: answer.device.device_id,
    name: answer.device.name,
    credential: answer.credential,
    pairedAt: now.toISOString(),
  });
  return { kind: "paired", name: answer.device.name };
}

/** Where and how to fetch the bundle: with the credential once paired. */
export async function bundleRequest() {
  const held = await device();
  if (!held) {
    return { url: PUBLIC_BUNDLE_URL, headers: {} };
  }
  return { url: DEVICE_BUNDLE_URL, headers: { Authorization: `Bearer ${held.credential}` } };
}
