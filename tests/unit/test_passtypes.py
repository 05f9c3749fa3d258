"""Pass types are data; their definitions and holder data are checked strictly."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.factories import PASS_TYPES
from wallet.errors import HolderDataError, PassTypeError
from wallet.passtypes import PassType, load_pass_types, parse_pass_type


def test_reference_types_are_shipped() -> None:
    library, parking = PASS_TYPES["library"], PASS_TYPES["parking"]
    assert (library.validity_years, library.status_bits, library.stale_status) == (2, 1, "warn")
    assert (parking.validity_years, parking.status_bits, parking.stale_status) == (
        1,
        2,
        "fail_closed",
    )
    assert parking.suspendable and not library.suspendable
    assert library.label.de == "Bibliotheksausweis" and parking.label.en
    assert [f.name for f in library.fields] == ["card_number", "name"]


def test_valid_until_adds_calendar_years() -> None:
    start = datetime(2028, 2, 29, 12, tzinfo=UTC)
    assert PASS_TYPES["library"].valid_until(start) == datetime(2030, 2, 28, 12, tzinfo=UTC)
    assert PASS_TYPES["parking"].valid_until(start) == datetime(2029, 2, 28, 12, tzinfo=UTC)


def test_holder_data_is_normalised() -> None:
    cleaned = PASS_TYPES["parking"].clean_holder({"plate": "  d-ab   1234 ", "zone": "12"})
    assert cleaned == {"plate": "D-AB 1234", "zone": "12"}


@pytest.mark.parametrize(
    ("type_id", "holder", "field"),
    [
        ("library", {"card_number": "12345", "name": "Erika"}, "card_number"),
        ("library", {"card_number": "1234567890123", "name": "Erika"}, "card_number"),
        ("library", {"card_number": "100200300400"}, "name"),
        ("library", {"card_number": "100200300400", "name": ""}, "name"),
        ("library", {"card_number": "100200300400", "name": "x" * 81}, "name"),
        ("library", {"card_number": 100200300400, "name": "Erika"}, "card_number"),
        ("library", {"card_number": "100200300400", "name": "E", "admin": "1"}, "admin"),
        ("parking", {"plate": "DAB1234", "zone": "12"}, "plate"),
        ("parking", {"plate": "D-AB 1234", "zone": "12345"}, "zone"),
    ],
)
def test_bad_holder_data_names_the_field(type_id: str, holder: dict[str, Any], field: str) -> None:
    with pytest.raises(HolderDataError) as info:
        PASS_TYPES[type_id].clean_holder(holder)
    assert info.value.field == field
    assert field in info.value.message


def base_definition() -> dict[str, Any]:
    return {
        "id": "pool",
        "label": {"de": "Schwimmbad", "en": "Swimming pool"},
        "issuer_name": {"de": "Bäder", "en": "Pools"},
        "validity": {"months": 6},
        "status_bits": 1,
        "stale_status": "warn",
        "fields": [{"name": "name", "label": {"de": "Name", "en": "Name"}, "max_length": 40}],
    }


def write_pool(folder: Path) -> None:
    folder.mkdir()
    (folder / "pass.toml").write_text(
        'id = "pool"\nstatus_bits = 1\nstale_status = "warn"\n'
        'label = { de = "Schwimmbad", en = "Swimming pool" }\n'
        'issuer_name = { de = "Bäder", en = "Pools" }\nvalidity = { months = 6 }\n'
        '[[fields]]\nname = "name"\nlabel = { de = "Name", en = "Name" }\nmax_length = 40\n'
        "in_token = true\n",
        encoding="utf-8",
    )


def test_a_new_type_is_only_data(tmp_path: Path) -> None:
    write_pool(tmp_path / "pool")
    types = load_pass_types(tmp_path)
    assert list(types) == ["pool"]
    start = datetime(2026, 8, 31, tzinfo=UTC)
    assert types["pool"].valid_until(start) == datetime(2027, 2, 28, tzinfo=UTC)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": "Pool!"}, "id must be"),
        ({"typo": 1}, "unknown keys"),
        ({"validity": {"weeks": 2}}, "validity"),
        ({"validity": {"years": 11}}, "at most 10 years"),
        ({"validity": {"days": 0}}, "longer than 0"),
        ({"status_bits": 3}, "status_bits"),
        ({"suspendable": True}, "needs status_bits = 2"),
        ({"stale_status": "maybe"}, "stale_status"),
        ({"fields": []}, "at least one"),
        ({"label": {"de": "Nur Deutsch"}}, "de and en"),
        ({"fields": [{"name": "n", "label": {"de": "N", "en": "N"}, "max_length": 0}]}, "1 to"),
        (
            {
                "fields": [
                    {"name": "n", "label": {"de": "N", "en": "N"}, "max_length": 5, "pattern": "("}
                ]
            },
            "not a valid expression",
        ),
    ],
)
def test_broken_definitions_fail_at_load_with_a_reason(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(PassTypeError, match=message):
        parse_pass_type({**base_definition(), **change}, source="pool/pass.toml")


def test_folder_name_must_match_id(tmp_path: Path) -> None:
    write_pool(tmp_path / "swim")
    with pytest.raises(PassTypeError, match="differs from its folder name"):
        load_pass_types(tmp_path)


def test_unreadable_toml_is_reported(tmp_path: Path) -> None:
    (tmp_path / "pool").mkdir()
    (tmp_path / "pool" / "pass.toml").write_text("id = [", encoding="utf-8")
    with pytest.raises(PassTypeError, match="cannot be read"):
        load_pass_types(tmp_path)
    with pytest.raises(PassTypeError, match="does not exist"):
        load_pass_types(tmp_path / "absent")


def _field_with(**keys: Any) -> dict[str, Any]:
    return {"fields": [{"name": "n", "label": {"de": "N", "en": "N"}, "max_length": 9, **keys}]}


@pytest.mark.parametrize(
    "example",
    ["D-AB 12345", "", 12, "1234567890"],  # refused by the pattern, empty, not text, too long
)
def test_example_the_field_would_refuse_fails_at_load(example: object) -> None:
    """A hint that shows a value the form refuses is worse than no hint."""
    change = _field_with(pattern="[A-Z]-[A-Z]{2} [0-9]{1,4}", example=example)
    with pytest.raises(PassTypeError, match="example"):
        parse_pass_type({**base_definition(), **change}, source="pool/pass.toml")


def test_example_and_capitals_of_the_shipped_fields() -> None:
    """The plate's format is shown by example; a digits-only card number has no capitals."""
    plate, zone = PASS_TYPES["parking"].fields
    card_number, name = PASS_TYPES["library"].fields
    assert (plate.example, plate.capitalised) == ("D-AB 1234", True)
    assert zone.capitalised is True
    assert (card_number.example, card_number.capitalised) == ("100200300400", False)
    assert (name.example, name.capitalised) == (None, False)


