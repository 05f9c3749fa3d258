// The app's words, German first, English second. The language is chosen here, not
// by the server, because one cached page serves both with the network off; the
// order follows the console: an explicit choice (?lang= or the switch, remembered),
// then the browser's languages, then German.

const CHOICE = "scan.lang";
export const LANGUAGES = ["de", "en"];

export const STRINGS = {
  de: {
    title: "Ausweis-Scanner",
    otherLanguage: "English",
    camera: "Kamera",
    cameraStart: "Kamera starten",
    cameraOff: "Kamera aus. Tippen Sie auf „Kamera starten“.",
    cameraStarting: "Kamera wird gestartet …",
    cameraScanning: "Halten Sie den QR-Code des Ausweises vor die Kamera.",
    cameraDenied: "Kein Zugriff auf die Kamera. Erlauben Sie ihn in den Einstellungen oder geben Sie den Code unten ein.",
    cameraMissing: "Dieses Gerät hat keine nutzbare Kamera. Geben Sie den Code unten ein.",
    decoderFailed: "Der QR-Leser konnte nicht geladen werden. Geben Sie den Code unten ein.",
    torchOn: "Licht an",
    torchOff: "Licht aus",
    data: "Prüfdaten",
    syncNow: "Jetzt aktualisieren",
    standNever: "Noch keine Prüfdaten. Bitte einmal mit Netz öffnen.",
    stand: "Stand: {when}",
    today: "heute",
    yesterday: "gestern",
    syncing: "Prüfdaten werden aktualisiert …",
    offline: "Kein Netz: es gelten die gespeicherten Prüfdaten.",
    bundleRefused: "Neue Prüfdaten abgelehnt: {why} Es gelten die gespeicherten.",
    bundleForeign: "sie sind nicht mit dem Schlüssel dieses Scanners signiert oder beschädigt.",
    bundleRollback: "sie sind älter als die bereits gespeicherten.",
    bundleExpired: "sie sind abgelaufen.",
    bundleBroken: "sie sind beschädigt oder von unbekannter Art.",
    noData: "Keine gültigen Prüfdaten. Bitte mit Netz aktualisieren.",
    dataExpired: "Die gespeicherten Prüfdaten sind abgelaufen. Bitte mit Netz aktualisieren.",
    verifierMissing: "Die Prüfsoftware fehlt auf diesem Gerät. Bitte mit Netz neu laden.",
    rootMissing: "Der Schlüssel des Dienstes ist noch nicht gespeichert. Bitte einmal mit Netz öffnen.",
    manual: "Code eingeben",
    manualLabel: "Text des QR-Codes oder Ausweis-Token",
    manualHint: "Ein Handscanner (USB oder Bluetooth) tippt hier von selbst; Sie können auch einfügen.",
    check: "Prüfen",
    log: "Prüfprotokoll",
    logNote: "Nur auf diesem Gerät, ohne Namen; Seriennummern nur, wenn Sie es unten einschalten. Nichts davon wird gesendet.",
    logEmpty: "Noch keine Prüfungen.",
    logClear: "Protokoll löschen",
    logCleared: "Das Protokoll ist gelöscht.",
    trust: "Vertrauensanker",
    trustText: "Dieser Scanner nimmt nur Prüfdaten an, die mit diesem Schlüssel signiert sind. Fingerabdruck (SHA-256):",
    trustCompare: "Vergleichen Sie ihn mit dem Fingerabdruck, den die Verwaltung angibt.",
    logSerials: "Seriennummern im Protokoll speichern",
    device: "Gerät",
    deviceNotPaired: "Nicht gekoppelt. Koppeln: in der Konsole unter „Geräte“ den Kopplungscode anzeigen und hier scannen.",
    devicePaired: "Gekoppelt als „{name}“.",
    pairing: "Gerät wird gekoppelt …",
    pairDone: "Gerät gekoppelt als „{name}“.",
    pairRefused: "Kopplungscode unbekannt, benutzt oder abgelaufen. Bitte in der Konsole einen neuen anzeigen.",
    pairOffline: "Kein Netz: Koppeln geht nur mit Netz. Bitte den Kopplungscode noch einmal scannen.",
    deviceRevoked: "Dieses Gerät wurde in der Konsole gesperrt und erhält keine neuen Prüfdaten. Bitte neu koppeln.",
    back: "Weiter scannen",
    reason: "Grund: {code}",
    admitYes: "Für diese Ausweisart trotzdem anerkennen.",
    admitNo: "Nicht anerkennen.",
    unknownType: "Unbekannte Ausweisart",
    validUntil: "Gültig bis",
    unknownVerdict: "Prüfung nicht möglich",
    plateTitle: "Kennzeichen prüfen",
    plateLabel: "Kennzeichen",
    plateHint: "Wie am Auto, z. B. D-AB 1234; ausländische mit Länderkennung davor, z. B. NL 12-ABC-3. Groß- und Kleinschreibung, Leerzeichen und Striche sind egal.",
    plateZone: "Zone",
    plateCheck: "Kennzeichen prüfen",
    plateReads: "Gelesen als: {plates}",
    plateOr: " oder ",
    plateNotYet: "Noch kein Kennzeichen.",
    plateInvalid: "Das ist kein Kennzeichen. Bitte so eingeben, wie es am Auto steht, z. B. D-AB 1234, ausländische mit Länderkennung davor, z. B. NL 12-ABC-3.",
    plateZoneMissing: "Bitte die Zone angeben, in der das Auto steht, z. B. 12.",
    plateNever: "Keine Kennzeichendaten auf diesem Gerät: Prüfung nur mit Netz.",
    plateStand: "Kennzeichendaten: {when}, {count} Parkausweise ({zones}).",
    plateAllZones: "alle Zonen",
    plateStale: "Die Kennzeichendaten sind veraltet (Stand {when}). Bitte mit Netz aktualisieren; bis dahin wird online geprüft.",
    plateZonesLabel: "Zone",
    plateLabelShort: "Kennzeichen",
    plateValidHere: "Bewohnerparkausweis für Zone {zone}.",
    plateOtherZones: "Parkausweis nur für Zone {zones}, nicht für Zone {zone}.",
    plateSuspended: "Der Parkausweis ist gesperrt.",
    plateExpired: "Der Parkausweis ist abgelaufen.",
    plateNotYetValid: "Der Parkausweis gilt erst ab einem späteren Tag.",
    plateUnknown: "Für dieses Kennzeichen gibt es keinen Parkausweis.",
    plateUnknownHere: "Für dieses Kennzeichen gibt es keinen Parkausweis in den Zonen dieses Geräts ({zones}).",
    plateAmbiguous: "Mehrere Kennzeichen passen: {plates}. Bitte mit Bindestrich eingeben, wie am Auto.",
    plateNoData: "Keine aktuellen Kennzeichendaten und kein Netz. Bitte mit Netz aktualisieren.",
    plateChecked: "Geprüft {how}.",
    plateOffline: "ohne Netz, mit den Kennzeichendaten dieses Geräts",
    plateOnline: "online beim Dienst",
  },
  en: {
    title: "Pass scanner",
    otherLanguage: "Deutsch",
    camera: "Camera",
    cameraStart: "Start camera",
    cameraOff: "Camera off. Tap “Start camera”.",
    cameraStarting: "Starting the camera …",
    cameraScanning: "Hold the pass's QR code in front of the camera.",
    cameraDenied: "No access to the camera. Allow it in the settings, or enter the code below.",
    cameraMissing: "This device has no usable camera. Enter the code below.",
    decoderFailed: "The QR reader could not be loaded. Enter the code below.",
    torchOn: "Light on",
    torchOff: "Light off",
    data: "Checking data",
    syncNow: "Update now",
    standNever: "No checking data yet. Please open once with a network.",
    stand: "Updated: {when}",
    today: "today",
    yesterday: "yesterday",
    syncing: "Updating the checking data …",
    offline: "No network: the stored checking data is used.",
    bundleRefused: "New checking data refused: {why} The stored data is used.",
    bundleForeign: "it is not signed with this scanner's key, or damaged.",
    bundleRollback: "it is older than the data already stored.",
    bundleExpired: "it has expired.",
    bundleBroken: "it is damaged or of an unknown kind.",
    noData: "No valid checking data. Please update with a network.",
    dataExpired: "The stored checking data has expired. Please update with a network.",
    verifierMissing: "The checking software is missing on this device. Please reload with a network.",
    rootMissing: "The service's key is not stored yet. Please open once with a network.",
    manual: "Enter a code",
    manualLabel: "QR code text or pass token",
    manualHint: "A hand scanner (USB or Bluetooth) types here by itself; you can also paste.",
    check: "Check",
    log: "Scan log",
    logNote: "On this device only, without names; serial numbers only if you switch it on below. None of it is sent.",
    logEmpty: "No checks yet.",
    logClear: "Clear log",
    logCleared: "The log is cleared.",
    trust: "Trust anchor",
    trustText: "This scanner accepts only checking data signed with this key. Fingerprint (SHA-256):",
    trustCompare: "Compare it with the fingerprint the city administration gives you.",
    logSerials: "Keep serial numbers in the log",
    device: "Device",
    deviceNotPaired: "Not paired. To pair: show the pairing code in the console under “Devices” and scan it here.",
    devicePaired: "Paired as “{name}”.",
    pairing: "Pairing this device …",
    pairDone: "Device paired as “{name}”.",
    pairRefused: "Pairing code unknown, used or expired. Please show a new one in the console.",
    pairOffline: "No network: pairing needs one. Please scan the pairing code again.",
    deviceRevoked: "This device was revoked in the console and gets no new data. Please pair it again.",
    back: "Scan next",
    reason: "Reason: {code}",
    admitYes: "This pass type may still be accepted.",
    admitNo: "Do not accept.",
    unknownType: "Unknown pass type",
    validUntil: "Valid until",
    unknownVerdict: "Cannot check",
    plateTitle: "Check a plate",
    plateLabel: "Licence plate",
    plateHint: "As on the car, e.g. D-AB 1234; a foreign plate with its country sign first, e.g. NL 12-ABC-3. Case, spaces and dashes do not matter.",
    plateZone: "Zone",
    plateCheck: "Check plate",
    plateReads: "Read as: {plates}",
    plateOr: " or ",
    plateNotYet: "Not a plate yet.",
    plateInvalid: "This is not a plate. Please type it as it is on the car, e.g. D-AB 1234, a foreign one with its country sign first, e.g. NL 12-ABC-3.",
    plateZoneMissing: "Please give the zone the car is parked in, e.g. 12.",
    plateNever: "No plate data on this device: plates are checked online only.",
    plateStand: "Plate data: {when}, {count} permits ({zones}).",
    plateAllZones: "all zones",
    plateStale: "The plate data is out of date (from {when}). Please update with a network; until then plates are checked online.",
    plateZonesLabel: "Zone",
    plateLabelShort: "Plate",
    plateValidHere: "Resident parking permit for zone {zone}.",
    plateOtherZones: "Permit for zone {zones} only, not for zone {zone}.",
    plateSuspended: "The permit is suspended.",
    plateExpired: "The permit has expired.",
    plateNotYetValid: "The permit starts on a later day.",
    plateUnknown: "There is no permit for this plate.",
    plateUnknownHere: "There is no permit for this plate in this device's zones ({zones}).",
    plateAmbiguous: "Several plates fit: {plates}. Please type it with the hyphen, as on the car.",
    plateNoData: "No current plate data and no network. Please update with a network.",
    plateChecked: "Checked {how}.",
    plateOffline: "offline, with this device's plate data",
    plateOnline: "online with the service",
  },
};

