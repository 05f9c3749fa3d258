// Keeping the trust bundle current: fetched whenever the device is online (on
// start, when the app comes back to the front, every few minutes), verified against
// the pinned root key before anything is kept, and never replaced by an older one.

import { bundleRequest } from "./pairing.js";
import * as store from "./store.js";

export { PUBLIC_BUNDLE_URL as BUNDLE_URL } from "./pairing.js";
export const SYNC_EVERY_MS = 3 * 60 * 1000;

/**
 * One outcome per sync, for the screen:
 *   {kind: "updated" | "current", version}
 *   {kind: "offline"}                      no answer from the service
 *   {kind: "refused", code}                a bundle came but failed verification
 *   {kind: "revoked"}                      this device was revoked in the console
 */
export class Sync {
  constructor({ verifyBundle, rootKey, clock = () => new Date(), onBundle, onOutcome }) {
    this.verifyBundle = verifyBundle;
    this.rootKey = rootKey;
    this.clock = clock;
    this.onBundle = onBundle; // async (bundle, held), awaited, for every newly verified bundle
    this.onOutcome = onOutcome; // async (outcome, held), awaited, after every attempt
    this.running = null;
    this.timer = null;
  }

  start() {
    globalThis.addEventListener?.("focus", () => this.now());
    globalThis.document?.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") {
        this.now();
      }
    });
    globalThis.addEventListener?.("online", () => this.now());
    this.timer = setInterval(() => this.now(), SYNC_EVERY_MS);
    return this.now();
  }

  /** Sync now, unless a sync is already under way (then wait for that one). */
  now() {
    if (!this.running) {
      this.running = this.attempt().finally(() => {
        this.running = null;
      });
    }
    return this.running;
  }

  async attempt() {
    const outcome = await this.fetchAndVerify();
    await this.onOutcome?.(outcome, await store.bundle());
    return outcome;
  }

  async fetchAndVerify() {
    let jws;
    try {
      // no-cache: always asked, but an unchanged bundle comes back as a small 304
      const { url, headers } = await bundleRequest();
      const response = await fetch(url, { cache: "no-cache", credentials: "omit", headers });
      if (response.status === 401 && (await errorCode(response)) === "device_revoked") {
        return { kind: "revoked" };
      }
      if (!response.ok) {
        return { kind: "offline", status: response.status };
      }
      jws = (await response.text()).trim();
    } catch {
      return { kind: "offline" };
    }
    const now = this.clock();
    const held = await store.bundle();
    if (held && held.jws === jws) {
      await store.touchBundle(now.toISOString());
      return { kind: "current", version: held.version };
    }
    let bundle;
    try {
      bundle = await this.verifyBundle(jws, this.rootKey, {
        now,
        highestVersion: (await store.highestVersion()) ?? undefined,
      });
    } catch (error) {
      return { kind: "refused", code: error?.code ?? "bundle_invalid" };
    }
    await store.keepBundle({ jws, version: bundle.version, syncedAt: now.toISOString() });
    // awaited: "synced" must mean the new verifier is in place, not on its way
    await this.onBundle?.(bundle, await store.bundle());
    return { kind: "updated", version: bundle.version };
  }
}

async function errorCode(response) {
  try {
    return (await response.json())?.error?.code ?? null;
  } catch {
    return null;
  }
}
