// The scanner: wires the pinned key, the bundle sync, the camera, the keyboard and
// the verdict together. The verifier itself (./verifier/) is the twin of
// wallet.verifier and is used as it is: this file never judges a pass.

import { Camera, makeDecoder } from "./camera.js";
import { device, pair, pairingCode } from "./pairing.js";
import { signal, unlockSound } from "./feedback.js";
import * as store from "./store.js";
import { chooseLanguage, language, switchLanguage, t, textIn } from "./strings.js";
import { Sync } from "./sync.js";
import { pinnedRootKey } from "./trust.js";
import { Plates, zoneName } from "./platemode.js";
import * as ui from "./ui.js";

const $ = (id) => document.getElementById(id);
// A hand scanner types a whole code in a burst; a pause this long starts a new one. Generous:
// a busy phone (or test machine) delivers keys late, and a stray burst only gives "UNGÜLTIG".
const WEDGE_GAP_MS = 500;
const WEDGE_MIN_LENGTH = 20; // shorter bursts are a person typing, not a scanner
const MAX_TEXT = 16384; // as the console: a pass text is far shorter
const RECHECK_BUNDLE_MS = 60 * 1000; // the held bundle's expiry is looked at again this often
const FIRST_SYNC_WAIT_MS = 5000; // a first sync online takes well under a second; offline, fetch may hang
export const REPEAT_PAUSE = { ms: 2000 }; // the same code again right after "Scan next" is ignored this long

const state = {
  verifierModule: null, // ./verifier/index.js, once loaded
  rootKey: null, // {pem, fingerprint}
  verifier: null, // a Verifier for the held bundle
  passTypes: {},
  syncedAt: null,
  problem: null, // what is wrong with the data: {key, why?} of strings.js, or null
  camera: null,
  lastText: null,
  lastShownAt: 0,
  bundleCheckedAt: 0, // clock time (ms) of the last check of the held bundle
  updated: false, // a new version of the app took over: reload before the next scan
  plates: null, // the plate mode (./platemode.js), once the verifier and root key are there
  lastMode: "scan", // "plate" after a plate check: "Weiter" goes back to the plate field
};

/** Frame-to-verdict times in ms (camera frame taken -> verdict painted), newest last. */
export const timings = [];

const clock = () => new Date();

function passTypesOf(bundle) {
  return bundle?.pass_types ?? bundle?.passTypes ?? {};
}

async function useBundle(jws, { now }) {
  // A stored bundle is checked again before use: the device may hold it past its expiry.
  const bundle = await state.verifierModule.verifyBundle(jws, state.rootKey.pem, {
    now,
    highestVersion: (await store.highestVersion()) ?? undefined,
  });
  state.verifier = await state.verifierModule.Verifier.create(bundle);
  state.passTypes = passTypesOf(bundle);
  state.bundleCheckedAt = clock().getTime();
}

/**
 * A phone may stay open and offline for days: the held bundle passes its expiry
 * while in use. Verified again now and then, an expired one stops being used.
 */
async function stillTrusted() {
  // The wall clock, not a timer: a phone's clock can jump (and tests move it).
  if (!state.verifier || Math.abs(clock().getTime() - state.bundleCheckedAt) < RECHECK_BUNDLE_MS) {
    return;
  }
  const held = await store.bundle();
  try {
    await state.verifierModule.verifyBundle(held.jws, state.rootKey.pem, { now: clock() });
    state.bundleCheckedAt = clock().getTime();
  } catch (error) {
    state.verifier = null;
    state.problem = unusable(error);
    showData();
  }
}

async function loadHeldBundle() {
  const held = await store.bundle();
  if (!held) {
    state.problem = null;
    return;
  }
  state.syncedAt = held.syncedAt;
  try {
    await useBundle(held.jws, { now: clock() });
  } catch (error) {
    state.verifier = null;
    state.problem = unusable(error);
  }
}

function unusable(error) {
  return { key: error?.code === "bundle_expired" ? "dataExpired" : "noData" };
}

/** A problem in words, in `lang` (the screen's language unless asked). */
function say(problem, lang = language()) {
  if (!problem) {
    return null;
  }
  const values = problem.why ? { why: textIn(lang, problem.why) } : {};
  return textIn(lang, problem.key, values);
}

function refusal(code) {
  const why = {
    bundle_rollback: "bundleRollback",
    bundle_expired: "bundleExpired",
    bundle_invalid: "bundleForeign",
  }[code];
  return { key: "bundleRefused", why: why ?? "bundleBroken" };
}