// The verdict's headline per state: short, capitals, readable at arm's length.
export const HEADLINES = {
  valid: { de: "GÜLTIG", en: "VALID" },
  invalid: { de: "UNGÜLTIG", en: "INVALID" },
  revoked: { de: "WIDERRUFEN", en: "REVOKED" },
  suspended: { de: "GESPERRT", en: "SUSPENDED" },
  expired: { de: "ABGELAUFEN", en: "EXPIRED" },
  not_yet_valid: { de: "NOCH NICHT GÜLTIG", en: "NOT YET VALID" },
  unknown_key: { de: "UNGÜLTIG", en: "INVALID" },
  stale_status: { de: "STATUS NICHT PRÜFBAR", en: "STATUS NOT CHECKABLE" },
  status_unchecked: { de: "STATUS NICHT PRÜFBAR", en: "STATUS NOT CHECKABLE" },
};

// A plate check's headline per verdict (the codes of wallet.plateindex.PlateVerdict).
export const PLATE_HEADLINES = {
  valid: { de: "GÜLTIG", en: "VALID" },
  wrong_zone: { de: "ANDERE ZONE", en: "OTHER ZONE" },
  suspended: { de: "GESPERRT", en: "SUSPENDED" },
  expired: { de: "ABGELAUFEN", en: "EXPIRED" },
  not_yet_valid: { de: "NOCH NICHT GÜLTIG", en: "NOT YET VALID" },
  unknown: { de: "KEIN PARKAUSWEIS", en: "NO PERMIT" },
  ambiguous: { de: "GENAUER EINGEBEN", en: "TYPE IT EXACTLY" },
  no_data: { de: "KEINE AKTUELLEN DATEN", en: "NO CURRENT DATA" },
};

