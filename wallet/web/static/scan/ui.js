// What the officer sees: the words of the page in the chosen language, how old the
// checking data is, the full-screen verdict and the local scan log.

import { HEADLINES, PLATE_HEADLINES, language, pick, t } from "./strings.js";

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

/** A pass's verdict over the whole screen. */
export function showVerdict(result, passTypes) {
  const passType = passTypes?.[result.claims?.pass_type];
  paint({
    tone: result.tone,
    title: pick(HEADLINES[result.state]) || t("unknownVerdict"),
    type: passTypeLabel(result, passTypes),
    fields: fields(result, passType),
    message: pick(result.message),
    // Whether to accept is said when the status went unchecked (the pass type's policy
    // speaks) and when this device has no data to judge with (then: no).
    admit: ["stale_status", "status_unchecked", "no_data"].includes(result.state)
      ? t(result.admit ? "admitYes" : "admitNo")
      : null,
    reason: t("reason", { code: result.reason }),
  });
}

const PLATE_TONES = { valid: "green", ambiguous: "amber", no_data: "amber" };

function day(iso) {
  const moment = new Date(iso);
  return Number.isNaN(moment.getTime()) ? null : moment.toLocaleDateString(language() === "de" ? "de-DE" : "en-GB");
}

function plateMessage(found, zone, readings) {
  const zones = (found.zones ?? []).join(", ");
  switch (found.verdict) {
    case "valid":
      return t("plateValidHere", { zone });
    case "wrong_zone":
      return t("plateOtherZones", { zones, zone });
    case "suspended":
      return t("plateSuspended");
    case "expired":
      return t("plateExpired");
    case "not_yet_valid":
      return t("plateNotYetValid");
    case "unknown":
      // From a zone-limited index "no permit" means: none in this device's zones.
      return found.deviceZones?.length
        ? t("plateUnknownHere", { zones: found.deviceZones.join(", ") })
        : t("plateUnknown");
    case "ambiguous":
      return t("plateAmbiguous", { plates: readings.join(t("plateOr")) });
    default:
      return t("plateNoData");
  }
}

/** A plate check's verdict over the whole screen: the plate, zone(s) and end, nothing else. */
export function showPlateVerdict(found, { zone, readings }) {
  const shown = [];
  if (found.plate) {
    shown.push([t("plateLabelShort"), found.plate]);
  }
  if (found.zones?.length) {
    shown.push([t("plateZonesLabel"), found.zones.join(", ")]);
  }
  if (found.valid_until && day(found.valid_until)) {
    shown.push([t("validUntil"), day(found.valid_until)]);
  }
  const how = found.how ? ` ${t("plateChecked", { how: t(found.how === "online" ? "plateOnline" : "plateOffline") })}` : "";
  paint({
    tone: PLATE_TONES[found.verdict] ?? "red",
    title: pick(PLATE_HEADLINES[found.verdict]) || t("unknownVerdict"),
    type: t("plateTitle"),
    fields: shown,
    message: plateMessage(found, zone, readings) + how,
    admit: null,
    reason: t("reason", { code: found.verdict }),
  });
}

/**
 * The verdict over the whole screen; the scanning view is hidden meanwhile so
 * nothing behind it is read out or reached by Tab.
 */
function paint({ tone, title, type, fields: rows, message, admit, reason }) {
  const shade = TONES.includes(tone) ? tone : "red";
  const verdict = $("verdict");
  verdict.classList.remove(...TONES.map((name) => `verdict--${name}`));
  verdict.classList.add(`verdict--${shade}`);
  $("verdict-symbol").textContent = SYMBOLS[shade];
  $("verdict-title").textContent = title;
  $("verdict-type").textContent = type;
  const list = $("verdict-fields");
  list.replaceChildren();
  for (const [label, value] of rows) {
    const row = document.createElement("div");
    const term = document.createElement("dt");
    const detail = document.createElement("dd");
    term.textContent = label;
    detail.textContent = value;
    row.append(term, detail);
    list.append(row);
  }
  $("verdict-message").textContent = message;
  const admitLine = $("verdict-admit");
  admitLine.hidden = admit === null;
  admitLine.textContent = admit ?? "";
  $("verdict-reason").textContent = reason;
  $("bar").hidden = true;
  $("scan-view").hidden = true;
  verdict.hidden = false;
  $("verdict-title").focus();
}

/** What a typed plate reads as, live, so the officer sees it was understood. */
export function showPlateReading(text, readings) {
  const line = $("plate-reading");
  if (!text.trim()) {
    line.textContent = "";
  } else if (readings.length) {
    line.textContent = t("plateReads", { plates: readings.join(t("plateOr")) });
  } else {
    line.textContent = t("plateNotYet");
  }
}

/** A field's error under its label (or none), tied to the field for screen readers. */
export function showFieldError(fieldId, errorId, key) {
  const field = $(fieldId);
  const error = $(errorId);
  error.textContent = key ? t(key) : "";
  error.hidden = !key;
  const described = (field.getAttribute("aria-describedby") ?? "").split(" ").filter((id) => id && id !== errorId);
  if (key) {
    described.unshift(errorId);
    field.setAttribute("aria-invalid", "true");
  } else {
    field.removeAttribute("aria-invalid");
  }
  if (described.length) {
    field.setAttribute("aria-describedby", described.join(" "));
  } else {
    field.removeAttribute("aria-describedby");
  }
}

/** How current the plate data is, under "Kennzeichen prüfen". */
export function showPlateStand(status, now = new Date()) {
  const line = $("plate-stand");
  line.classList.toggle("problem", status.state === "stale");
  if (status.state === "none") {
    line.textContent = t("plateNever");
  } else if (status.state === "stale") {
    line.textContent = t("plateStale", { when: when(new Date(status.syncedAt), now) });
  } else {
    const zones = status.deviceZones.length ? status.deviceZones.join(", ") : t("plateAllZones");
    line.textContent = t("plateStand", { when: when(new Date(status.syncedAt), now), count: status.count, zones });
  }
}

/** The zones offered in the zone field. */
export function offerZones(zones) {
  const list = $("plate-zones");
  list.replaceChildren(
    ...zones.map((zone) => {
      const option = document.createElement("option");
      option.value = zone;
      return option;
    }),
  );
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
    const plate = entry.kind === "plate";
    type.textContent = plate
      ? t("plateTitle")
      : entry.passType
        ? pick(passTypes?.[entry.passType]?.label) || entry.passType
        : "–";
    const result = document.createElement("strong");
    result.className = "log__verdict";
    result.textContent = pick((plate ? PLATE_HEADLINES : HEADLINES)[entry.state]) || t("unknownVerdict");
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
