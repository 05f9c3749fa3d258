"""Pass types are data: one folder per type under ``templates/passes/<type>/``.

This module reads a type's ``pass.toml``, checks it thoroughly (a typo in a
definition must fail at start-up, not at the first scan on the street) and
validates holder data against the type's field rules.
"""

from __future__ import annotations

import calendar
import re
import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from wallet.errors import HolderDataError, InputError, PassTypeError
from wallet.plates import MAX_INPUT, PlateError, foreign_plate, parse_plate

LANGUAGES = ("de", "en")
# A genuine pass whose status list is missing or out of date is amber in every
# verifier, never valid; this policy decides only whether amber admits the holder:
# "warn" does (admit=True), "fail_closed" does not.
StalePolicy = Literal["fail_closed", "warn"]
_ID_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_FIELD_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
# A letter range or class in a field's pattern: [A-Z], a-z, Ä, \w, \p, or "." (any).
_LETTERS_IN_PATTERN = re.compile(r"[A-Za-z]-[A-Za-z]|[ÄÖÜäöü]|\\w|\\p|(?<!\\)\.")
MAX_YEAR = 9000  # far beyond any pass; keeps date arithmetic away from year 9999
# A renewed pass's old token, unless the pass type says otherwise: long enough for a
# letter with the new claim link to arrive and be acted on.
DEFAULT_GRACE_DAYS = 28
FIELD_KINDS = ("text", "plate")


def has_control_characters(text: str) -> bool:
    """NUL, other control characters and lone surrogates: no holder data contains them."""
    return any(unicodedata.category(c) in ("Cc", "Cs") for c in text)


# Characters that change how text looks without being seen: controls (Cc), format
# characters (Cf: bidi overrides such as U+202E, zero-width spaces, the BOM, tag
# characters), private use (Co), unassigned code points and noncharacters (Cn,
# e.g. U+FFFF), lone surrogates (Cs), line and paragraph separators (Zl, Zp).
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cn", "Cs", "Zl", "Zp"})


ENFORCEMENT_SEPARATOR = "|"  # no plate or zone contains it
# A plate field of a type whose [enforcement] allows several plates (max_plates) holds
# them as one value: stored, signed into the token and shown as "D-AB 1234, D-CD 56".
# Typed, they may be separated by "," or ";": no plate contains either.
PLATE_SEPARATOR = ", "
_TYPED_PLATE_SEPARATORS = re.compile(r"[,;]")
MAX_PLATES = 5  # a household's cars, used alternately; more is a fleet, not a resident


def split_plates(value: str) -> list[str]:
    """The plates of a stored plate value (``D-AB 1234, D-CD 56``), in the order given."""
    return value.split(PLATE_SEPARATOR)


def split_enforcement_value(value: str) -> tuple[str, str]:
    """A stored enforcement value as (plate, the rest: the zone), the inverse of
    PassType.enforcement_values."""
    plate, _, rest = value.partition(ENFORCEMENT_SEPARATOR)
    return plate, rest


def invisible_character(text: str) -> str | None:
    """The first character of ``text`` that no holder value may contain, or None.

    ``"Erika \u202eanmretsuM"`` displays as "Erika Mustermann" but signs
    something else into the token: what staff see must be what is signed.
    """
    return next((c for c in text if unicodedata.category(c) in INVISIBLE_CATEGORIES), None)


@dataclass(frozen=True)
class Text:
    """A sentence or label in German and English."""

    de: str
    en: str

    def get(self, lang: str) -> str:
        return self.en if lang == "en" else self.de

    def to_json(self) -> dict[str, str]:
        return {"de": self.de, "en": self.en}


