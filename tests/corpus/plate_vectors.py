"""The shared corpus of the two plate readers: Python's and the scanner's JavaScript.

Each vector is something typed into a plate field, with what we *intend* to come of it,
written here by hand per case and never read back from either reader: the plates
``readings`` finds, in order, and what ``parse_plate`` says (the plate, or its error
message); for plates from other countries also ``foreign_plate`` and ``lookup_forms``
(a vector without them has no foreign reading). ``tests/corpus/test_plate_corpus.py``
runs them through :mod:`wallet.plates`, ``tests/js/plate_corpus.test.mjs`` through
``wallet/web/static/scan/verifier/plates.js``; both must agree on every one.

The cases are what keyboards, phones and OCR produce: missing and exotic separators,
lower case, full-width forms, Cyrillic and Greek look-alikes, O read as 0, umlauts
(composed or not), the E/H suffix, the 8-character rule, whitespace that only some
languages call whitespace, padding and input too long for a plate field (40 code points
once cleaned, 200 raw), code points outside the BMP, and input that is no text.
Characters a reader could mistake are written as escapes.

Regenerate: ``python -m tests.corpus.plate_vectors``
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).with_name("plates.json")

Vector = dict[str, Any]

NOT_A_PLATE = "this is not a German plate (for example D-AB 1234)"
DISTRICT = "the district code is 1 to 3 letters (as in D, DU, S\u00dcW)"
LETTERS = "after the district code come 1 or 2 letters (A to Z)"
NUMBER = "the number is 1 to 4 digits and does not start with 0"
TOO_MANY = "a German plate has at most 8 letters and digits"
TOO_LONG = "a plate has at most 40 characters; type only the plate"

# Mathematical bold capitals and digits: outside the BMP, NFKC makes them plain A-Z, 0-9.
BOLD_D_AB_1234 = "\U0001d403-\U0001d400\U0001d401 \U0001d7cf\U0001d7d0\U0001d7d1\U0001d7d2"
CAR = "\U0001f697"


def plate(name: str, text: str, display: str) -> Vector:
    """Input that names exactly one plate."""
    return {"name": name, "input": text, "readings": [display], "parse": display}


def ambiguous(name: str, text: str, first: str, second: str) -> Vector:
    """Input that names two plates: issuing asks where the district code ends."""
    message = f"write where the district code ends: {first} or {second}"
    return {"name": name, "input": text, "readings": [first, second], "parse_error": message}


def refused(name: str, text: Any, message: str) -> Vector:
    """Input that names no plate, and the reason issuing gives."""
    return {"name": name, "input": text, "readings": [], "parse_error": message}


def _spellings() -> list[Vector]:
    return [
        ambiguous("no separator, lower case", "dab1234", "D-AB 1234", "DA-B 1234"),
        ambiguous("no separator, capitals", "DAB1234", "D-AB 1234", "DA-B 1234"),
        ambiguous("space only before the number", "DAB 1234", "D-AB 1234", "DA-B 1234"),
        plate("space between district and letters", "D AB 1234", "D-AB 1234"),
        plate("en dash", "D\u2013AB 1234", "D-AB 1234"),
        plate("hyphen", "D-AB 1234", "D-AB 1234"),
        plate("no space before the number", "D-AB1234", "D-AB 1234"),
        plate("space after the district, none before the number", "D AB1234", "D-AB 1234"),
        plate("two-letter district written with a space", "DA B 1234", "DA-B 1234"),
        plate("spaces everywhere", "  D - AB   1234 ", "D-AB 1234"),
        plate("dashes around the plate", "-D-AB 1234-", "D-AB 1234"),
        plate("double hyphen", "D--AB 1234", "D-AB 1234"),
        plate("hyphen space hyphen", "D- -AB 1234", "D-AB 1234"),
        plate("em dash", "D\u2014AB 1234", "D-AB 1234"),
        plate("minus sign", "D\u2212AB 1234", "D-AB 1234"),
        plate("Unicode hyphen", "D\u2010AB 1234", "D-AB 1234"),
        plate("non-breaking hyphen", "D\u2011AB 1234", "D-AB 1234"),
        plate("figure dash", "D\u2012AB 1234", "D-AB 1234"),
        plate("horizontal bar", "D\u2015AB 1234", "D-AB 1234"),
        plate("small em dash", "D\ufe58AB 1234", "D-AB 1234"),
        plate("small hyphen-minus", "D\ufe63AB 1234", "D-AB 1234"),
        plate("dot for the seal", "D.AB 1234", "D-AB 1234"),
        plate("middle dot", "D\u00b7AB 1234", "D-AB 1234"),
        plate("underscore", "D_AB 1234", "D-AB 1234"),
        refused("underscores between all parts", "D_AB_1234", NOT_A_PLATE),
        plate("lower case with hyphen", "d-ab 1234", "D-AB 1234"),
        plate("two letters, no separator: one split", "AB12", "A-B 12"),
        ambiguous("four letters, no separator", "DUAB12", "DU-AB 12", "DUA-B 12"),
        plate("five letters, no separator: one split fits", "ABCDE1", "ABC-DE 1"),
        refused("six letters, no separator", "ABCDEF1", NOT_A_PLATE),
        refused("one letter, no separator", "A12", NOT_A_PLATE),
    ]


def _other_scripts() -> list[Vector]:
    return [
        plate(
            "full-width",
            "\uff24\uff0d\uff21\uff22\u3000\uff11\uff12\uff13\uff14",
            "D-AB 1234",
        ),
        ambiguous(
            "full-width lower case, no separator",
            "\uff44\uff41\uff42\uff11\uff12\uff13\uff14",
            "D-AB 1234",
            "DA-B 1234",
        ),
        plate("Cyrillic A and VE", "D-\u0410\u0412 1234", "D-AB 1234"),
        plate("Cyrillic lower case a and ve", "d-\u0430\u0432 1234", "D-AB 1234"),
        plate("Cyrillic EM KA EN", "\u041c-\u041a\u041d 12", "M-KH 12"),
        plate("Cyrillic DZE, Byelorussian I, JE", "\u0405\u0406-\u0408 1", "SI-J 1"),
        plate("Cyrillic IE TE HA U", "\u0415\u0422-\u0425\u0423 7", "ET-XY 7"),
        plate("Cyrillic ER ES and O", "\u0420\u0421-\u041e\u0410 7", "PC-OA 7"),
        plate("Cyrillic O in the number", "D-AB 1\u041e34", "D-AB 1034"),
        refused("Cyrillic DE is no D", "\u0414-AB 12", DISTRICT),
        plate("Greek capitals", "\u0391\u0392-\u0397\u0396 12", "AB-HZ 12"),
        plate("Greek lower case", "\u03b1\u03b2-\u03b7\u03b6 12", "AB-HZ 12"),
        plate("Greek KAPPA NU TAU UPSILON", "\u039a\u039d-\u03a4\u03a5 9", "KN-TY 9"),
        plate("Greek IOTA MU EPSILON CHI RHO", "\u0399\u039c\u0395-\u03a7\u03a1 9", "IME-XP 9"),
        plate("Greek omicron in the number", "D-AB 1\u039f", "D-AB 10"),
        refused("Greek LAMDA is no letter of ours", "D-\u039b 12", LETTERS),
        plate("circled letters and digits", "\u24b9-\u24b6\u24b7 \u2460\u2461", "D-AB 12"),
        plate("superscript digits", "D-AB \u00b9\u00b2\u00b3", "D-AB 123"),
        plate("Kelvin sign", "\u212a-AB 1", "K-AB 1"),
        plate("Roman numeral twelve", "\u216b-AB 1", "XII-AB 1"),
        plate("long s and dotless i", "\u017f\u0131-AB 1", "SI-AB 1"),
        plate("DZ digraph", "\u01f1-AB 12", "DZ-AB 12"),
        plate("sharp s is SS in capitals", "d-\u00df 12", "D-SS 12"),
        refused("capital sharp s stays one letter", "D-\u1e9e 12", LETTERS),
        plate("ff ligature", "D-\ufb00 1", "D-FF 1"),
        refused("ffi ligature is three letters", "D-\ufb03 1", LETTERS),
        plate("combining ypogegrammeni capitalises to IOTA", "D-A\u0345 12", "D-AI 12"),
    ]


def _o_and_zero() -> list[Vector]:
    return [
        plate("O among the digits is 0", "D-AB 1O34", "D-AB 1034"),
        plate("trailing Os among the digits", "D-AB 1OO", "D-AB 100"),
        plate("0 in the district is O", "K0-AB 12", "KO-AB 12"),
        plate("0 as the whole district", "0-AB 12", "O-AB 12"),
        plate("0 among the letters is O", "D-A0 12", "D-AO 12"),
        plate("0 in district and letters", "D0-0B 10", "DO-OB 10"),
        ambiguous("0 in an unsplit run of letters", "DA012", "D-AO 12", "DA-O 12"),
        refused("O leading the number is a leading 0", "D-AB O12", NUMBER),
    ]


def _umlauts_and_suffixes() -> list[Vector]:
    return [
        plate("district with O umlaut", "L\u00d6-X 12", "L\u00d6-X 12"),
        plate("district with U umlaut", "T\u00dc-AB 12", "T\u00dc-AB 12"),
        plate("three-letter umlaut district, 8 characters", "S\u00dcW-AB 123", "S\u00dcW-AB 123"),
        plate("decomposed O umlaut", "LO\u0308-X 12", "L\u00d6-X 12"),
        plate("decomposed u umlaut, lower case", "tu\u0308-ab 1", "T\u00dc-AB 1"),
        plate("decomposed U umlaut, space", "SU\u0308W AB 12", "S\u00dcW-AB 12"),
        plate("umlaut run without separator splits once", "L\u00d6X12", "L\u00d6-X 12"),
        refused("umlaut among the letters", "D-\u00c4B 12", LETTERS),
        refused("lone combining diaeresis", "D-AB\u0308 12", LETTERS),
        plate("lower case umlaut and suffix", "l\u00f6-x 12e", "L\u00d6-X 12E"),
        plate("suffix after a space", "S\u00dcW-AB 9 H", "S\u00dcW-AB 9H"),
        plate("electric", "D-AB 123E", "D-AB 123E"),
        plate("historic after a space", "D-AB 123 H", "D-AB 123H"),
        plate("lower case electric", "d-ab 1e", "D-AB 1E"),
        plate("E as the letters and the suffix", "D-E 1E", "D-E 1E"),
        ambiguous("suffix without separator", "DAB123E", "D-AB 123E", "DA-B 123E"),
        plate("suffix not counted in the 8", "S\u00dcW-AB 123E", "S\u00dcW-AB 123E"),
        refused("X is no suffix", "D-AB 123X", NUMBER),
        refused("two suffixes", "D-AB 123EH", NUMBER),
    ]


def _rules() -> list[Vector]:
    return [
        refused("nine characters", "S\u00dcW-AB 1234", TOO_MANY),
        refused("nine characters, plain letters", "ABC-DE 1234", TOO_MANY),
        plate("eight characters", "HH-AB 1234", "HH-AB 1234"),
        refused("nine characters without separator", "S\u00dcWAB1234", NOT_A_PLATE),
        refused("leading zero", "D-AB 0123", NUMBER),
        refused("number 0", "D-AB 0", NUMBER),
        plate("one digit", "D-AB 1", "D-AB 1"),
        refused("five digits", "D-AB 12345", NUMBER),
        refused("no number", "D-AB", NUMBER),
        refused("no letters", "D-1234", NOT_A_PLATE),
        refused("four-letter district", "ABCD-X 1", DISTRICT),
        refused("digit as district", "1-AB 12", DISTRICT),
        refused("three letters", "D-ABC 12", LETTERS),
        refused("only digits", "1234", NOT_A_PLATE),
        refused("SQL after a plate", "D-AB 12; DROP TABLE", NOT_A_PLATE),
    ]


def _whitespace() -> list[Vector]:
    return [
        plate("tabs", "D\tAB\t1234", "D-AB 1234"),
        plate("no-break spaces", "D\u00a0AB\u00a01234", "D-AB 1234"),
        plate("figure space", "D\u2007AB 1234", "D-AB 1234"),
        plate("ideographic spaces", "D\u3000AB\u30001234", "D-AB 1234"),
        plate("unit separator U+001F is Python whitespace", "D\u001fAB\u001f1234", "D-AB 1234"),
        plate("file, group, record separators", "D\u001cAB\u001d1234\u001e", "D-AB 1234"),
        plate("next line U+0085", "D\u0085AB 1234", "D-AB 1234"),
        plate("line feed and CR LF", "D-AB\n1234\r\n", "D-AB 1234"),
        plate("vertical tab and form feed", "D\u000bAB\u000c1234", "D-AB 1234"),
        plate("line and paragraph separators", "D\u2028AB\u20291234", "D-AB 1234"),
        plate("ogham space mark", "D\u1680AB 1234", "D-AB 1234"),
        refused("byte order mark is not whitespace", "\ufeffD-AB 1234", DISTRICT),
        refused("byte order mark among the letters", "D-AB\ufeff1234", LETTERS),
        refused("zero-width space among the letters", "D-AB\u200b1234", LETTERS),
        refused("zero-width space in the district", "D\u200b-AB 1234", DISTRICT),
        refused("Mongolian vowel separator", "D\u180eAB 1234", NOT_A_PLATE),
        refused("empty", "", NOT_A_PLATE),
        refused("only spaces", "   ", NOT_A_PLATE),
        refused("only hyphens and spaces", "- - -", NOT_A_PLATE),
        refused("only dashes", "\u2013\u2014", NOT_A_PLATE),
    ]


def _lengths_and_types() -> list[Vector]:
    """The 40-character limit counts the cleaned text, so padding never refuses a plate;
    raw input past 200 code points is refused unread, with a message saying what to do."""
    return [
        plate("40 characters", "D-AB 1234" + " " * 31, "D-AB 1234"),
        plate("41 characters, a plate in them", "D-AB 1234" + " " * 32, "D-AB 1234"),
        refused("41 characters, explained anyway", "D-ABC 12" + " " * 33, LETTERS),
        plate("spaces inside collapse before counting", "D" + " " * 60 + "AB 1234", "D-AB 1234"),
        plate("padding of line breaks and tabs", "\r\n\t" * 40 + "d-ab 1234\n", "D-AB 1234"),
        plate("padding of hyphens is stripped", "-" * 100 + "D-AB 1234" + "-" * 91, "D-AB 1234"),
        plate("200 code points, a plate padded", "D-AB 1234" + " " * 191, "D-AB 1234"),
        refused("201 code points, refused unread", "D-AB 1234" + " " * 192, TOO_LONG),
        refused("40 characters once cleaned, no plate", "D-AB 1234 " + "X" * 30, NOT_A_PLATE),
        refused("41 characters once cleaned", "D-AB 1234 " + "X" * 31, TOO_LONG),
        refused("20 sharp s are 40 letters", "\u00df" * 20, NOT_A_PLATE),
        refused("21 sharp s are 42 letters once capitals", "\u00df" * 21, TOO_LONG),
        refused("500 characters", "x" * 500, TOO_LONG),
        plate("40 code points, 48 UTF-16 units", BOLD_D_AB_1234 + " " * 31, "D-AB 1234"),
        plate("41 code points outside the BMP", BOLD_D_AB_1234 + " " * 32, "D-AB 1234"),
        plate("200 code points, 209 UTF-16 units", BOLD_D_AB_1234 + " " * 191, "D-AB 1234"),
        refused("201 code points outside the BMP", BOLD_D_AB_1234 + " " * 192, TOO_LONG),
        refused("41 emojis", CAR * 41, TOO_LONG),
        refused("101 emojis, 202 UTF-16 units", CAR * 101, TOO_LONG),
        refused("emoji after the plate", f"D-AB 1234 {CAR}", NOT_A_PLATE),
        refused("emoji as the district", f"{CAR}-AB 12", DISTRICT),
        refused("joined emoji as the letters", "D-\U0001f468\u200d\U0001f469 1", LETTERS),
        refused("a number", 1234, NOT_A_PLATE),
        refused("a fraction", 12.5, NOT_A_PLATE),
        refused("null", None, NOT_A_PLATE),
        refused("true", True, NOT_A_PLATE),
        refused("a list holding a plate", ["D-AB 1234"], NOT_A_PLATE),
        refused("an object holding a plate", {"plate": "D-AB 1234"}, NOT_A_PLATE),
    ]


def _newer_unicode() -> list[Vector]:
    """Code points Unicode 14 (Python 3.11) has not, and later versions fold to plate letters."""
    return [
        refused("outlined D (Unicode 16)", "\U0001ccd9-AB 12", DISTRICT),
        refused("outlined digits (Unicode 16)", "D-AB \U0001ccf1\U0001ccf2", NOT_A_PLATE),
        refused("Cyrillic modifier letter a (Unicode 15)", "D-\U0001e030B 12", LETTERS),
        refused("modifier capital S (Unicode 17)", "\ua7f1-AB 12", DISTRICT),
    ]


def _o_before_the_digits() -> list[Vector]:
    """O's (or 0's) ending the letters, written straight before the digits.

    A number never starts with 0, so they are letters: D-BO12 is D-BO 12 as D-BO 12 is,
    and run-together input splits every way. A space written after the letters is kept
    as the writer's boundary: D-A O12 names the number O12, refused as D-AB O12 is,
    not read as D-AO 12. A space after the district (D O12) is no such boundary.
    """
    return [
        plate("letters ending in O straight before the digits", "D-BO12", "D-BO 12"),
        plate("the letter O straight before the digits", "D-O12", "D-O 12"),
        plate("letters ending in 0 straight before the digits", "D-A012", "D-AO 12"),
        plate("letters ending in O, then a space", "D-BO 12", "D-BO 12"),
        plate("two Os straight before the digits", "D-OO12", "D-OO 12"),
        plate("lower case o straight before the digits", "d-bo12", "D-BO 12"),
        plate("Cyrillic O straight before the digits", "D-B\u041e12", "D-BO 12"),
        plate("O straight before the digits, then a suffix", "D-BO12E", "D-BO 12E"),
        plate("O straight before a four-digit number", "D-BO1234", "D-BO 1234"),
        plate("O before the digits, a space after the district", "D O12", "D-O 12"),
        plate("O before the digits, two-letter district and a space", "DA O12", "DA-O 12"),
        plate("0 before the digits, a space after the district", "D 012", "D-O 12"),
        ambiguous("run of letters ending in O", "DBO12", "D-BO 12", "DB-O 12"),
        ambiguous("run of four letters ending in O", "DABO12", "DA-BO 12", "DAB-O 12"),
        ambiguous("run of letters ending in 0", "DAB0123", "DA-BO 123", "DAB-O 123"),
        plate("O among the digits stays 0", "D-BO1O", "D-BO 10"),
        refused("O after a space stays in the number", "D-A O12", NUMBER),
        refused("0 after a space stays in the number", "D-A 012", NUMBER),
        refused("O would make three letters: a leading 0", "D-AB0123", NUMBER),
        refused("only Os after the letters", "D-BOO", NUMBER),
        refused("O before the digits, nine characters", "S\u00dcW-BO1234", TOO_MANY),
    ]


def foreign(name: str, text: str, stored: str | None, *, german: Vector | None = None) -> Vector:
    """Input with a foreign reading ``stored`` (or None): what readings and parse_plate say
    of it as a German plate is ``german`` (default: no plate, NOT_A_PLATE)."""
    base = german or {"readings": [], "parse_error": NOT_A_PLATE}
    lookup = [*base["readings"], *([stored] if stored else [])]
    return {"name": name, "input": text, **base, "input_foreign": stored, "lookup": lookup}


def _foreign() -> list[Vector]:
    """Plates from other countries: the country sign first, then letters and digits."""
    return [
        foreign("Dutch plate", "NL 12-ABC-3", "NL 12ABC3"),
        foreign("Dutch plate, lower case", "nl 12-abc-3", "NL 12ABC3"),
        foreign("French plate", "F AB-123-CD", "F AB123CD"),
        foreign("French plate, sign with a colon", "F: AB 123 CD", "F AB123CD"),
        foreign("Dutch plate, Cyrillic A", "NL 12-\u0410BC-3", "NL 12ABC3"),
        foreign("British plate", "UK AB12 CDE", "UK AB12CDE"),
        foreign("Austrian plate", "A W-12345A", "A W12345A"),
        foreign("Danish plate, spaced", "DK AB 12 345", "DK AB12345"),
        foreign(
            "Swiss plate, six digits", "CH ZH 123456", "CH ZH123456",
            german={"readings": [], "parse_error": NUMBER},
        ),
        foreign(
            "Plauen or Poland", "PL WA 1234", "PL WA1234",
            german={"readings": ["PL-WA 1234"], "parse": "PL-WA 1234"},
        ),
        foreign(
            "Poland for sure: a colon after the sign", "PL: WA 1234", "PL WA1234",
            german={"readings": [], "parse_error": DISTRICT},
        ),
        foreign(
            "a German plate is no foreign one", "D AB 1234", None,
            german={"readings": ["D-AB 1234"], "parse": "D-AB 1234"},
        ),
        foreign("an unknown country sign", "QQ 12-34", None),
        foreign(
            "a foreign plate without a digit", "NL ABC", None,
            german={"readings": [], "parse_error": NUMBER},
        ),
        foreign("a foreign plate of eleven characters", "NL 12345678901", None),
        foreign("D is not a foreign sign", "D 123", None),
        foreign("a sign alone", "NL -", None),
    ]  # fmt: skip


def build() -> list[Vector]:
    vectors = [
        *_spellings(),
        *_other_scripts(),
        *_o_and_zero(),
        *_umlauts_and_suffixes(),
        *_rules(),
        *_whitespace(),
        *_lengths_and_types(),
        *_newer_unicode(),
        *_o_before_the_digits(),
        *_foreign(),
    ]
    names = [v["name"] for v in vectors]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert not duplicates, f"vector names must be unique: {duplicates}"
    return vectors


def render() -> str:
    return json.dumps(build(), indent=1, ensure_ascii=False) + "\n"


def main() -> None:
    CORPUS.write_text(render(), encoding="utf-8")
    print(f"wrote {CORPUS}")


if __name__ == "__main__":
    main()
