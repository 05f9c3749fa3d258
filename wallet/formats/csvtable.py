"""CSV files as a city's systems export them, read and written for Excel.

Reading: UTF-8 (with or without a byte order mark) or else Windows-1252, the
encoding of a German Excel's "CSV (Trennzeichen-getrennt)"; the delimiter is
whichever of ``;`` ``,`` and tab the header line uses; quoted fields may hold
line breaks. Rows are numbered as Excel shows them (the header is row 1), so a
report's "row 7" is the row staff find at 7.

Writing: UTF-8 with a byte order mark and ``;``, which Excel opens correctly,
and no cell that Excel would run as a formula (a leading ``=``, ``+``, ``-``,
``@``, tab or carriage return gets a ``'`` before it; OWASP's CSV injection rule).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from wallet.errors import InputError

__all__ = ["Table", "csv_rows", "neutralise", "read_table", "write_table"]

MAX_CELL = 1000  # characters: no holder value comes near it
_DELIMITERS = (";", ",", "\t")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[int, tuple[str, ...]], ...]  # (row number as Excel shows it, cells)
    delimiter: str
    encoding: str


def _decode(data: bytes) -> tuple[str, str]:
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="strict"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace"), "cp1252"


def _delimiter(text: str) -> str:
    """The delimiter of the header line (outside quotes), ``;`` when there is no telling."""
    first, quoted = [], False
    for char in text:
        if char == '"':
            quoted = not quoted
        elif char in "\r\n" and not quoted:
            break
        first.append(char)
    line = "".join(first)
    counts = {d: line.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ";"


def read_table(data: bytes, *, max_rows: int) -> Table:
    """The header and rows of a CSV export.

    :raises InputError: (field ``file``) not a CSV table, or more than ``max_rows`` rows.
    """
    try:
        text, encoding = _decode(data)
    except UnicodeDecodeError as exc:
        raise InputError("the file starts like UTF-8 but is not: save it again as CSV "
                         "(UTF-8)", field="file") from exc  # fmt: skip
    if "\x00" in text:
        raise InputError("this is not a CSV text file (an Excel .xlsx?): save it as CSV",
                         field="file")  # fmt: skip
    delimiter = _delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = tuple(cell.strip() for cell in next(reader, ()))
        rows: list[tuple[int, tuple[str, ...]]] = []
        for number, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue  # Excel writes empty lines at the end
            if len(rows) >= max_rows:
                raise InputError(f"the file has more than {max_rows} rows; split it",
                                 field="file")  # fmt: skip
            if any(len(cell) > MAX_CELL for cell in cells):
                raise InputError(f"row {number} has a cell longer than {MAX_CELL} characters",
                                 field="file")  # fmt: skip
            rows.append((number, tuple(cells)))
    except csv.Error as exc:
        raise InputError(f"the file is not a readable CSV table: {exc}", field="file") from exc
    if not any(header):
        raise InputError("the file has no header row naming its columns", field="file")
    return Table(header=header, rows=tuple(rows), delimiter=delimiter, encoding=encoding)


def neutralise(cell: str) -> str:
    """A cell Excel shows as text, never runs as a formula."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def csv_rows(rows: Iterable[Sequence[str]]) -> bytes:
    """Rows for a file begun with :func:`write_table` (``;``, UTF-8, neutralised)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    for row in rows:
        writer.writerow([neutralise(cell) for cell in row])
    return out.getvalue().encode("utf-8")


def write_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> bytes:
    """A CSV file for Excel: UTF-8 with BOM, ``;``, every cell neutralised."""
    return b"\xef\xbb\xbf" + csv_rows([header]) + csv_rows(rows)