@dataclass(frozen=True)
class Field:
    """One holder field of a pass type."""

    name: str
    label: Text
    max_length: int
    pattern: re.Pattern[str] | None
    in_token: bool
    example: str | None = None  # a value the pattern accepts, for hints and errors
    # "plate": a German licence plate, read by wallet.plates (any case, separator,
    # dash or look-alike letter) and stored in its one spelling, D-AB 1234.
    kind: str = "text"
    # How many plates a plate field holds: the pass type's [enforcement] max_plates for
    # its enforcement plate, else 1. pattern and max_length apply to each plate.
    max_plates: int = 1
    # A plate field that also takes plates from other countries, written with their
    # country sign (NL 12-ABC-3, stored NL 12ABC3); the pattern is for German plates.
    foreign: bool = False

    @property
    def value_max_length(self) -> int:
        """The longest value the field stores: ``max_length`` for one plate or text; for a
        list, that many plates of ``max_length`` each and the separators between them."""
        if self.max_plates == 1:
            return self.max_length
        return self.max_plates * (self.max_length + len(PLATE_SEPARATOR)) - len(PLATE_SEPARATOR)

    @property
    def capitalised(self) -> bool:
        """Whether typed letters are stored as capitals: a pattern that admits letters.

        A digits-only pattern (a card number) admits none, so no hint about capitals.
        """
        if self.kind == "plate":
            return True
        return self.pattern is not None and bool(_LETTERS_IN_PATTERN.search(self.pattern.pattern))

    def clean(self, value: object) -> str:
        """Return the normalised value (NFC, whitespace collapsed), or raise naming this field.

        The same rule holds for the API, the console and the CLI, since all
        of them issue through here.
        """
        if not isinstance(value, str):
            raise HolderDataError(
                f"{self.name} must be a text value", field=self.name, kind="not_text"
            )
        bad = invisible_character(value)
        if bad is not None:
            raise HolderDataError(
                f"{self.name} contains an invisible or control character "
                f"(U+{ord(bad):04X}); type it as plain text",
                field=self.name,
                kind="invisible",
            )
        # One spelling for one name: "é" typed as e + U+0301 is stored and signed as U+00E9.
        text = " ".join(unicodedata.normalize("NFC", value).split())
        if self.pattern is not None:
            text = text.upper()
        if not text:
            raise HolderDataError(f"{self.name} must not be empty", field=self.name, kind="empty")
        if self.kind == "plate":
            return PLATE_SEPARATOR.join(self._plates(text, typed=value))
        return self._checked(text, typed=value, where=self.name)

    def _checked(self, text: str, *, typed: object, where: str, foreign: bool = False) -> str:
        """``text`` (the value, or one plate of a list) within max_length and the pattern
        (which is for German plates: a foreign one is not held to it)."""
        if len(text) > self.max_length:
            raise HolderDataError(
                f"{where} is longer than {self.max_length} characters",
                field=self.name,
                kind="too_long",
            )
        if self.pattern is not None and not foreign and not self.pattern.fullmatch(text):
            like = f" (for example {self.example})" if self.example else ""
            raise HolderDataError(
                f"{where} {typed!r} does not have the expected format{like}",
                field=self.name,
                kind="format",
            )
        return text

    def _plates(self, text: str, *, typed: object) -> list[str]:
        """The plates of a plate field, each in its stored form.

        One plate allowed: the value is read whole, so a comma or semicolon in it is
        refused (no plate has one). Several: split at "," and ";" (stray separators are
        dropped), counted before any is read, then each read, held to max_length and the
        pattern on its own with its place named in an error, and none given twice.
        """
        if self.max_plates == 1:
            plate, foreign = self._plate(text, self.name)
            return [self._checked(plate, typed=typed, where=self.name, foreign=foreign)]
        if len(text) > self.max_plates * MAX_INPUT:  # not even split: no list is this long
            raise HolderDataError(
                f"{self.name} is too long for {self.max_plates} plates",
                field=self.name,
                kind="too_long",
            )
        parts = [part.strip() for part in _TYPED_PLATE_SEPARATORS.split(text)]
        parts = [part for part in parts if part]
        if not parts:
            raise HolderDataError(f"{self.name} must not be empty", field=self.name, kind="empty")
        if len(parts) > self.max_plates:
            raise HolderDataError(
                f"{self.name} holds at most {self.max_plates} plates, separated by commas "
                f"({len(parts)} were given)",
                field=self.name,
                kind="too_many_plates",
            )
        plates: list[str] = []
        for number, part in enumerate(parts, start=1):
            where = f"{self.name} (plate {number})"
            plate, foreign = self._plate(part, where)
            plate = self._checked(plate, typed=part, where=where, foreign=foreign)
            if plate in plates:
                raise HolderDataError(
                    f"{self.name} names {plate} twice; give each plate once",
                    field=self.name,
                    kind="duplicate_plate",
                )
            plates.append(plate)
        return plates

    def _plate(self, text: str, where: str) -> tuple[str, bool]:
        """The plate's stored form, and whether it is a foreign one."""
        try:
            return parse_plate(text).display, False
        except PlateError as exc:
            german = exc
        foreign = foreign_plate(text) if self.foreign else None
        if foreign is not None:
            return foreign, True
        like = f" (for example {self.example})" if self.example else ""
        abroad = (
            " (a foreign plate: its country sign first, as NL 12-ABC-3)" if self.foreign else ""
        )
        raise HolderDataError(
            f"{where} {text[:40]!r} is not a German licence plate{abroad}: {german}{like}",
            field=self.name,
            kind="format",
        ) from None