def test_format_error_names_an_example() -> None:
    with pytest.raises(HolderDataError, match=r"\(for example D-AB 1234\)"):
        PASS_TYPES["parking"].clean_holder({"plate": "not a plate", "zone": "1"})


INVISIBLE = {
    "bidi override": "Erika \u202eanmretsuM",
    "zero-width space": "Erika\u200b Mustermann",
    "byte order mark": "\ufeffErika Mustermann",
    "line separator": "Erika\u2028Mustermann",
    "paragraph separator": "Erika\u2029Mustermann",
    "tag characters": "Erika Mustermann\U000e0041\U000e007f",
    "noncharacter": "Erika Mustermann\uffff",
    "unassigned code point": "Erika \U000e0080Mustermann",
    "private use": "Erika \ue000Mustermann",
    "next line control": "Erika\x85Mustermann",
    "left-to-right mark": "\u200eErika Mustermann",
}


@pytest.mark.parametrize("name", list(INVISIBLE.values()), ids=list(INVISIBLE))
def test_bidi_override_and_invisible_characters_in_holder_data_are_refused(name: str) -> None:
    with pytest.raises(HolderDataError) as info:
        PASS_TYPES["library"].clean_holder({"card_number": "100200300400", "name": name})
    assert info.value.field == "name"
    assert "invisible or control character" in info.value.message


