"""POST /api/v1/imports: the same import as `wallet import`, for a city system."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

SAMPLE = (Path(__file__).resolve().parents[1] / "data" / "library_export_excel.csv").read_bytes()


@pytest.fixture
def headers(make_token: Callable[[str], str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token('issuer')}", "Content-Type": "text/csv"}


def post(client: FlaskClient, headers: dict[str, str], data: bytes, **query: str) -> TestResponse:
    return client.post("/api/v1/imports", data=data, headers=headers,
                       query_string={"type": "library", **query})  # fmt: skip


def test_a_dry_run_reports_and_issues_nothing(client: FlaskClient, headers: dict[str, str]) -> None:
    answer = post(client, headers, SAMPLE, dry_run="true")
    assert answer.status_code == 200
    report = answer.get_json()["report"]
    assert (report["rows"], report["to_issue"], report["problems"]) == (4, 4, [])
    again = post(client, headers, SAMPLE, dry_run="true").get_json()
    assert again["report"]["issued_before"] == 0


def test_an_import_answers_each_row_and_a_repeat_issues_nothing_twice(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    first = post(client, headers, SAMPLE)
    assert first.status_code == 201
    results = first.get_json()["results"]
    assert [(r["row"], r["status"], r["channel"]) for r in results] == [
        (2, "issued", "link"), (3, "issued", "link"), (4, "issued", "link"), (5, "issued", "link"),
    ]  # fmt: skip
    assert all(r["claim_url"].startswith("https://pass.stadt-musterstadt.de/p/") for r in results)
    second = post(client, headers, SAMPLE).get_json()
    assert {r["status"] for r in second["results"]} == {"issued_before"}
    assert all(r["claim_url"] == "" for r in second["results"])  # links are shown once


def test_invalid_rows_are_refused_with_the_report_naming_row_and_column(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    data = b"Ausweisnummer;Name\r\n12;Erika\r\n100200300401;Max\r\n"
    answer = post(client, headers, data)
    assert answer.status_code == 422
    error = answer.get_json()["error"]
    assert error["code"] == "import_invalid"
    [problem] = error["report"]["problems"]
    assert (problem["row"], problem["column"], problem["code"]) == (2, "Ausweisnummer", "format")
    skipped = post(client, headers, data, skip_invalid="true")
    assert skipped.status_code == 201
    rows = skipped.get_json()["results"]
    assert [r["status"] for r in rows] == ["skipped", "issued"]


@pytest.mark.parametrize(
    ("content_type", "query", "status", "field"),
    [
        ("application/json", {}, 400, "Content-Type"),
        ("text/csv", {"dry_run": "yes"}, 422, "dry_run"),
        ("text/csv", {"type": "pool"}, 422, "type"),
        ("text/csv", {"colour": "red"}, 422, "colour"),
    ],
)
def test_a_request_the_endpoint_cannot_use_is_refused_naming_what(
    client: FlaskClient, headers: dict[str, str], content_type: str, query: dict[str, str],
    status: int, field: str,
) -> None:  # fmt: skip
    answer = post(client, {**headers, "Content-Type": content_type}, SAMPLE, **query)
    assert answer.status_code == status
    assert answer.get_json()["error"]["field"] == field


def test_a_file_beyond_the_limit_is_refused_before_it_is_read(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    huge = b"Ausweisnummer;Name\r\n" + b"100200300401;Erika\r\n" * 250_000  # about 5 MiB
    answer = post(client, headers, huge)
    assert answer.status_code == 413


def test_a_verifier_token_cannot_import(
    client: FlaskClient, make_token: Callable[[str], str]
) -> None:
    headers = {"Authorization": f"Bearer {make_token('verifier')}", "Content-Type": "text/csv"}
    assert post(client, headers, SAMPLE).status_code == 403


@pytest.mark.parametrize("body", [b"302575680856069295735209721856", b"a;b;c\r\n1;2;3\r\n"])
def test_a_body_without_the_types_columns_is_refused_even_for_a_dry_run(
    client: FlaskClient, headers: dict[str, str], body: bytes
) -> None:
    answer = post(client, headers, body, dry_run="true")
    assert answer.status_code == 422
    codes = {p["code"] for p in answer.get_json()["error"]["report"]["problems"]}
    assert codes == {"missing_column"}
