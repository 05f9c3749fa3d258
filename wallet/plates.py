"""German licence plates, read one way wherever a plate comes in (issue 11).

A plate is the district code (1-3 letters, umlauts included: LÖ, TÜ, SÜW), the
recognition letters (1-2) and a number (1-4 digits, no leading zero), at most 8
of these characters in all (FZV § 8), optionally followed by E (electric) or H
(historic). Its one stored and signed spelling is ``D-AB 1234``.

What people and phones type is messier: lower case, no space, an en dash from a
word processor, a Cyrillic A (U+0410) from a Russian keyboard layout, an O read as 0 by
OCR. :func:`readings` turns such input into every plate it can stand for. With
a separator between district and letters there is one; without (``dab1234``)
the split is unknown and there may be several (D-AB 1234 and DA-B 1234 are two
cars): a check that finds more than one permit must say so instead of guessing.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from wallet.errors import InputError

__all__ = [
    "COUNTRIES",
    "FOREIGN_MAX",
    "MAX_INPUT",
    "MAX_LENGTH",
    "MAX_ZONE_LENGTH",
    "Plate",
    "PlateError",
    "foreign_plate",
    "lookup_forms",
    "normalise_zone",
    "parse_foreign_plate",
    "parse_plate",
    "readings",
]

MAX_CHARACTERS = 8  # district + letters + digits, without the E/H suffix
# What a plate field may hold, in code points of the cleaned text (spaces collapsed, outer
# spaces and hyphens stripped): room for a plate and stray characters, so a plate padded
# by a form or a copied table cell is still read.
MAX_LENGTH = 40
# Raw input longer than this is refused unread: NFKC and the regexes never see a megabyte
# (_explain's pattern takes time quadratic in the length), whatever the caller checks after.
MAX_INPUT = 200
_DISTRICT_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÜ"
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# Letters from other scripts that look like Latin capitals on a plate, and the
# dashes and spaces keyboards and word processors produce. NFKC has already
# folded full-width forms (U+FF21, U+FF0D) and compatibility characters.
_LOOKALIKES = str.maketrans(
    {
        # Cyrillic capitals that look like A B E K M H O P C T X Y I J S
        **dict(zip("\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0425"
                   "\u0423\u0406\u0408\u0405", "ABEKMHOPCTXYIJS", strict=True)),
        # Greek capitals that look like A B E Z H I K M N O P T Y X
        **dict(zip("\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d\u039f\u03a1"
                   "\u03a4\u03a5\u03a7", "ABEZHIKMNOPTYX", strict=True)),
        # dashes and minus signs; the dot some write for the seal between the parts
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63._\u00b7", "-"),
    }
)  # fmt: skip
_SPACES = re.compile(r"\s+")
# After clean-up: letters, an optional separator, letters, digits, suffix. The lazy
# letters group hands O's (and 0's) ending the letters to the digits, where a number
# cannot start with them: _letters_and_number gives them back.
_SHAPE = re.compile(
    r"(?P<head>[A-ZÄÖÜ0]{1,3})(?P<sep>[- ]*)(?P<letters>[A-Z0]{0,3}?)"
    r"(?P<gap> ?)(?P<digits>[0-9O]{1,4}) ?(?P<suffix>[EH]?)"
)
NOT_A_PLATE = "this is not a German plate (for example D-AB 1234)"
TOO_LONG = f"a plate has at most {MAX_LENGTH} characters; type only the plate"


class PlateError(ValueError):
    """Input that cannot be a German plate; the message says why, for the field's error."""


@dataclass(frozen=True, order=True)
class Plate:
    district: str
    letters: str
    number: str
    suffix: str = ""

    @property
    def display(self) -> str:
        """How the plate is stored, signed and shown: ``D-AB 1234E``."""
        return f"{self.district}-{self.letters} {self.number}{self.suffix}"

    def __str__(self) -> str:
        return self.display


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).upper().translate(_LOOKALIKES)
    # Decomposed umlauts (O + U+0308) were composed by NFKC; a lone combining mark is junk.
    return _SPACES.sub(" ", text).strip(" -")