function showData() {
  ui.showData({ syncedAt: state.syncedAt, problem: say(state.problem), now: clock() });
}

/** The plate index is fetched with the bundle; a revoked device's plate data goes. */
async function syncPlates(outcome) {
  if (!state.plates) {
    return;
  }
  if (outcome.kind === "updated" || outcome.kind === "current") {
    await state.plates.sync();
  } else if (outcome.kind === "revoked") {
    await state.plates.forget();
  }
  showPlates();
}

function showPlates() {
  if (state.plates) {
    ui.showPlateStand(state.plates.status(), clock());
    ui.offerZones(state.plates.zones());
  }
}

async function onSyncOutcome(outcome, held) {
  await syncPlates(outcome);
  if (outcome.kind === "updated" || outcome.kind === "current") {
    state.syncedAt = held?.syncedAt ?? state.syncedAt;
    state.problem = null;
    if (!state.verifier && held) {
      await loadHeldBundle();
    }
  } else if (outcome.kind === "refused") {
    state.problem = refusal(outcome.code);
  } else if (outcome.kind === "revoked") {
    state.problem = { key: "deviceRevoked" };
  } else {
    // without usable data, the reason it is unusable (expired, …) says more than "offline"
    state.problem = state.verifier ? { key: "offline" } : state.problem || { key: "noData" };
  }
  showData();
}

async function onNewBundle(bundle) {
  try {
    state.verifier = await state.verifierModule.Verifier.create(bundle);
  } catch {
    state.verifier = null; // the verifier refuses what it was given: judge nothing with it
    state.problem = { key: "noData" };
    return;
  }
  state.passTypes = passTypesOf(bundle);
  state.bundleCheckedAt = clock().getTime();
}

function noVerdictReason() {
  if (!state.verifierModule) {
    return { key: "verifierMissing" };
  }
  if (!state.rootKey) {
    return { key: "rootMissing" };
  }
  return state.problem && state.problem.key !== "offline" ? state.problem : { key: "noData" };
}

/** Pair this device with the code of a console's pairing QR, and say how it went. */
async function pairWith(code) {
  ui.showDevice(t("pairing"));
  const outcome = await pair(code, { now: clock() });
  if (outcome.kind === "paired") {
    ui.announcePairing(t("pairDone", { name: outcome.name }));
    await state.sync?.now();
  } else {
    ui.announcePairing(t(outcome.kind === "offline" ? "pairOffline" : "pairRefused"));
  }
  await showDevice();
}

async function showDevice() {
  const held = await device();
  ui.showDevice(held ? t("devicePaired", { name: held.name }) : t("deviceNotPaired"));
}

/**
 * The first start: the camera may read a pass while the first sync is still on its way.
 * Waiting a moment for it gives a verdict instead of "no data"; offline, not for long.
 */
async function firstSyncIfUnderWay() {
  if (!state.verifier && state.sync?.running) {
    await Promise.race([state.sync.running, new Promise((done) => setTimeout(done, FIRST_SYNC_WAIT_MS))]);
  }
}

/** Check one QR text (camera, hand scanner or typed) and show the verdict. */
export async function check(text, { frameAt = performance.now() } = {}) {
  const clean = String(text).replace(/\s+/g, "").slice(0, MAX_TEXT + 1);
  if (!clean) {
    return null;
  }
  const code = pairingCode(clean);
  if (code) {
    await pairWith(code); // the console's pairing QR, scanned in the app: no verdict
    return null;
  }
  state.camera?.pause();
  await firstSyncIfUnderWay();
  await stillTrusted();
  let result;
  if (!state.verifier) {
    // Not a verdict of the verifier: this device has nothing to judge with.
    const why = noVerdictReason();
    result = {
      state: "no_data",
      reason: "no_bundle",
      admit: false,
      tone: "amber",
      message: { de: say(why, "de"), en: say(why, "en") },
      claims: {},
    };
  } else {
    result = await state.verifier.check(clean, { now: clock() });
  }
  state.lastText = clean;
  ui.showVerdict(result, state.passTypes);
  signal(result.tone);
  requestAnimationFrame(() => {
    timings.push(performance.now() - frameAt);
    if (timings.length > 1000) {
      timings.shift();
    }
  });
  await store.addLog({
    at: clock().toISOString(),
    passType: result.claims?.pass_type ?? null,
    state: result.state,
    tone: result.tone,
    serial: result.claims?.serial ?? null, // kept only if the officer opted in (store.js)
  });
  await renderLog();
  return result;
}

