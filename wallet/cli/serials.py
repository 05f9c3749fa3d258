"""Serials from the command line and from files, and the times commands take."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import IO

import click

from wallet.errors import InputError

# Serials are random base64url, so one in 64 starts with "-": these commands have
# no short options, and a word that is no option of theirs is taken as the serial.
SERIAL_COMMAND = {"ignore_unknown_options": True}


def aware_time(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """An ISO 8601 time with a zone: 2026-12-01T00:00:00+01:00 or ...Z."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time like 2026-12-01T00:00:00+01:00"
        ) from None
    if parsed.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no time zone: add one, e.g. {value}+01:00")
    return parsed


def file_name(handle: IO[bytes]) -> str:
    name = getattr(handle, "name", "-")
    return "standard input" if name in ("-", "<stdin>") or not isinstance(name, str) else name


def _lines(handle: IO[bytes]) -> Iterator[str]:
    """The file's lines as text; a line that is not UTF-8 is named, not a traceback."""
    for number, raw in enumerate(handle, start=1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise InputError(
                f"{file_name(handle)} is not UTF-8 text (line {number}): save it as UTF-8 "
                "with one serial on each line",
                field="from_file",
            ) from None


def read_serials(handle: IO[bytes]) -> tuple[list[str], int]:
    """Serials in file order without repeats; blank lines and # comments are skipped."""
    seen: dict[str, None] = {}
    duplicates = 0
    for line in _lines(handle):
        serial = line.split("#", 1)[0].strip()
        if not serial:
            continue
        if serial in seen:
            duplicates += 1
        seen[serial] = None
    return list(seen), duplicates