def _plate(district: str, letters: str, number: str, suffix: str) -> Plate:
    # OCR and hurried typing swap O and 0: a 0 among letters is an O, an O among
    # digits a 0 (no district code or number has the other there).
    district, letters = district.replace("0", "O"), letters.replace("0", "O")
    number = number.replace("O", "0")
    if not 1 <= len(district) <= 3 or any(c not in _DISTRICT_LETTERS for c in district):
        raise PlateError("the district code is 1 to 3 letters (as in D, DU, SÜW)")
    if not 1 <= len(letters) <= 2 or any(c not in _LETTERS for c in letters):
        raise PlateError("after the district code come 1 or 2 letters (A to Z)")
    if not re.fullmatch(r"[1-9][0-9]{0,3}", number):
        raise PlateError("the number is 1 to 4 digits and does not start with 0")
    if len(district) + len(letters) + len(number) > MAX_CHARACTERS:
        raise PlateError(f"a German plate has at most {MAX_CHARACTERS} letters and digits")
    return Plate(district, letters, number, suffix)


def readings(text: object) -> list[Plate]:
    """Every plate ``text`` can stand for, in a fixed order; empty if none.

    ``D-AB 1234``, ``d ab 1234``, ``D\u2013AB 1234`` and ``DAB1234``'s first reading
    are the same plate; ``DAB1234`` alone also reads as DA-B 1234.
    """
    if not isinstance(text, str):
        return []
    try:
        return _readings(_cleaned(text))
    except PlateError:  # too long
        return []


def parse_plate(text: object) -> Plate:
    """The one plate ``text`` names, for issuing: it must say where the district ends.

    :raises PlateError: not a German plate, or ambiguous (``DAB1234``: write D-AB 1234).
    """
    if not isinstance(text, str):
        raise PlateError(NOT_A_PLATE)
    cleaned = _cleaned(text)
    found = _readings(cleaned)
    if len(found) == 1:
        return found[0]
    if found:
        options = " or ".join(p.display for p in found)
        raise PlateError(f"write where the district code ends: {options}")
    _explain(cleaned)
    raise PlateError(NOT_A_PLATE)


def _cleaned(text: str) -> str:
    """``text`` cleaned for reading; :raises PlateError: too long for a plate field."""
    # The raw cap first, on len alone: a long value costs nothing before it is refused.
    if len(text) > MAX_INPUT or len(cleaned := _clean(text)) > MAX_LENGTH:
        raise PlateError(TOO_LONG)
    return cleaned


def _readings(cleaned: str) -> list[Plate]:
    match = _SHAPE.fullmatch(cleaned)
    if match is None:
        return []
    head, sep = match["head"], match["sep"]
    letters, number = _letters_and_number(match["letters"], match["gap"], match["digits"])
    if sep.strip(" ") or (sep and letters):  # "D-AB", "D AB": the split is written
        splits = [(head, letters)]
    else:  # "DAB": every split of the run of letters
        run = head + letters
        splits = [(run[:cut], run[cut:]) for cut in range(1, min(3, len(run) - 1) + 1)]
    found: list[Plate] = []
    for district, rest in splits:
        try:
            plate = _plate(district, rest, number, match["suffix"])
        except PlateError:
            continue
        if plate not in found:
            found.append(plate)
    return found


def _letters_and_number(letters: str, gap: str, digits: str) -> tuple[str, str]:
    """The letters and the number, with O's run straight into the digits as letters.

    A number never starts with 0, so O's (or 0's, the OCR swap) written straight before
    its first other digit end the letters: D-BO12 is D-BO 12, DBO12 splits as DBO 12
    does, D O12 is D-O 12 as D AB12 is D-AB 12. Only a space written after letters (the
    gap) stays a boundary: the writer put the O's in the number, so D-A O12 is refused
    (the number starts with 0) as D-AB O12 is, not read as D-AO 12. O's without another
    digit (D-BOO) stay the number, which is refused.
    """
    number = digits.lstrip("0O")
    if gap or not number:
        return letters, digits
    return letters + digits[: len(digits) - len(number)], number