@dataclass(frozen=True)
class PassType:
    """A kind of pass: its fields, validity, status and offline policy."""

    id: str
    label: Text
    issuer_name: Text
    fields: tuple[Field, ...]
    validity_years: int
    validity_months: int
    validity_days: int
    status_bits: int
    revocable: bool
    suspendable: bool
    stale_status: StalePolicy
    # Import from the city's own system: the fields that identify a holder there
    # (the external key), and export column headers -> field names (normalised).
    import_key: tuple[str, ...] = ()
    import_columns: Mapping[str, str] = field(default_factory=dict)
    # Renewal: where a holder renews (a city portal, or the desk, in words), and how many
    # days before expiry a consenting holder is reminded (each at most once).
    renewal_url: str = ""
    renewal_desk: Text | None = None
    reminder_days: tuple[int, ...] = ()
    # How long a renewed pass's old token stays valid when the holder has not yet
    # claimed the successor (a printed card, a phone left at home).
    renewal_grace_days: int = DEFAULT_GRACE_DAYS
    # Enforcement by plate (parking): the plate field, and the fields that with it
    # name a permit that may exist only once at a time (plate and zone). The plate
    # field may hold up to max_plates plates (a second car, used alternately).
    enforcement_plate: str | None = None
    enforcement_key: tuple[str, ...] = ()
    max_plates: int = 1

    def enforcement_values(self, holder: Mapping[str, str]) -> tuple[str, ...]:
        """The one-at-a-time keys of a cleaned holder, one per plate (``D-AB 1234|12``,
        ``D-CD 56|12``): while the permit is live no other permit may hold any of them.
        Empty for a type not enforced by plate."""
        if not self.enforcement_key:
            return ()
        plate, *rest = self.enforcement_key
        others = [holder[name] for name in rest]
        return tuple(
            ENFORCEMENT_SEPARATOR.join([one, *others]) for one in split_plates(holder[plate])
        )

    def column_field(self, header: str) -> str | None:
        """The field a column of an export fills: by the declared headers or its own name."""
        key = header_key(header)
        if key in self.import_columns:
            return self.import_columns[key]
        names = (
            {f.name: f.name for f in self.fields}
            | {header_key(f.label.de): f.name for f in self.fields}
            | {header_key(f.label.en): f.name for f in self.fields}
        )
        return names.get(key)

    def clean_holder(self, holder: Mapping[str, object]) -> dict[str, str]:
        """Validate holder data: every field present, no unknown field."""
        known = {f.name for f in self.fields}
        for name in holder:
            if name not in known:
                raise HolderDataError(
                    f"{name} is not a field of pass type {self.id}",
                    field=str(name),
                    kind="unknown_field",
                )
        cleaned: dict[str, str] = {}
        for one in self.fields:
            if one.name not in holder:
                raise HolderDataError(f"{one.name} is required", field=one.name, kind="missing")
            cleaned[one.name] = one.clean(holder[one.name])
        return cleaned

    def token_fields(self, holder: Mapping[str, str]) -> dict[str, str]:
        """The data-minimal subset of holder data that goes into the token."""
        return {f.name: holder[f.name] for f in self.fields if f.in_token}

    def valid_until(self, valid_from: datetime) -> datetime:
        """End of validity for a pass that starts at ``valid_from``.

        Calendar arithmetic: 29 February plus one year is 28 February.
        """
        months = valid_from.month - 1 + self.validity_months + 12 * self.validity_years
        year, month = valid_from.year + months // 12, months % 12 + 1
        if year > MAX_YEAR:
            raise InputError(f"a pass cannot end after the year {MAX_YEAR}", field="valid_from")
        day = min(valid_from.day, calendar.monthrange(year, month)[1])
        end = valid_from.replace(year=year, month=month, day=day)
        return end + timedelta(days=self.validity_days)

    def display(self) -> dict[str, Any]:
        """What an offline verifier needs to show and judge this type."""
        return {
            "label": self.label.to_json(),
            "issuer_name": self.issuer_name.to_json(),
            "fields": [
                {"name": f.name, "label": f.label.to_json()} for f in self.fields if f.in_token
            ],
            "status_bits": self.status_bits,
            "stale_status": self.stale_status,
        }