def test_holder_data_is_normalised_to_nfc() -> None:
    decomposed = "Rene\u0301 Mu\u0308ller"  # e + combining acute, u + combining diaeresis
    cleaned = PASS_TYPES["library"].clean_holder(
        {"card_number": "100200300400", "name": decomposed}
    )
    assert cleaned["name"] == "Ren\u00e9 M\u00fcller"
    assert len(cleaned["name"]) == len(decomposed) - 2


def test_visible_letters_of_other_scripts_stay_allowed() -> None:
    for name in ("Zoë Ødegaard", "Ğülşen Çelik", "Łukasz Żółć", "Αλέξης", "Надежда"):
        cleaned = PASS_TYPES["library"].clean_holder({"card_number": "100200300400", "name": name})
        assert cleaned["name"] == name


@pytest.mark.parametrize(
    ("renewal", "words"),
    [
        ({"url": "http://portal.example"}, "https://"),
        ({"reminder_days": [30]}, "renewal url or desk"),
        ({"url": "https://portal.example", "reminder_days": [0]}, "1 to 365"),
        ({"url": "https://portal.example", "when": 3}, "url, desk, reminder_days and grace"),
        ({"url": "https://portal.example", "grace_days": -1}, "grace_days must be days from 0"),
        ({"url": "https://portal.example", "grace_days": True}, "grace_days must be days from 0"),
        ({"url": "https://portal.example", "grace_days": 400}, "grace_days must be days from 0"),
    ],
)
def test_a_renewal_section_that_cannot_work_is_refused(renewal: dict[str, Any], words: str) -> None:
    with pytest.raises(PassTypeError, match=words):
        parse_pass_type({**base_definition(), "renewal": renewal}, source="pool")


def test_the_grace_period_of_a_renewal_is_read_and_defaults_to_four_weeks() -> None:
    plain = parse_pass_type(base_definition(), source="pool")
    assert plain.renewal_grace_days == 28
    short = parse_pass_type(
        {**base_definition(), "renewal": {"desk": {"de": "Kasse", "en": "Desk"}, "grace_days": 3}},
        source="pool",
    )
    assert short.renewal_grace_days == 3


@pytest.mark.parametrize(
    ("imported", "words"),
    [
        ({"key": ["nonsense"]}, "key must list field names"),
        ({"columns": {"Nummer": "nonsense"}}, "column headers to field names"),
        ({"other": 1}, "key and columns only"),
    ],
)
def test_an_import_mapping_to_unknown_fields_is_refused(
    imported: dict[str, Any], words: str
) -> None:
    with pytest.raises(PassTypeError, match=words):
        parse_pass_type({**base_definition(), "import": imported}, source="pool")


def test_export_headers_map_by_declared_name_label_or_field_name() -> None:
    library = PASS_TYPES["library"]
    assert library.column_field(" ausweis-nr: ") == "card_number"
    assert library.column_field("Name, Vorname") == "name"
    assert library.column_field("card_number") == "card_number"
    assert library.column_field("Card number") == "card_number"  # the English label
    assert library.column_field("Bemerkung") is None


def test_a_plate_field_reads_every_spelling_and_stores_one() -> None:
    parking = PASS_TYPES["parking"]
    for typed in ("d ab 1234", "D\u2013AB 1234", "D-AB1234", "  d-ab   1234 "):
        assert parking.clean_holder({"plate": typed, "zone": "12"})["plate"] == "D-AB 1234"


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("DAB1234", "write where the district code ends: D-AB 1234 or DA-B 1234"),
        ("D-AB 0123", "does not start with 0"),
        ("not a plate", "not a German licence plate"),
    ],
)
def test_a_value_that_is_no_german_plate_is_refused_with_the_field_named(
    typed: str, words: str
) -> None:
    parking = PASS_TYPES["parking"]
    with pytest.raises(HolderDataError, match=words) as refused:
        parking.clean_holder({"plate": typed, "zone": "12"})
    assert (refused.value.field, refused.value.kind) == ("plate", "format")


def test_an_unknown_field_kind_or_a_plate_example_that_is_none_is_refused() -> None:
    fields = base_definition()["fields"]
    for change, words in (({"kind": "iban"}, "kind must be one of"),
                          ({"kind": "plate", "example": "ABC"}, "example must be")):  # fmt: skip
        broken = {**base_definition(), "fields": [{**fields[0], **change}, *fields[1:]]}
        with pytest.raises(PassTypeError, match=words):
            parse_pass_type(broken, source="pool")


