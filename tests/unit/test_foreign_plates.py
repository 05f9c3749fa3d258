"""Plates from other countries, where a pass type's plate field allows them (issue 11)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import PASS_TYPES
from tests.unit.test_passtypes import base_definition
from wallet.errors import HolderDataError, PassTypeError
from wallet.passtypes import PassType, parse_pass_type


def plate_type(**field: Any) -> PassType:
    plate = {"name": "plate", "label": {"de": "K", "en": "P"}, "max_length": 14,
             "kind": "plate", "in_token": True, **field}  # fmt: skip
    return parse_pass_type({**base_definition(), "fields": [plate]}, source="pool")


def test_a_foreign_plate_with_its_country_sign_is_stored_without_separators() -> None:
    cleaned = PASS_TYPES["parking"].clean_holder({"plate": "nl 12-abc-3", "zone": "12"})
    assert cleaned["plate"] == "NL 12ABC3"


def test_a_foreign_plate_is_refused_where_the_type_does_not_allow_it() -> None:
    with pytest.raises(HolderDataError) as refused:
        plate_type().clean_holder({"plate": "NL 12-ABC-3"})
    assert refused.value.field == "plate" and "not a German licence plate" in str(refused.value)
    assert "country sign" not in str(refused.value)  # this type takes no foreign plates


def test_a_mistyped_german_plate_is_not_taken_for_a_foreign_one() -> None:
    allowing = plate_type(foreign=True)
    for typed in ("D-AB 12345", "AB-123-CD", "DAB1234"):  # five digits, no sign, no split
        with pytest.raises(HolderDataError) as refused:
            allowing.clean_holder({"plate": typed})
        assert "country sign first" in str(refused.value), typed


def test_a_plate_that_reads_either_way_is_german_unless_a_colon_says_foreign() -> None:
    allowing = plate_type(foreign=True)
    assert allowing.clean_holder({"plate": "PL WA 1234"})["plate"] == "PL-WA 1234"  # Plauen
    assert allowing.clean_holder({"plate": "PL: WA 1234"})["plate"] == "PL WA1234"  # Poland


@pytest.mark.parametrize("field", [{"foreign": "yes"}, {"kind": "text", "foreign": True}])
def test_foreign_is_a_flag_of_plate_fields_only(field: dict[str, Any]) -> None:
    with pytest.raises(PassTypeError, match="foreign"):
        plate_type(**field)
