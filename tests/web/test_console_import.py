"""The console's import page: upload, see the check, download the result."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.web.test_console import csrf_token, login, page_text

pytestmark = pytest.mark.usefixtures("quick_password_hashes")

SAMPLE = (Path(__file__).resolve().parents[1] / "data" / "library_export_excel.csv").read_bytes()


@pytest.fixture
def issuer(client: FlaskClient, make_user: Callable[..., str]) -> FlaskClient:
    make_user("anna", "issuer")
    assert login(client, "anna").status_code == 302
    return client


def upload(client: FlaskClient, data: bytes, action: str, **extra: str) -> TestResponse:
    token = csrf_token(client.get("/console/import").get_data(as_text=True))
    form = {"csrf_token": token, "type": "library", "action": action,
            "file": (io.BytesIO(data), "export.csv"), **extra}  # fmt: skip
    return client.post("/console/import", data=form, content_type="multipart/form-data")


def test_staff_check_a_file_and_see_the_report(issuer: FlaskClient) -> None:
    answer = upload(issuer, SAMPLE, "check")
    assert answer.status_code == 200
    text = page_text(answer.get_data(as_text=True))
    assert "4 Zeilen: 4 auszustellen, 0 bereits ausgestellt, 0 mit Fehlern." in text
    assert "Nicht verwendete Spalten: Bemerkung" in text


def test_problems_are_listed_by_row_and_column_and_nothing_is_issued(issuer: FlaskClient) -> None:
    answer = upload(issuer, b"Ausweisnummer;Name\r\n12;Erika\r\n", "issue")
    assert answer.status_code == 422
    text = page_text(answer.get_data(as_text=True))
    assert "2 Ausweisnummer Ausweisnummer hat nicht das erwartete Format" in text


def test_issuing_downloads_the_result_with_the_claim_links(issuer: FlaskClient) -> None:
    answer = upload(issuer, SAMPLE, "issue")
    assert answer.status_code == 200
    assert answer.headers["Content-Disposition"].startswith("attachment")
    text = answer.get_data().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))
    assert rows[0][:3] == ["Zeile", "Schlüssel", "Status"]
    assert [r[2] for r in rows[1:]] == ["ausgestellt"] * 4 and all("/p/" in r[4] for r in rows[1:])
    again = upload(issuer, SAMPLE, "check")
    assert "0 auszustellen, 4 bereits ausgestellt" in page_text(again.get_data(as_text=True))


def test_a_file_that_is_not_csv_is_explained(issuer: FlaskClient) -> None:
    answer = upload(issuer, b"PK\x03\x04\x00binary", "check")
    assert answer.status_code == 422
    assert "Die Datei kann nicht gelesen werden" in page_text(answer.get_data(as_text=True))


def test_a_verifier_cannot_import(client: FlaskClient, make_user: Callable[..., str]) -> None:
    make_user("vera", "verifier")
    assert login(client, "vera").status_code == 302
    assert client.get("/console/import").status_code == 403
