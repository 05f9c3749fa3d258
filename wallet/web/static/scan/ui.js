// What the officer sees: the words of the page in the chosen language, how old the
// checking data is, the full-screen verdict and the local scan log.

import { HEADLINES, language, pick, t } from "./strings.js";

const $ = (id) => document.getElementById(id);
const SYMBOLS = { green: "✓", red: "✗", amber: "!" };
const TONES = ["green", "red", "amber"];

/** Put the current language's words into every element marked data-t. */
export function applyLanguage() {
  const lang = language();
  document.documentElement.lang = lang;
  for (const element of document.querySelectorAll("[data-t]")) {
    element.textContent = t(element.dataset.t);
  }
  const other = lang === "de" ? "en" : "de";
  const switcher = $("lang-switch");
  switcher.textContent = t("otherLanguage");
  switcher.lang = other;
}

function clockTime(moment) {
  return moment.toLocaleTimeString(language() === "de" ? "de-DE" : "en-GB", {
    hour: "2-digit",
    minute: "2-digit",
  });
}

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

/** "heute 07:42", "gestern 18:05", "02.12.2026 07:42": how people say it. */
export function when(moment, now = new Date()) {
  const yesterday = new Date(now);
  yesterday.setDate(now.getDate() - 1);
  if (sameDay(moment, now)) {
    return `${t("today")} ${clockTime(moment)}`;
  }
  if (sameDay(moment, yesterday)) {
    return `${t("yesterday")} ${clockTime(moment)}`;
  }
  const day = moment.toLocaleDateString(language() === "de" ? "de-DE" : "en-GB");
  return `${day} ${clockTime(moment)}`;
}

/** The age of the data under "Prüfdaten"; a problem, when there is one, below it. */
export function showData({ syncedAt, problem, now }) {
  $("stand").textContent = syncedAt ? t("stand", { when: when(new Date(syncedAt), now) }) : t("standNever");
  const box = $("data-problem");
  box.textContent = problem ?? "";
  box.hidden = !problem;
}

export function showCameraState(key) {
  const line = $("camera-state");
  line.dataset.t = key; // a language switch keeps what it says
  line.textContent = t(key);
}

export function showTorch(available, on) {
  const button = $("torch");
  button.hidden = !available;
  button.setAttribute("aria-pressed", String(Boolean(on)));
  button.dataset.t = on ? "torchOff" : "torchOn";
  button.textContent = t(button.dataset.t);
}

export function showDevice(text) {
  $("device").textContent = text;
}

/** Pairing's outcome, read out once and left on the screen. */
export function announcePairing(text) {
  const line = $("pairing-state");
  line.textContent = text;
  line.hidden = false;
}

export function showFingerprint(text) {
  $("fingerprint").textContent = text || "–";
}

/** The few fields the pass type shows offline, labelled from the bundle. */
function fields(result, passType) {
  const holder = result.claims?.holder ?? {};
  const shown = [];
  for (const field of passType?.fields ?? []) {
    if (holder[field.name] !== undefined) {
      shown.push([pick(field.label) || field.name, String(holder[field.name])]);
    }
  }
  if (result.claims?.expires_at) {
    const until = new Date(result.claims.expires_at);
    if (!Number.isNaN(until.getTime())) {
      shown.push([t("validUntil"), until.toLocaleDateString(language() === "de" ? "de-DE" : "en-GB")]);
    }
  }
  return shown;
}

export function passTypeLabel(result, passTypes) {
  const id = result.claims?.pass_type;
  if (!id) {
    return "";
  }
  return pick(passTypes?.[id]?.label) || t("unknownType");
}

/**
 * The verdict over the whole screen; the scanning view is hidden meanwhile so
 * nothing behind it is read out or reached by Tab.
 */
export function showVerdict(result, passTypes) {
  const tone = TONES.includes(result.tone) ? result.tone : "red";
  const verdict = $("verdict");
  verdict.classList.remove(...TONES.map((name) => `verdict--${name}`));
  verdict.classList.add(`verdict--${tone}`);
  $("verdict-symbol").textContent = SYMBOLS[tone];
  $("verdict-title").textContent = pick(HEADLINES[result.state]) || t("unknownVerdict");
  $("verdict-type").textContent = passTypeLabel(result, passTypes);
  const list = $("verdict-fields");
  list.replaceChildren();
  const passType = passTypes?.[result.claims?.pass_type];
  for (const [label, value] of fields(result, passType)) {
    const row = document.createElement("div");
    const term = document.createElement("dt");
    const detail = document.createElement("dd");
    term.textContent = label;
    detail.textContent = value;
    row.append(term, detail);
    list.append(row);
  }
  $("verdict-message").textContent = pick(result.message);
  const admit = $("verdict-admit");
  // Whether to accept is said when the status went unchecked (the pass type's policy
  // speaks) and when this device has no data to judge with (then: no).
  admit.hidden = !["stale_status", "status_unchecked", "no_data"].includes(result.state);
  admit.textContent = result.admit ? t("admitYes") : t("admitNo");
  $("verdict-reason").textContent = t("reason", { code: result.reason });
  $("bar").hidden = true;
  $("scan-view").hidden = true;
  verdict.hidden = false;
  $("verdict-title").focus();
}

export function verdictShown() {
  return !$("verdict").hidden;
}

export function hideVerdict() {
  $("verdict").hidden = true;
  $("bar").hidden = false;
  $("scan-view").hidden = false;
}

/** The log, newest first: one line per scan, "heute 07:42 · Bibliotheksausweis · GÜLTIG". */
export function renderLog(entries, passTypes) {
  const list = $("log-rows");
  list.replaceChildren();
  for (const entry of entries) {
    const item = document.createElement("li");
    item.className = `log__row log__row--${entry.tone}`;
    const moment = document.createElement("time");
    moment.dateTime = entry.at;
    moment.textContent = when(new Date(entry.at));
    const type = document.createElement("span");
    type.textContent = entry.passType ? pick(passTypes?.[entry.passType]?.label) || entry.passType : "–";
    const result = document.createElement("strong");
    result.className = "log__verdict";
    result.textContent = pick(HEADLINES[entry.state]) || t("unknownVerdict");
    item.append(moment, type, result);
    if (entry.serial) {
      const serial = document.createElement("span");
      serial.className = "mono log__serial";
      serial.textContent = entry.serial;
      item.append(serial);
    }
    list.append(item);
  }
  list.hidden = entries.length === 0;
  $("log-empty").hidden = entries.length > 0;
}

export function announceLog(text) {
  $("log-state").textContent = text;
}