def _explain(cleaned: str) -> None:
    """Raise the most helpful reason for a written-out plate that did not parse."""
    parts = re.fullmatch(r"([^- ]+)[- ]+([^- 0-9]+) ?([0-9A-Z]+?)([EH]?)", cleaned)
    if parts is not None:
        _plate(*parts.groups())


# -- plates from other countries (where a pass type allows them) ------------------------

# The distinguishing signs of the countries whose cars park in a German city most, from
# the Vienna Convention on Road Traffic (Europe and its neighbours). A foreign plate is
# always written with its sign first ("NL 12-ABC-3"): a German plate mistyped is then
# never taken for a foreign one, and two countries' equal plates stay two cars.
COUNTRIES = frozenset((
    "A", "AL", "AND", "B", "BG", "BIH", "BY", "CH", "CY", "CZ", "DK", "E", "EST", "F", "FIN",
    "FL", "GB", "GBZ", "GR", "H", "HR", "I", "IRL", "IS", "L", "LT", "LV", "M", "MA", "MC",
    "MD", "MNE", "N", "NL", "NMK", "P", "PL", "RO", "RSM", "RUS", "S", "SK", "SLO", "SRB",
    "TN", "TR", "UA", "UK", "V",
))  # fmt: skip
FOREIGN_MAX = 10  # letters and digits after the sign (the longest in Europe have 8 or 9)
_FOREIGN = re.compile(r"(?P<sign>[A-Z]{1,3})[ :]+(?P<plate>[A-Z0-9\u00c4\u00d6\u00dc -]+)")
_FOREIGN_PLATE = re.compile(r"[A-Z0-9\u00c4\u00d6\u00dc]*[0-9][A-Z0-9\u00c4\u00d6\u00dc]*")
NOT_FOREIGN = (
    "write a plate from another country with its country sign first, for example NL 12-ABC-3"
)


def foreign_plate(text: object) -> str | None:
    """A foreign plate's stored form (``NL 12ABC3``: sign, space, letters and digits), or None.

    Spaces and hyphens inside the plate are dropped: every country places them
    differently, and plate readers report them as they please. Some text reads as
    either (``PL WA 1234``: Plauen or Poland): issuing takes the German plate unless
    a colon follows the sign (``PL: WA 1234``); a lookup asks for both.
    """
    if not isinstance(text, str):
        return None
    try:
        cleaned = _cleaned(text)
    except PlateError:
        return None
    match = _FOREIGN.fullmatch(cleaned)
    if match is None or match["sign"] not in COUNTRIES:
        return None
    plate = match["plate"].replace(" ", "").replace("-", "")
    if len(plate) > FOREIGN_MAX or not _FOREIGN_PLATE.fullmatch(plate):
        return None
    return f"{match['sign']} {plate}"


def parse_foreign_plate(text: object) -> str:
    """The stored form of a foreign plate, for issuing where the pass type allows them
    (after :func:`parse_plate` found no German plate in ``text``).

    :raises PlateError: it is no foreign plate either.
    """
    found = foreign_plate(text)
    if found is None:
        raise PlateError(NOT_FOREIGN)
    return found


def lookup_forms(text: object) -> list[str]:
    """The stored forms a typed plate can stand for, in a fixed order: every German
    reading (``D-AB 1234``, ``DA-B 1234``), then the foreign plate; empty if none."""
    forms = [plate.display for plate in readings(text)]
    foreign = foreign_plate(text)
    return [*forms, foreign] if foreign else forms


# -- parking zones, as the officer types them and permits name them ----------------------

MAX_ZONE_LENGTH = 16


def normalise_zone(zone: object, *, field: str = "zone") -> str:
    """The zone as permits name it: spaces collapsed, upper case (``" 12 a"`` is ``12 A``).

    The scanner's twin is ``normaliseZone`` in ``verifier/plateindex.js``.

    :raises InputError: (naming ``field``) not a zone name.
    """
    if not isinstance(zone, str) or not zone.strip() or len(zone) > MAX_ZONE_LENGTH:
        raise InputError("give the zone you are checking, for example 12", field=field)
    return " ".join(zone.split()).upper()