/** The plates `text` can stand for ("D-AB 1234", "NL 12ABC3"), as the verifier reads them. */
function plateReadings(text) {
  return state.verifierModule?.lookupForms?.(text) ?? [];
}

/** Check a typed plate in the zone given and show the verdict; a bad field says why. */
export async function checkPlate(text, zoneText) {
  const readings = plateReadings(text);
  const zone = zoneName(zoneText);
  ui.showFieldError("plate-text", "plate-error", readings.length ? null : "plateInvalid");
  ui.showFieldError("plate-zone", "plate-zone-error", zone ? null : "plateZoneMissing");
  if (!readings.length) {
    $("plate-text").focus();
    return null;
  }
  if (!zone) {
    $("plate-zone").focus();
    return null;
  }
  await store.setLastZone(zone);
  const found = state.plates ? await state.plates.check(text, zone) : { verdict: "no_data" };
  state.lastMode = "plate";
  ui.showPlateVerdict(found, { zone, readings });
  const tone = found.verdict === "valid" ? "green" : ["ambiguous", "no_data"].includes(found.verdict) ? "amber" : "red";
  signal(tone);
  await store.addLog({ kind: "plate", at: clock().toISOString(), passType: null, state: found.verdict, tone });
  await renderLog();
  showPlates();
  return found;
}

function backToScanning() {
  if (state.updated) {
    location.reload(); // a new version of the app arrived meanwhile
    return;
  }
  ui.hideVerdict();
  showData(); // "heute" may have become "gestern" meanwhile
  state.lastShownAt = performance.now();
  state.camera?.resume();
  if (state.lastMode === "plate") {
    // The next car: the plate field again, empty, the zone kept.
    state.lastMode = "scan";
    $("plate-text").value = "";
    ui.showPlateReading("", []);
    $("plate-text").focus();
    return;
  }
  // Back where scanning happens, its state read out; no field, so no phone keyboard pops up
  // and a hand scanner's keys reach the page.
  $("camera-state").focus();
}

function onCameraText(text, frameAt) {
  if (ui.verdictShown()) {
    return;
  }
  const clean = String(text).replace(/\s+/g, "");
  if (clean === state.lastText && performance.now() - state.lastShownAt < REPEAT_PAUSE.ms) {
    return; // the officer tapped back while the same pass is still in view
  }
  check(clean, { frameAt });
}

async function startCamera() {
  if (state.camera) {
    return;
  }
  if (!navigator.mediaDevices?.getUserMedia) {
    ui.showCameraState("cameraMissing");
    return;
  }
  ui.showCameraState("cameraStarting");
  let decoder;
  try {
    decoder = await makeDecoder();
  } catch {
    ui.showCameraState("decoderFailed");
    return;
  }
  const camera = new Camera($("video"), { decoder, onText: onCameraText });
  try {
    await camera.start();
  } catch (error) {
    camera.stop();
    ui.showCameraState(error?.name === "NotAllowedError" ? "cameraDenied" : "cameraMissing");
    return;
  }
  state.camera = camera;
  $("camera-start").hidden = true;
  ui.showCameraState("cameraScanning");
  ui.showTorch(camera.hasTorch, false);
}

async function renderLog() {
  ui.renderLog(await store.listLog(), state.passTypes);
}

/** A hand scanner types the code and Enter, fast, wherever the focus is not a field. */
function listenForWedge() {
  let buffer = "";
  let lastKey = 0;
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement) {
      return; // typing into a field: the form handles Enter
    }
    const at = performance.now();
    if (at - lastKey > WEDGE_GAP_MS) {
      buffer = "";
    }
    lastKey = at;
    if (event.key === "Enter" && buffer.length >= WEDGE_MIN_LENGTH) {
      event.preventDefault();
      if (ui.verdictShown()) {
        ui.hideVerdict();
      }
      const text = buffer;
      buffer = "";
      check(text);
    } else if (event.key.length === 1) {
      buffer = (buffer + event.key).slice(-MAX_TEXT);
    }
  });
}