let current = "de";

export function chooseLanguage(search = globalThis.location?.search ?? "") {
  const asked = new URLSearchParams(search).get("lang");
  if (LANGUAGES.includes(asked)) {
    remember(asked);
    current = asked;
    return current;
  }
  const remembered = recall();
  if (LANGUAGES.includes(remembered)) {
    current = remembered;
    return current;
  }
  for (const tag of globalThis.navigator?.languages ?? []) {
    const primary = tag.split("-")[0].toLowerCase();
    if (LANGUAGES.includes(primary)) {
      current = primary;
      return current;
    }
  }
  current = "de";
  return current;
}

export function language() {
  return current;
}

export function switchLanguage() {
  current = current === "de" ? "en" : "de";
  remember(current);
  return current;
}

/** The text for `key` in the current language, `{name}` placeholders filled. */
export function t(key, values = {}) {
  return textIn(current, key, values);
}

/** The same in a given language. */
export function textIn(lang, key, values = {}) {
  const text = STRINGS[lang]?.[key] ?? STRINGS.de[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

/** A {de, en} pair (the bundle's labels, the verifier's messages) in the current language. */
export function pick(pair) {
  if (!pair || typeof pair !== "object") {
    return "";
  }
  return pair[current] ?? pair.de ?? "";
}

function remember(lang) {
  try {
    globalThis.localStorage?.setItem(CHOICE, lang);
  } catch {
    // private mode: the choice lasts for this visit only
  }
}

function recall() {
  try {
    return globalThis.localStorage?.getItem(CHOICE);
  } catch {
    return null;
  }
}
