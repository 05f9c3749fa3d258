"""How every ``wallet ... list`` prints: a table for people, JSON for scripts.

One place decides the shapes, so the listing commands stay alike: ``--json``
prints one JSON array (or, with ``json_lines``, one object per line, which
``jq`` and log shippers read as a stream); the table has a header row and
fixed-width columns, the last one unpadded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import click

Row = TypeVar("Row")

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@dataclass(frozen=True)
class Column(Generic[Row]):
    title: str
    width: int
    cell: Callable[[Row], str]


def print_rows(
    rows: Sequence[Row],
    *,
    as_json: bool,
    to_json: Callable[[Row], Mapping[str, Any]],
    columns: Sequence[Column[Row]],
    empty: str,
    json_lines: bool = False,
    header: bool = True,
) -> None:
    """Print ``rows``; ``empty`` says what to do when there are none (tables only)."""
    if as_json:
        if json_lines:
            for row in rows:
                click.echo(json.dumps(to_json(row), ensure_ascii=False))
        else:
            click.echo(json.dumps([to_json(r) for r in rows], indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo(empty)
        return
    lines = [[c.title for c in columns]] if header else []
    lines += [[c.cell(row) for c in columns] for row in rows]
    for cells in lines:
        padded = [f"{cell:{c.width}}" for cell, c in zip(cells[:-1], columns, strict=False)]
        click.echo(" ".join([*padded, cells[-1]]).rstrip())


def when(moment: Any) -> str:
    """A table cell for an optional UTC time."""
    return f"{moment:%Y-%m-%d %H:%M}" if moment is not None else "-"
