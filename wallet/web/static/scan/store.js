// What the scanner keeps on the device, in IndexedDB: the pinned root key, the last
// verified trust bundle, the highest bundle version ever seen (rollback guard) and
// the local scan log. Nothing here is ever sent anywhere.

const DB_NAME = "wallet-scanner";
const DB_VERSION = 1;
const STATE = "state"; // key -> value
const LOG = "log"; // auto-numbered scan log entries
export const LOG_LIMIT = 200; // the oldest entries go first

let opened = null;

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function open() {
  if (!opened) {
    opened = new Promise((resolve, reject) => {
      const req = indexedDB.open(DB_NAME, DB_VERSION);
      req.onupgradeneeded = () => {
        const db = req.result;
        if (!db.objectStoreNames.contains(STATE)) {
          db.createObjectStore(STATE);
        }
        if (!db.objectStoreNames.contains(LOG)) {
          db.createObjectStore(LOG, { autoIncrement: true });
        }
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  return opened;
}

async function store(name, mode) {
  const db = await open();
  return db.transaction(name, mode).objectStore(name);
}

export async function get(key) {
  return request((await store(STATE, "readonly")).get(key));
}

export async function put(key, value) {
  await request((await store(STATE, "readwrite")).put(value, key));
}

/** The pinned root key: {pem, fingerprint, pinnedAt}, or undefined before the first visit. */
export const rootKey = () => get("rootKey");
export const pinRootKey = (value) => put("rootKey", value);

/** The last verified bundle: {jws, version, syncedAt}, or undefined. */
export const bundle = () => get("bundle");

/** Keep a verified bundle and raise the highest version seen (never lower it). */
export async function keepBundle({ jws, version, syncedAt }) {
  const highest = (await highestVersion()) ?? 0;
  await put("bundle", { jws, version, syncedAt });
  await put("highestVersion", Math.max(highest, version));
}

export const highestVersion = () => get("highestVersion");

/** A successful sync that brought nothing new still says how current the data is. */
export async function touchBundle(syncedAt) {
  const held = await bundle();
  if (held) {
    await put("bundle", { ...held, syncedAt });
  }
}

/**
 * The last verified plate index of this device's zones, with its key:
 * {token, key (base64url), version, zones, syncedAt}, or undefined. The key opens
 * only this index; both go when the device learns it was revoked.
 */
export const plateIndex = () => get("plateIndex");

export async function keepPlateIndex(held) {
  const highest = (await get("plateIndexVersion")) ?? 0;
  await put("plateIndex", held);
  await put("plateIndexVersion", Math.max(highest, held.version));
}

export const highestPlateIndexVersion = () => get("plateIndexVersion");

export async function touchPlateIndex(syncedAt) {
  const held = await plateIndex();
  if (held) {
    await put("plateIndex", { ...held, syncedAt });
  }
}

export async function dropPlateIndex() {
  await request((await store(STATE, "readwrite")).delete("plateIndex"));
}

/** The officer's last zone, offered again next time. */
export const lastZone = () => get("lastZone");
export const setLastZone = (zone) => put("lastZone", zone);

/** Whether the officer chose to keep serial numbers in the log (off unless chosen). */
export const logSerials = async () => Boolean(await get("logSerials"));
export const setLogSerials = (on) => put("logSerials", Boolean(on));

/**
 * Add {at, passType, state, tone} to the log, and the serial only if the officer opted
 * in. A plate check is logged as {kind: "plate", at, state: verdict, tone}: never the plate.
 */
export async function addLog(entry) {
  const row = { at: entry.at, passType: entry.passType, state: entry.state, tone: entry.tone };
  if (entry.kind === "plate") {
    row.kind = "plate";
  }
  if (entry.serial && (await logSerials())) {
    row.serial = entry.serial;
  }
  const log = await store(LOG, "readwrite");
  await request(log.add(row));
  const keys = await request(log.getAllKeys());
  for (const key of keys.slice(0, Math.max(0, keys.length - LOG_LIMIT))) {
    await request(log.delete(key));
  }
}

/** The log, newest first. */
export async function listLog() {
  const entries = await request((await store(LOG, "readonly")).getAll());
  return entries.reverse();
}

export async function clearLog() {
  await request((await store(LOG, "readwrite")).clear());
}
