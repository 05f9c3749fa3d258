// "Kennzeichen prüfen": a parked car checked by its plate. Offline with the signed
// plate index of this device's zones and its key (fetched with the bundle, kept in
// IndexedDB, verified against the pinned root before it is kept and again before
// each use); online with the service when this device holds no fresh index. The
// verdict rule is the verifier's (verifier/plateindex.js, the twin of
// wallet.plateindex): this file fetches, keeps and asks, and never judges.

import { b64urlDecode } from "./verifier/codec.js";
import { device } from "./pairing.js";
import * as store from "./store.js";

export const INDEX_URL = "/device/v1/plates/index";
export const CHECK_URL = "/device/v1/plates/check";

const millis = (moment) => (moment instanceof Date ? moment.getTime() : Number(moment) * 1000);

/** How the zone is compared everywhere (wallet.domain.zone_name): " 12 " is 12, "a" is A. */
export const zoneName = (text) => String(text ?? "").trim().split(/\s+/).join(" ").toUpperCase();

export class Plates {
  /** `verifier` is the loaded ./verifier/index.js; `rootKey` the pinned PEM. */
  constructor({ verifier, rootKey, clock = () => new Date() }) {
    this.verifier = verifier;
    this.rootKey = rootKey;
    this.clock = clock;
    this.index = null; // the verified index in use
    this.key = null; // its HMAC key (bytes)
    this.held = null; // what the store holds, even when it is too old to use
  }

  /** Take up the held index, if it is still good; a stale one stays known for the message. */
  async load() {
    this.held = (await store.plateIndex()) ?? null;
    this.index = this.key = null;
    if (!this.held) {
      return;
    }
    try {
      this.index = await this.verifier.verifyIndex(this.held.token, this.rootKey, { now: this.clock() });
      this.key = b64urlDecode(this.held.key, "plate index key");
    } catch {
      this.index = this.key = null; // expired or damaged: plates are checked online until a sync
    }
  }

  /** Fetch the index of this device's zones: {kind: "updated" | "current" | "offline" | "refused" | "revoked" | "unpaired"}. */
  async sync() {
    const paired = await device();
    if (!paired) {
      return { kind: "unpaired" };
    }
    let body;
    try {
      const headers = { Authorization: `Bearer ${paired.credential}` };
      if (this.held && this.index) {
        headers["If-None-Match"] = `"plate-index-${this.held.version}"`; // unchanged: a bare 304
      }
      const response = await fetch(INDEX_URL, { cache: "no-store", credentials: "omit", headers });
      if (response.status === 304 && this.held && this.index) {
        return this.touch();
      }
      if (response.status === 401) {
        await this.forget(); // a revoked or unknown device keeps no plate data
        return { kind: "revoked" };
      }
      if (!response.ok) {
        return { kind: "offline" };
      }
      body = await response.json();
    } catch {
      return { kind: "offline" };
    }
    const now = this.clock();
    if (this.held && this.held.token === body.index) {
      return this.touch();
    }
    let index;
    try {
      index = await this.verifier.verifyIndex(body.index, this.rootKey, {
        now,
        highestVersion: (await store.highestPlateIndexVersion()) ?? undefined,
      });
    } catch (error) {
      return { kind: "refused", code: error?.code ?? "bundle_invalid" };
    }
    const held = {
      token: body.index,
      key: body.key,
      version: index.version,
      zones: Array.isArray(body.zones) ? body.zones.map(String) : [],
      syncedAt: now.toISOString(),
    };
    await store.keepPlateIndex(held);
    this.held = held;
    this.index = index;
    this.key = b64urlDecode(body.key, "plate index key");
    return { kind: "updated" };
  }

  /** The held index is the current one: only its time of sync moves on. */
  async touch() {
    const syncedAt = this.clock().toISOString();
    await store.touchPlateIndex(syncedAt);
    this.held = { ...this.held, syncedAt };
    return { kind: "current" };
  }

  async forget() {
    await store.dropPlateIndex();
    this.held = this.index = this.key = null;
  }

  /** Is the index in use still within its own freshness limit? */
  fresh() {
    return Boolean(this.index) && this.clock().getTime() < millis(this.index.expiresAt);
  }

  /** What the screen says about the plate data: {state: "none" | "fresh" | "stale", …}. */
  status() {
    if (!this.held) {
      return { state: "none" };
    }
    const base = { syncedAt: this.held.syncedAt, deviceZones: this.held.zones ?? [] };
    if (!this.fresh()) {
      return { state: "stale", ...base };
    }
    return { state: "fresh", ...base, count: this.index.length, zones: [...this.index.zones] };
  }

  /** The device's zones (for the zone field's suggestions). */
  zones() {
    return this.held?.zones?.length ? this.held.zones : [...(this.index?.zones ?? [])];
  }

  /**
   * The verdict for `text` parked in `zone`: PlateCheck.to_json() plus `how`
   * ("offline" | "online"), or {verdict: "no_data"} when neither can answer.
   */
  async check(text, zone) {
    if (this.fresh() && this.covers(zone)) {
      const found = await this.index.check(this.key, text, zone, { now: this.clock() });
      return { ...found, how: "offline", deviceZones: this.held.zones ?? [] };
    }
    return this.checkOnline(text, zone);
  }

  /**
   * Whether the index answers for `zone`: a device paired for zones 12 and 13 holds
   * only their permits, so a car in zone 40 is asked online (offline it would look
   * like a car without a permit).
   */
  covers(zone) {
    const zones = this.held?.zones ?? [];
    return zones.length === 0 || zones.includes(zoneName(zone));
  }

  async checkOnline(text, zone) {
    const paired = await device();
    if (!paired) {
      return { verdict: "no_data" };
    }
    try {
      const response = await fetch(CHECK_URL, {
        method: "POST",
        cache: "no-store",
        credentials: "omit",
        headers: { Authorization: `Bearer ${paired.credential}`, "Content-Type": "application/json" },
        body: JSON.stringify({ plate: text, zone }),
      });
      if (!response.ok) {
        return { verdict: "no_data" };
      }
      return { ...(await response.json()), how: "online" };
    } catch {
      return { verdict: "no_data" };
    }
  }
}
