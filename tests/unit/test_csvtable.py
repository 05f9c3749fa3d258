"""CSV as city systems export it and as Excel opens it: encodings, delimiters, formulas."""

from __future__ import annotations

import pytest

from wallet.errors import InputError
from wallet.formats.csvtable import neutralise, read_table, write_table


@pytest.mark.parametrize(
    ("data", "delimiter", "encoding"),
    [
        ("Name;Ort\r\nMüller;Köln\r\n".encode("cp1252"), ";", "cp1252"),
        (b"\xef\xbb\xbf" + "Name;Ort\r\nMüller;Köln\r\n".encode(), ";", "utf-8-sig"),
        ("Name,Ort\nMüller,Köln\n".encode(), ",", "utf-8"),
        ("Name\tOrt\nMüller\tKöln\n".encode(), "\t", "utf-8"),
    ],
)
def test_excel_and_other_exports_are_read_the_same(
    data: bytes, delimiter: str, encoding: str
) -> None:
    table = read_table(data, max_rows=10)
    assert (table.delimiter, table.encoding) == (delimiter, encoding)
    assert table.header == ("Name", "Ort")
    assert tuple(table.rows()) == ((2, ("Müller", "Köln")),)


def test_a_quoted_cell_keeps_its_line_break_and_rows_keep_excels_numbers() -> None:
    data = b'A;B\r\n1;"Am Markt 3\r\nHinterhaus"\r\n\r\n2;x\r\n'
    table = read_table(data, max_rows=10)
    assert tuple(table.rows()) == ((2, ("1", "Am Markt 3\r\nHinterhaus")), (4, ("2", "x")))


def test_a_delimiter_inside_quotes_in_the_header_does_not_fool_the_sniffer() -> None:
    table = read_table(b'"Name, Vorname";Ort\nA;B\n', max_rows=10)
    assert table.delimiter == ";" and table.header == ("Name, Vorname", "Ort")


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"PK\x03\x04\x00\x00", "save it as CSV"),
        (b"\xef\xbb\xbfName\n\xff\xfe\n", "starts like UTF-8"),
        (b"", "no header"),
        (b'Name\n"never closed\n', "not a readable CSV"),
        (b"Name\n" + b"x\n" * 11, "more than 10 rows"),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_saying_why(data: bytes, words: str) -> None:
    with pytest.raises(InputError, match=words) as caught:
        read_table(data, max_rows=10)
    assert caught.value.field == "file"


@pytest.mark.parametrize(
    "cell", ["=1+1", "+49 211", "-2", "@SUM(A1)", "\tTAB", "\rCR", '=HYPERLINK("http://x")']
)
def test_csv_injection_a_cell_excel_would_run_is_written_as_text(cell: str) -> None:
    assert neutralise(cell) == "'" + cell
    written = write_table(["h"], [[cell]]).decode("utf-8-sig")
    assert "\r\n'" in written or "\"'" in written


def test_ordinary_cells_are_written_unchanged_with_a_bom_for_excel() -> None:
    data = write_table(["Zeile", "Link"], [["2", "https://pass.example/p/abc"]])
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.decode("utf-8-sig") == "Zeile;Link\r\n2;https://pass.example/p/abc\r\n"