def header_key(header: str) -> str:
    """A column header as compared: case, spacing and a trailing colon or dot do not matter."""
    return " ".join(header.casefold().replace("\ufeff", "").split()).rstrip(":.").strip()


def _import(raw: object, fields: tuple[Field, ...], source: str) -> dict[str, Any]:
    if raw is None:
        return {"import_key": (fields[0].name,), "import_columns": {}}
    if not isinstance(raw, dict) or not set(raw) <= {"key", "columns"}:
        raise PassTypeError(f"{source}: [import] may hold key and columns only")
    names = {f.name for f in fields}
    key = raw.get("key", [fields[0].name])
    if not isinstance(key, list) or not key or not all(k in names for k in key):
        raise PassTypeError(f"{source}: [import] key must list field names")
    columns = raw.get("columns", {})
    if not isinstance(columns, dict) or not all(
        isinstance(h, str) and v in names for h, v in columns.items()
    ):
        raise PassTypeError(f"{source}: [import.columns] must map column headers to field names")
    return {
        "import_key": tuple(key),
        "import_columns": {header_key(h): v for h, v in columns.items()},
    }


def _enforcement(raw: object, fields: tuple[Field, ...], source: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not set(raw) <= {"plate", "once_per", "max_plates"}:
        raise PassTypeError(f"{source}: [enforcement] may hold plate, once_per and max_plates only")
    by_name = {f.name: f for f in fields}
    plate = raw.get("plate")
    if not isinstance(plate, str) or plate not in by_name or by_name[plate].kind != "plate":
        raise PassTypeError(f"{source}: [enforcement] plate must name a field of kind plate")
    if not by_name[plate].in_token:
        raise PassTypeError(f"{source}: the enforcement plate must be in the token")
    once_per = raw.get("once_per", [])
    if not isinstance(once_per, list) or not all(n in by_name and n != plate for n in once_per):
        raise PassTypeError(f"{source}: [enforcement] once_per must list other field names")
    most = raw.get("max_plates", 1)
    if not isinstance(most, int) or isinstance(most, bool) or not 1 <= most <= MAX_PLATES:
        raise PassTypeError(
            f"{source}: [enforcement] max_plates must be a whole number from 1 to {MAX_PLATES}"
        )
    return {"enforcement_plate": plate, "enforcement_key": (plate, *once_per), "max_plates": most}


def _renewal(raw: object, source: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not set(raw) <= {"url", "desk", "reminder_days", "grace_days"}:
        raise PassTypeError(
            f"{source}: [renewal] may hold url, desk, reminder_days and grace_days only"
        )
    grace = raw.get("grace_days", DEFAULT_GRACE_DAYS)
    if not isinstance(grace, int) or isinstance(grace, bool) or not 0 <= grace <= 365:
        raise PassTypeError(f"{source}: [renewal] grace_days must be days from 0 to 365")
    url = raw.get("url", "")
    if not isinstance(url, str) or (url and not url.startswith("https://")):
        raise PassTypeError(f"{source}: [renewal] url must be an https:// address")
    days = raw.get("reminder_days", [])
    if not isinstance(days, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 365 for d in days
    ):
        raise PassTypeError(f"{source}: [renewal] reminder_days must be days from 1 to 365")
    desk = _text(raw["desk"], f"{source}: [renewal] desk") if "desk" in raw else None
    if days and not url and desk is None:
        raise PassTypeError(f"{source}: reminders need a renewal url or desk to point to")
    return {
        "renewal_url": url,
        "renewal_desk": desk,
        "reminder_days": tuple(sorted(set(days), reverse=True)),
        "renewal_grace_days": grace,
    }


def _text(raw: object, where: str) -> Text:
    if not isinstance(raw, dict) or set(raw) != set(LANGUAGES):
        raise PassTypeError(f"{where} needs exactly the languages de and en")
    if not all(isinstance(raw[lang], str) and raw[lang].strip() for lang in LANGUAGES):
        raise PassTypeError(f"{where} must be non-empty text in de and en")
    return Text(de=raw["de"], en=raw["en"])


def _is_plate(text: str) -> bool:
    try:
        return parse_plate(text).display == text
    except PlateError:
        return False


def _field(raw: object, where: str) -> Field:
    if not isinstance(raw, dict):
        raise PassTypeError(f"{where} must be a table")
    known = {"name", "label", "pattern", "max_length", "in_token", "example", "kind", "foreign"}
    unknown = set(raw) - known
    if unknown:
        raise PassTypeError(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
    name = raw.get("name")
    if not isinstance(name, str) or not _FIELD_RE.fullmatch(name):
        raise PassTypeError(f"{where}.name must be lower-case letters, digits and _")
    max_length = raw.get("max_length")
    if not isinstance(max_length, int) or isinstance(max_length, bool) or not 0 < max_length <= 200:
        raise PassTypeError(f"{where}.max_length must be a whole number from 1 to 200")
    pattern_text = raw.get("pattern")
    pattern = None
    if pattern_text is not None:
        if not isinstance(pattern_text, str):
            raise PassTypeError(f"{where}.pattern must be a regular expression")
        try:
            pattern = re.compile(pattern_text)
        except re.error as exc:
            raise PassTypeError(f"{where}.pattern is not a valid expression: {exc}") from exc
    kind = raw.get("kind", "text")
    if kind not in FIELD_KINDS:
        raise PassTypeError(f"{where}.kind must be one of {', '.join(FIELD_KINDS)}")
    in_token = raw.get("in_token", False)
    if not isinstance(in_token, bool):
        raise PassTypeError(f"{where}.in_token must be true or false")
    foreign = raw.get("foreign", False)
    if not isinstance(foreign, bool) or (foreign and kind != "plate"):
        raise PassTypeError(f"{where}.foreign must be true or false, on a field of kind plate")
    example = raw.get("example")
    if example is not None and (
        not isinstance(example, str)
        or not example.strip()
        or len(example) > max_length
        or (pattern is not None and not pattern.fullmatch(example))
        or (kind == "plate" and not _is_plate(example))
    ):
        # A hint that shows a value the form would refuse is worse than none.
        raise PassTypeError(f"{where}.example must be a value the field accepts")
    return Field(
        name=name,
        label=_text(raw.get("label"), f"{where}.label"),
        max_length=max_length,
        pattern=pattern,
        in_token=in_token,
        example=example,
        kind=kind,
        foreign=foreign,
    )


def parse_pass_type(raw: Mapping[str, Any], *, source: str) -> PassType:
    """Build a pass type from its parsed definition, refusing anything odd."""
    known = {
        "id", "label", "issuer_name", "validity", "status_bits", "revocable",
        "suspendable", "stale_status", "fields", "import", "renewal", "enforcement",
    }  # fmt: skip
    unknown = set(raw) - known
    if unknown:
        raise PassTypeError(f"{source}: unknown keys: {', '.join(sorted(unknown))}")
    type_id = raw.get("id")
    if not isinstance(type_id, str) or not _ID_RE.fullmatch(type_id):
        raise PassTypeError(f"{source}: id must be lower-case letters, digits, - and _")
    validity = raw.get("validity")
    if not isinstance(validity, dict) or not set(validity) <= {"years", "months", "days"}:
        raise PassTypeError(f"{source}: validity must be a table of years, months, days")
    amounts = {k: validity.get(k, 0) for k in ("years", "months", "days")}
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in amounts.values()):
        raise PassTypeError(f"{source}: validity amounts must be whole numbers >= 0")
    if not any(amounts.values()) or amounts["years"] > 10:
        raise PassTypeError(f"{source}: validity must be longer than 0 and at most 10 years")
    bits = raw.get("status_bits")
    suspendable = raw.get("suspendable", False)
    revocable = raw.get("revocable", True)
    if bits not in (1, 2) or isinstance(bits, bool):
        raise PassTypeError(f"{source}: status_bits must be 1 or 2")
    if not isinstance(suspendable, bool) or not isinstance(revocable, bool):
        raise PassTypeError(f"{source}: revocable and suspendable must be true or false")
    if suspendable and bits < 2:
        raise PassTypeError(f"{source}: a suspendable type needs status_bits = 2")
    stale = raw.get("stale_status")
    if stale not in ("fail_closed", "warn"):
        raise PassTypeError(f'{source}: stale_status must be "fail_closed" or "warn"')
    raw_fields = raw.get("fields")
    if not isinstance(raw_fields, list) or not raw_fields:
        raise PassTypeError(f"{source}: a pass type needs at least one [[fields]] entry")
    fields = tuple(_field(f, f"{source}: fields[{i}]") for i, f in enumerate(raw_fields))
    if len({f.name for f in fields}) != len(fields):
        raise PassTypeError(f"{source}: field names must be unique")
    enforcement = _enforcement(raw.get("enforcement"), fields, source)
    if enforcement:  # the plate field holds as many plates as the type allows
        fields = tuple(
            replace(f, max_plates=enforcement["max_plates"])
            if f.name == enforcement["enforcement_plate"]
            else f
            for f in fields
        )
    return PassType(
        id=type_id,
        label=_text(raw.get("label"), f"{source}: label"),
        issuer_name=_text(raw.get("issuer_name"), f"{source}: issuer_name"),
        fields=fields,
        validity_years=amounts["years"],
        validity_months=amounts["months"],
        validity_days=amounts["days"],
        status_bits=bits,
        revocable=revocable,
        suspendable=suspendable,
        stale_status=stale,
        **_import(raw.get("import"), fields, source),
        **enforcement,
        **_renewal(raw.get("renewal"), source),
    )


def load_pass_types(folder: Path) -> dict[str, PassType]:
    """Read every ``<folder>/<type>/pass.toml``; the folder name must match the id."""
    if not folder.is_dir():
        raise PassTypeError(f"pass type folder {folder} does not exist")
    types: dict[str, PassType] = {}
    for definition in sorted(folder.glob("*/pass.toml")):
        try:
            raw = tomllib.loads(definition.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise PassTypeError(f"{definition}: cannot be read: {exc}") from exc
        pass_type = parse_pass_type(raw, source=str(definition))
        if pass_type.id != definition.parent.name:
            raise PassTypeError(f"{definition}: id {pass_type.id!r} differs from its folder name")
        types[pass_type.id] = pass_type
    if not types:
        raise PassTypeError(f"no pass types found in {folder} (expected <type>/pass.toml)")
    return types