# -- a permit for a second car: several plates in one plate field (issue 11) -------------


def two_car_type(**enforcement: Any) -> PassType:
    """A parking type like the city's, whose permit may hold a second car."""
    plate = {"name": "plate", "label": {"de": "Kennzeichen", "en": "Plate"}, "kind": "plate",
             "pattern": "[A-ZÄÖÜ]{1,3}-[A-Z]{1,2} [1-9][0-9]{0,3}", "max_length": 12,
             "in_token": True}  # fmt: skip
    zone = {"name": "zone", "label": {"de": "Zone", "en": "Zone"}, "max_length": 4}
    rules = {"plate": "plate", "once_per": ["zone"], "max_plates": 2, **enforcement}
    definition = {**base_definition(), "fields": [plate, zone], "enforcement": rules}
    return parse_pass_type(definition, source="two-cars")


def plates_of(pass_type: PassType, typed: str) -> str:
    return pass_type.clean_holder({"plate": typed, "zone": "12"})["plate"]


def test_two_plates_are_stored_in_one_spelling_however_they_are_separated() -> None:
    two_cars = two_car_type()
    for typed in ("d ab 1234, d-cd56", "D-AB 1234;D CD 56", " D-AB 1234 ; d-cd 56 ,"):
        assert plates_of(two_cars, typed) == "D-AB 1234, D-CD 56", typed
    assert plates_of(two_cars, "D-AB 1234") == "D-AB 1234"  # one car is fine too
    assert two_cars.enforcement_values({"plate": "D-AB 1234, D-CD 56", "zone": "12"}) == (
        "D-AB 1234|12", "D-CD 56|12",
    )  # fmt: skip


def test_more_plates_than_the_type_allows_are_refused_with_the_field_and_the_limit_named() -> None:
    with pytest.raises(HolderDataError) as refused:
        plates_of(two_car_type(), "D-AB 1, D-AB 2, D-AB 3")
    assert (refused.value.field, refused.value.kind) == ("plate", "too_many_plates")
    assert "at most 2 plates" in refused.value.message


def test_one_car_twice_in_a_permit_is_refused_in_any_spelling() -> None:
    with pytest.raises(HolderDataError, match="names D-AB 1234 twice") as refused:
        plates_of(two_car_type(), "D-AB 1234, d ab1234")
    assert refused.value.kind == "duplicate_plate"


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("D-AB 1234, DAB99", r"plate \(plate 2\) 'DAB99' is not a German licence plate"),
        ("D-AB 12E, D-CD 56", r"plate \(plate 1\) 'D-AB 12E' does not have the expected"),
    ],
)
def test_each_plate_is_read_and_held_to_the_pattern_and_an_error_names_which(
    typed: str, words: str
) -> None:
    with pytest.raises(HolderDataError, match=words) as refused:
        plates_of(two_car_type(), typed)
    assert (refused.value.field, refused.value.kind) == ("plate", "format")


def test_a_type_for_one_car_refuses_a_list_as_no_plate() -> None:
    one_car = two_car_type(max_plates=1)
    with pytest.raises(HolderDataError, match="not a German licence plate") as refused:
        plates_of(one_car, "D-AB 1234, D-CD 56")
    assert refused.value.field == "plate"
    plate = one_car.fields[0]
    assert (plate.max_plates, plate.value_max_length) == (1, 12)


def test_max_length_counts_each_plate_and_the_value_holds_them_all() -> None:
    plate = two_car_type().fields[0]
    assert (plate.max_plates, plate.max_length, plate.value_max_length) == (2, 12, 26)
    with pytest.raises(HolderDataError, match="too long for 2 plates") as refused:
        plates_of(two_car_type(), "D-AB 1," + " ," * 300)  # never split nor read
    assert refused.value.kind == "too_long"


@pytest.mark.parametrize("most", [0, 6, "2", True, 1.5])
def test_max_plates_must_be_a_small_whole_number(most: object) -> None:
    with pytest.raises(PassTypeError, match="max_plates must be a whole number from 1 to 5"):
        two_car_type(max_plates=most)
