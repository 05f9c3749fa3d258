// German licence plates, read as wallet/plates.py reads them (issue 11): the staff
// scanner turns a typed plate into the same D-AB 1234 the service stored and signed,
// offline. Same rules, same order, same messages; tests/corpus/plates.json is the
// corpus both must pass (tests/corpus/test_plate_corpus.py, tests/js/plate_corpus.test.mjs).

export const MAX_CHARACTERS = 8; // district + letters + digits, without the E/H suffix

// Both limits count code points, as Python's len does: an emoji is 1 there, 2 UTF-16
// units here. What a plate field may hold, in the cleaned text (spaces collapsed, outer
// spaces and hyphens stripped), so a plate padded by a form is still read:
export const MAX_LENGTH = 40;
// Raw input longer than this is refused unread: NFKC and the regexes never see a megabyte
// (explain's pattern takes time quadratic in the length).
export const MAX_INPUT = 200;

const NOT_A_PLATE = "this is not a German plate (for example D-AB 1234)";
const TOO_LONG = `a plate has at most ${MAX_LENGTH} characters; type only the plate`;

export class PlateError extends Error {
  constructor(message) {
    super(message);
    this.name = "PlateError";
  }
}

// Letters from other scripts that look like Latin capitals on a plate, and the dashes
// and dots people type between the parts: the code points of Python's _LOOKALIKES.
const LOOKALIKES = new Map([
  ...pairs(
    "\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0425\u0423\u0406\u0408\u0405",
    "ABEKMHOPCTXYIJS",
  ), // Cyrillic
  ...pairs(
    "\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d\u039f\u03a1\u03a4\u03a5\u03a7",
    "ABEZHIKMNOPTYX",
  ), // Greek
  ...[..."\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63._\u00b7"].map((c) => [c, "-"]),
]);