function wire() {
  $("lang-switch").addEventListener("click", () => {
    switchLanguage();
    ui.applyLanguage();
    showData();
    showPlates();
    showDevice();
    renderLog();
    ui.showTorch(Boolean(state.camera?.hasTorch), Boolean(state.camera?.torchOn));
  });
  $("camera-start").addEventListener("click", startCamera);
  // Browsers let a page make sound only after the person touched it.
  document.addEventListener("pointerdown", unlockSound);
  document.addEventListener("keydown", unlockSound);
  $("torch").addEventListener("click", async () => {
    try {
      ui.showTorch(true, await state.camera.toggleTorch());
    } catch {
      ui.showTorch(false, false);
    }
  });
  $("sync-now").addEventListener("click", () => state.sync?.now());
  $("manual-form").addEventListener("submit", (event) => {
    event.preventDefault();
    unlockSound();
    const input = $("manual-text");
    const text = input.value;
    input.value = "";
    check(text);
  });
  $("plate-form").addEventListener("submit", (event) => {
    event.preventDefault();
    unlockSound();
    checkPlate($("plate-text").value, $("plate-zone").value);
  });
  $("plate-text").addEventListener("input", (event) => {
    ui.showPlateReading(event.target.value, plateReadings(event.target.value));
  });
  $("verdict-back").addEventListener("click", backToScanning);
  $("verdict").addEventListener("click", (event) => {
    if (event.target === event.currentTarget || event.target.closest(".verdict__body")) {
      backToScanning(); // a tap anywhere on the verdict goes back
    }
  });
  $("log-serials").addEventListener("change", async (event) => {
    await store.setLogSerials(event.target.checked);
  });
  $("log-clear").addEventListener("click", async () => {
    await store.clearLog();
    await renderLog();
    ui.announceLog(t("logCleared"));
  });
  listenForWedge();
}

/**
 * The service worker keeps the app for offline use. A new version of the app takes
 * over at once; this page then reloads, between two scans, so its modules never mix
 * with the new version's.
 */
function registerWorker() {
  const workers = navigator.serviceWorker;
  if (!workers) {
    return;
  }
  // The first worker taking over this page is no update: the page is that version.
  let controlled = Boolean(workers.controller);
  workers.addEventListener("controllerchange", () => {
    state.updated ||= controlled;
    controlled = true;
  });
  // updateViaCache none: a new sw.js (a changed app) is seen on the next online start
  workers.register("/scan/sw.js", { scope: "/scan/", updateViaCache: "none" }).catch(() => {});
}

async function startCameraIfAllowed() {
  try {
    const permission = await navigator.permissions.query({ name: "camera" });
    if (permission.state === "granted") {
      await startCamera();
    }
  } catch {
    // no permissions API: the officer taps "Kamera starten"
  }
}

async function main() {
  chooseLanguage();
  ui.applyLanguage();
  wire();
  registerWorker();
  // A pairing link opened the app: the one-time code leaves the address bar (and the
  // history) at once, and is used after the app has what it needs to sync.
  const code = pairingCode(location.hash);
  if (location.hash) {
    history.replaceState(null, "", location.pathname + location.search);
  }
  await renderLog();
  await showDevice();
  $("log-serials").checked = await store.logSerials();
  try {
    state.verifierModule = await import("./verifier/index.js");
  } catch {
    state.problem = { key: "verifierMissing" };
  }
  state.rootKey = await pinnedRootKey({
    now: clock(),
    usable: async (pem) => {
      if (!state.verifierModule) {
        throw new Error("no verifier to judge the key with: pin it later");
      }
      await state.verifierModule.rootKeyFromPem(pem);
    },
  });
  ui.showFingerprint(state.rootKey?.fingerprint);
  if (state.verifierModule && !state.rootKey) {
    state.problem = { key: "rootMissing" };
  }
  if (state.verifierModule && state.rootKey) {
    state.plates = new Plates({ verifier: state.verifierModule, rootKey: state.rootKey.pem, clock });
    await state.plates.load();
    $("plate-zone").value = (await store.lastZone()) ?? state.plates.zones()[0] ?? "";
    showPlates();
    await loadHeldBundle();
    await renderLog();
    showData();
    state.sync = new Sync({
      verifyBundle: state.verifierModule.verifyBundle,
      rootKey: state.rootKey.pem,
      clock,
      onBundle: onNewBundle,
      onOutcome: async (outcome, held) => {
        await onSyncOutcome(outcome, held);
        await renderLog();
        document.body.dataset.synced = String(Number(document.body.dataset.synced || 0) + 1);
      },
    });
    state.sync.start();
  }
  showData();
  setInterval(() => {
    showData();
    showPlates(); // the plate data turns stale while the app stays open
  }, 60 * 1000);
  if (code) {
    await pairWith(code);
  }
  await startCameraIfAllowed();
  document.body.dataset.ready = "true";
}

main();
