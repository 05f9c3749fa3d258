"""The page catalogs: every message has its entry, and German (first) is never left blank."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

CATALOGS = Path(__file__).resolve().parents[2] / "wallet" / "translations"


def catalog(lang: str) -> Catalog:
    # abort_invalid: an entry without its msgstr is an error, not a warning and a gap
    with (CATALOGS / lang / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return read_po(handle, abort_invalid=True)


@pytest.mark.parametrize("lang", ["de", "en"])
def test_every_message_has_its_msgstr_line(lang: str) -> None:
    """A merge once dropped two msgstr lines: Babel then warned and left the text out."""
    assert len(catalog(lang)) > 100


def test_german_is_never_left_blank() -> None:
    blank = [m.id for m in catalog("de") if m.id and not m.string]
    assert blank == []


def test_both_catalogs_know_the_same_messages() -> None:
    ids = {lang: {m.id for m in catalog(lang) if m.id} for lang in ("de", "en")}
    assert ids["de"] ^ ids["en"] == set()