// Python's \s on str patterns (str.isspace): it has U+001C..U+001F and U+0085, which JS
// \s lacks, and lacks U+FEFF, which JS \s has. Spelled out so both collapse the same.
const PYTHON_SPACES =
  /[\t\n\v\f\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/gu;

// Python 3.11's unicodedata is Unicode 14; browsers (and Node) know later versions, which
// fold more into plate letters: outlined A-Z and 0-9 (U+1CCD6..), Cyrillic modifier letters
// (U+1E030..), a modifier capital S (U+A7F1). Python leaves these as they are, so do we.
const NEWER_FOLDS = /([\ua7f1\u{1ccd6}-\u{1ccf9}\u{1e030}-\u{1e06d}])/u;
// Small letters that only got a capital after Unicode 14 (none of them a plate letter,
// kept for the same reason).
const NEWER_CAPITALS =
  /([\u019b\u0264\u1c8a\ua7cd\ua7cf\ua7d3\ua7d5\ua7db\u{10d70}-\u{10d85}\u{16ebb}-\u{16ed3}])/u;

// After clean-up: letters, an optional separator, letters, digits, suffix. Python's
// fullmatch is ^...$ here; both engines backtrack in the same order, so the lazy
// {0,3}? gives the same groups. It hands O's (and 0's) ending the letters to the
// digits, where a number cannot start with them: lettersAndNumber gives them back.
const SHAPE = new RegExp(
  "^(?<head>[A-Z\u00c4\u00d6\u00dc0]{1,3})(?<sep>[- ]*)(?<letters>[A-Z0]{0,3}?)" +
    "(?<gap> ?)(?<digits>[0-9O]{1,4}) ?(?<suffix>[EH]?)$",
  "u",
);
const WRITTEN_OUT = /^([^- ]+)[- ]+([^- 0-9]+) ?([0-9A-Z]+?)([EH]?)$/u;
const DISTRICT = /^[A-Z\u00c4\u00d6\u00dc]{1,3}$/u;
const LETTERS = /^[A-Z]{1,2}$/u;
const NUMBER = /^[1-9][0-9]{0,3}$/u;

function pairs(from, to) {
  return [...from].map((c, i) => [c, to[i]]);
}

// Split around `protect` (a capturing regex, so the protected code points come back at
// odd indexes), change only the rest. Cutting the text there changes no composition:
// to Python these are unassigned starters that compose with nothing.
function exceptAt(protect, text, change) {
  return text
    .split(protect)
    .map((part, i) => (i % 2 ? part : change(part)))
    .join("");
}

// Python's str.strip(" -"), without a regex that is quadratic on long runs.
function stripSeparators(text) {
  let start = 0;
  let end = text.length;
  while (start < end && (text[start] === " " || text[start] === "-")) start += 1;
  while (end > start && (text[end - 1] === " " || text[end - 1] === "-")) end -= 1;
  return text.slice(start, end);
}

function clean(text) {
  // NFKC first, then capitals (ß -> SS, and the ﬀ ligature is ff by then): Python's order.
  // Decomposed umlauts (O + U+0308) are composed here; a lone combining mark is junk.
  const folded = exceptAt(NEWER_FOLDS, text, (part) => part.normalize("NFKC"));
  const upper = exceptAt(NEWER_CAPITALS, folded, (part) => part.toUpperCase());
  const latin = Array.from(upper, (c) => LOOKALIKES.get(c) ?? c).join(""); // str.translate
  return stripSeparators(latin.replace(PYTHON_SPACES, " "));
}

function longerThan(text, limit) {
  let count = 0;
  for (const _ of text) {
    count += 1; // a code point, as Python's len counts (a lone surrogate is one too)
    if (count > limit) return true;
  }
  return false;
}

function plate(district, letters, number, suffix) {
  // OCR and hurried typing swap O and 0: a 0 among letters is an O, an O among digits
  // a 0 (no district code or number has the other there).
  district = district.replaceAll("0", "O");
  letters = letters.replaceAll("0", "O");
  number = number.replaceAll("O", "0");
  if (!DISTRICT.test(district)) {
    throw new PlateError("the district code is 1 to 3 letters (as in D, DU, SÜW)");
  }
  if (!LETTERS.test(letters)) {
    throw new PlateError("after the district code come 1 or 2 letters (A to Z)");
  }
  if (!NUMBER.test(number)) {
    throw new PlateError("the number is 1 to 4 digits and does not start with 0");
  }
  if (district.length + letters.length + number.length > MAX_CHARACTERS) {
    throw new PlateError(`a German plate has at most ${MAX_CHARACTERS} letters and digits`);
  }
  const display = `${district}-${letters} ${number}${suffix}`;
  return Object.freeze({ district, letters, number, suffix, display });
}

// Where district and letters part: as written ("D-AB", "D AB"), or else every cut of the
// run of letters ("DAB": D|AB, DA|B), since those are different cars.
function splits(head, sep, letters) {
  if (sep.includes("-") || (sep && letters)) {
    return [[head, letters]];
  }
  const run = head + letters;
  const found = [];
  for (let cut = 1; cut <= Math.min(3, run.length - 1); cut += 1) {
    found.push([run.slice(0, cut), run.slice(cut)]);
  }
  return found;
}

// The letters and the number, with O's run straight into the digits as letters. A number
// never starts with 0, so O's (or 0's, the OCR swap) written straight before its first
// other digit end the letters: D-BO12 is D-BO 12, DBO12 splits as DBO 12 does, D O12 is
// D-O 12 as D AB12 is D-AB 12. Only a space written after letters (the gap) stays a
// boundary: the writer put the O's in the number, so D-A O12 is refused (the number
// starts with 0) as D-AB O12 is, not read as D-AO 12. O's without another digit (D-BOO)
// stay the number, which is refused.
function lettersAndNumber(letters, gap, digits) {
  const number = digits.replace(/^[0O]+/u, ""); // Python's lstrip("0O")
  if (gap || !number) {
    return [letters, digits];
  }
  return [letters + digits.slice(0, digits.length - number.length), number];
}

// `text` cleaned for reading; throws PlateError if too long for a plate field. The raw
// cap comes first, counting at most MAX_INPUT + 1 code points: a long value costs nothing.
function cleaned(text) {
  if (longerThan(text, MAX_INPUT)) {
    throw new PlateError(TOO_LONG);
  }
  const result = clean(text);
  if (longerThan(result, MAX_LENGTH)) {
    throw new PlateError(TOO_LONG);
  }
  return result;
}

function readingsOf(cleanText) {
  const match = SHAPE.exec(cleanText);
  if (match === null) {
    return [];
  }
  const { head, sep, gap, suffix } = match.groups;
  const [letters, number] = lettersAndNumber(match.groups.letters, gap, match.groups.digits);
  const found = [];
  for (const [district, rest] of splits(head, sep, letters)) {
    let reading;
    try {
      reading = plate(district, rest, number, suffix);
    } catch (error) {
      if (error instanceof PlateError) continue;
      throw error;
    }
    if (!found.some((p) => p.display === reading.display)) {
      found.push(reading);
    }
  }
  return found;
}

/** Every plate `text` can stand for, in Python's order; [] if none. */
export function readings(text) {
  if (typeof text !== "string") {
    return [];
  }
  let cleanText;
  try {
    cleanText = cleaned(text);
  } catch (error) {
    if (error instanceof PlateError) return []; // too long
    throw error;
  }
  return readingsOf(cleanText);
}

/** The one plate `text` names; throws PlateError if it names none or several. */
export function parsePlate(text) {
  if (typeof text !== "string") {
    throw new PlateError(NOT_A_PLATE);
  }
  const cleanText = cleaned(text);
  const found = readingsOf(cleanText);
  if (found.length === 1) {
    return found[0];
  }
  if (found.length > 1) {
    const options = found.map((p) => p.display).join(" or ");
    throw new PlateError(`write where the district code ends: ${options}`);
  }
  explain(cleanText);
  throw new PlateError(NOT_A_PLATE);
}

// The most helpful reason for a written-out plate that did not parse.
function explain(cleanText) {
  const parts = WRITTEN_OUT.exec(cleanText);
  if (parts !== null) {
    plate(parts[1], parts[2], parts[3], parts[4]);
  }
}

// -- plates from other countries (wallet/plates.py's foreign_plate) ------------------------

// The country signs of the Vienna Convention that a German city sees most; D is not one.
export const COUNTRIES = Object.freeze(new Set([
  "A", "AL", "AND", "B", "BG", "BIH", "BY", "CH", "CY", "CZ", "DK", "E", "EST", "F", "FIN",
  "FL", "GB", "GBZ", "GR", "H", "HR", "I", "IRL", "IS", "L", "LT", "LV", "M", "MA", "MC",
  "MD", "MNE", "N", "NL", "NMK", "P", "PL", "RO", "RSM", "RUS", "S", "SK", "SLO", "SRB",
  "TN", "TR", "UA", "UK", "V",
]));
export const FOREIGN_MAX = 10;
const FOREIGN = /^(?<sign>[A-Z]{1,3})[ :]+(?<plate>[A-Z0-9\u00c4\u00d6\u00dc -]+)$/u;
const FOREIGN_PLATE = /^[A-Z0-9\u00c4\u00d6\u00dc]*[0-9][A-Z0-9\u00c4\u00d6\u00dc]*$/u;
const NOT_FOREIGN = "write a plate from another country with its country sign first, for example NL 12-ABC-3";

/**
 * A foreign plate's stored form ("NL 12ABC3": sign, space, letters and digits), or null.
 * Text that also reads as German (PL WA 1234: Plauen or Poland) has both readings.
 */
export function foreignPlate(text) {
  if (typeof text !== "string") {
    return null;
  }
  let cleanText;
  try {
    cleanText = cleaned(text);
  } catch (error) {
    if (error instanceof PlateError) return null; // too long
    throw error;
  }
  const match = FOREIGN.exec(cleanText);
  if (match === null || !COUNTRIES.has(match.groups.sign)) {
    return null;
  }
  const plate = match.groups.plate.replaceAll(" ", "").replaceAll("-", "");
  if (plate.length > FOREIGN_MAX || !FOREIGN_PLATE.test(plate)) {
    return null;
  }
  return `${match.groups.sign} ${plate}`;
}

/** The stored form of a foreign plate, or throws PlateError. */
export function parseForeignPlate(text) {
  const found = foreignPlate(text);
  if (found === null) {
    throw new PlateError(NOT_FOREIGN);
  }
  return found;
}

/** The stored forms typed text can stand for: every German reading, then the foreign plate. */
export function lookupForms(text) {
  const forms = readings(text).map((plate) => plate.display);
  const foreign = foreignPlate(text);
  return foreign ? [...forms, foreign] : forms;
}
