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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from wallet.errors import InputError

__all__ = ["Table", "csv_rows", "neutralise", "open_table", "read_table", "write_table"]

MAX_CELL = 1000  # characters: no holder value comes near it
_DELIMITERS = (";", ",", "\t")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


Opener = Callable[[], IO[bytes]]
_BOM = b"\xef\xbb\xbf"
_SNIFF_CHARS = 65536  # the header line is found within this much text


@dataclass(frozen=True)
class Table:
    """A checked CSV export that is read again from its source for each pass over it.

    Nothing but the header is kept in memory, so a file of 100,000 holders costs
    what one row costs; the first read (``read_table``/``open_table``) went through
    every row, so a later pass meets no decoding or CSV error.
    """

    header: tuple[str, ...]
    delimiter: str
    encoding: str
    row_count: int
    opener: Opener = field(repr=False, compare=False)

    def rows(self) -> Iterator[tuple[int, tuple[str, ...]]]:
        """(row number as Excel shows it, cells) for each non-empty row, in file order."""
        with self.opener() as raw:
            reader = _reader(raw, self.encoding, self.delimiter)
            next(reader, None)  # the header
            for number, cells in enumerate(reader, start=2):
                if any(cell.strip() for cell in cells):
                    yield number, tuple(cells)


def _lines(text: IO[str]) -> Iterator[str]:
    for line in text:
        if "\x00" in line:
            raise InputError("this is not a CSV text file (an Excel .xlsx?): save it as CSV",
                             field="file")  # fmt: skip
        yield line


def _reader(raw: IO[bytes], encoding: str, delimiter: str) -> Iterator[list[str]]:
    # Windows-1252 defines nearly every byte; the few it leaves open become U+FFFD,
    # which the holder checks then refuse with the row and column named.
    errors = "replace" if encoding == "cp1252" else "strict"
    text = io.TextIOWrapper(raw, encoding=encoding, errors=errors, newline="")
    return csv.reader(_lines(text), delimiter=delimiter, strict=True)


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
    """The header and rows of a CSV export held in memory (an upload).

    :raises InputError: (field ``file``) not a CSV table, or more than ``max_rows`` rows.
    """
    return _table(lambda: io.BytesIO(data), max_rows=max_rows)


def open_table(path: Path, *, max_rows: int) -> Table:
    """A CSV export on disk, read row by row (memory does not grow with the file).

    :raises InputError: (field ``file``) unreadable, not a CSV table, or too many rows.
    """
    try:
        return _table(lambda: path.open("rb"), max_rows=max_rows)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", field="file") from exc


def _table(opener: Opener, *, max_rows: int) -> Table:
    with opener() as raw:
        has_bom = raw.read(3) == _BOM
    if has_bom:
        try:
            return _scan(opener, "utf-8-sig", max_rows)
        except UnicodeDecodeError as exc:
            raise InputError("the file starts like UTF-8 but is not: save it again as CSV "
                             "(UTF-8)", field="file") from exc  # fmt: skip
    try:
        return _scan(opener, "utf-8", max_rows)
    except UnicodeDecodeError:  # a German Excel's "CSV (Trennzeichen-getrennt)"
        return _scan(opener, "cp1252", max_rows)


def _scan(opener: Opener, encoding: str, max_rows: int) -> Table:
    """One pass over every row: the header, the delimiter, the count, and every error."""
    with opener() as raw:
        start = io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="")
        delimiter = _delimiter(start.read(_SNIFF_CHARS))
    count = 0
    with opener() as raw:
        reader = _reader(raw, encoding, delimiter)
        try:
            header = tuple(cell.strip() for cell in next(reader, ()))
            for number, cells in enumerate(reader, start=2):
                if not any(cell.strip() for cell in cells):
                    continue  # Excel writes empty lines at the end
                if count >= max_rows:
                    raise InputError(f"the file has more than {max_rows} rows; split it",
                                     field="file")  # fmt: skip
                if any(len(cell) > MAX_CELL for cell in cells):
                    raise InputError(f"row {number} has a cell longer than {MAX_CELL} "
                                     "characters", field="file")  # fmt: skip
                count += 1
        except csv.Error as exc:
            raise InputError(f"the file is not a readable CSV table: {exc}", field="file") from exc
    if not any(header):
        raise InputError("the file has no header row naming its columns", field="file")
    return Table(header=header, delimiter=delimiter, encoding=encoding, row_count=count,
                 opener=opener)  # fmt: skip


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
