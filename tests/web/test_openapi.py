"""The OpenAPI document stays true: to the URL map, the role table, and real traffic."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from werkzeug.test import TestResponse

from tests.factories import HOLDERS
from wallet.web import api

PREFIX = "/api/v1"
BASE = "urn:wallet-api"
JSON = "application/json"
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
LIBRARY: dict[str, Any] = {"type": "library", "holder": dict(HOLDERS["library"])}
PARKING: dict[str, Any] = {"type": "parking", "holder": dict(HOLDERS["parking"])}


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    response = client.get(f"{PREFIX}/openapi.json")  # no token: the reference is public
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    doc: dict[str, Any] = response.get_json()
    return doc


def pointer(*parts: str) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def validator(document: dict[str, Any], at: str) -> Draft202012Validator:
    """A validator for the schema at JSON pointer ``at``, its $refs resolved in the document."""
    registry: Registry[Any] = Registry().with_resource(BASE, DRAFT202012.create_resource(document))
    return Draft202012Validator(
        {"$ref": f"{BASE}#{at}"},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (path, method): op
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in METHODS
    }


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    validate_openapi(document)  # raises on any violation of the 3.1 schema
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        **document["components"]["securitySchemes"]["bearerAuth"],
        "type": "http",
        "scheme": "bearer",
    }
    assert document["security"] == [{"bearerAuth": []}]


def test_every_route_is_documented_and_nothing_else(app: Flask, document: dict[str, Any]) -> None:
    routes: dict[tuple[str, str], str] = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(PREFIX + "/"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule.removeprefix(PREFIX))
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            routes[(path, method.lower())] = rule.endpoint.removeprefix("api.")
    documented = operations(document)
    assert set(routes) == set(documented)
    for key, endpoint in routes.items():
        assert documented[key]["operationId"] == endpoint
    assert document["servers"] == [{"url": PREFIX}]


def test_documented_roles_are_the_enforced_ones(document: dict[str, Any]) -> None:
    guarded = set()
    for (path, method), op in operations(document).items():
        if op.get("security") == []:
            assert op["operationId"] not in api.ROLES, f"{method} {path} is guarded but public"
            continue
        guarded.add(op["operationId"])
        assert op["x-roles"] == sorted(api.ROLES[op["operationId"]])
        assert {"401", "403"} <= set(op["responses"]), f"{method} {path}"
    assert guarded == set(api.ROLES)


def test_path_parameters_and_idempotency_keys_are_declared(document: dict[str, Any]) -> None:
    for (path, method), op in operations(document).items():
        names = {resolve(document, p["$ref"])["name"] if "$ref" in p else p["name"]
                 for p in op.get("parameters", [])}  # fmt: skip
        assert set(re.findall(r"{(\w+)}", path)) <= names, f"{method} {path}"
        creates = op["operationId"] in (
            "create_pass",
            "reissue_pass",
            "renew_pass",
            "replace_claim_link",
        )
        assert ("Idempotency-Key" in names) == creates, f"{method} {path}"


def test_every_error_answer_has_the_one_error_shape(document: dict[str, Any]) -> None:
    for (path, method), op in operations(document).items():
        for status, answer in op["responses"].items():
            if status.startswith(("4", "5")):
                spec = resolve(document, answer["$ref"]) if "$ref" in answer else answer
                schema = spec["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, f"{method} {path}"


# -- real traffic against the documented schemas ---------------------------------


class Exchange:
    """Sends requests and checks both directions against the document."""

    def __init__(self, client: FlaskClient, document: dict[str, Any], headers: dict[str, str]):
        self.client, self.document, self.headers = client, document, headers
        self.seen: set[tuple[str, str, str]] = set()

    def __call__(
        self,
        method: str,
        template: str,
        *,
        serial: str = "",
        body: Any = None,
        raw: bytes | None = None,
        content_type: str = "application/json",
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        request_valid: bool = True,
    ) -> TestResponse:
        op = self.document["paths"][template][method]
        if body is not None:
            at = pointer("paths", template, method, "requestBody", "content", JSON, "schema")
            errors = list(validator(self.document, at).iter_errors(body))
            assert (not errors) == request_valid, (template, body, errors)
        declared = {p["name"] for p in op.get("parameters", []) if "name" in p}
        declared |= {resolve(self.document, p["$ref"])["name"] for p in op.get("parameters", [])
                     if "$ref" in p}  # fmt: skip
        assert set(query or {}) <= declared
        path = PREFIX + template.replace("{serial}", serial)
        sent = self.headers if headers is None else headers
        if raw is not None:
            response = self.client.open(
                path, method=method, data=raw, content_type=content_type, query_string=query,
                headers=sent,
            )  # fmt: skip
        else:
            response = self.client.open(
                path, method=method, json=body, query_string=query, headers=sent
            )
        status = str(response.status_code)
        assert status in op["responses"], f"{method} {template} answered undocumented {status}"
        answer = op["responses"][status]
        at = pointer("paths", template, method, "responses", status)
        if "$ref" in answer:
            at = answer["$ref"].removeprefix("#")
            answer = resolve(self.document, answer["$ref"])
        validator(self.document, at + pointer("content", "application/json", "schema")).validate(
            response.get_json()
        )
        for header in answer.get("headers", {}):
            if header != "Idempotent-Replayed":
                assert header in response.headers, f"{method} {template} {status}: no {header}"
        self.seen.add((template, method, status))
        return response


def test_documented_examples_are_accepted_as_they_stand(
    client: FlaskClient, document: dict[str, Any], make_token: Callable[[str], str]
) -> None:
    exchange = Exchange(client, document, {"Authorization": f"Bearer {make_token('issuer')}"})
    content = document["paths"]["/passes"]["post"]["requestBody"]["content"]["application/json"]
    assert set(content["examples"]) == set(app_types(document))
    for example in content["examples"].values():
        assert exchange("post", "/passes", body=example["value"]).status_code == 201


def app_types(document: dict[str, Any]) -> list[str]:
    return list(document["components"]["schemas"]["Pass"]["properties"]["type"]["enum"])


def test_real_traffic_matches_the_document(
    client: FlaskClient, document: dict[str, Any], make_token: Callable[[str], str]
) -> None:
    exchange = Exchange(client, document, {"Authorization": f"Bearer {make_token('admin')}"})
    keyed = {**exchange.headers, "Idempotency-Key": "doc-1"}
    card = exchange("post", "/passes", body=LIBRARY, headers=keyed).get_json()
    again = exchange("post", "/passes", body=LIBRARY, headers=keyed)
    assert again.headers["Idempotent-Replayed"] == "true"
    permit = exchange(
        "post", "/passes", body={**PARKING, "valid_until": "2027-06-30T22:00:00+02:00"}
    ).get_json()
    exchange(
        "get", "/passes", query={"type": "parking", "state": "valid", "q": "d-ab", "limit": "5"}
    )
    exchange("get", "/passes/{serial}", serial=card["serial"])
    changes = [("suspend", {"reason": None}), ("reinstate", {}), ("revoke", {"reason": "moved"})]
    for action, body in changes:
        exchange("post", f"/passes/{{serial}}/{action}", serial=permit["serial"], body=body)
    exchange("post", "/passes/{serial}/claim-link", serial=card["serial"], body={})
    renewed = exchange("post", "/passes/{serial}/renew", serial=card["serial"], body={}).get_json()
    exchange("post", "/passes/{serial}/renew", serial=card["serial"], body={})  # again: 409
    exchange("post", "/passes/{serial}/renew", serial=renewed["serial"],
             body={"valid_until": "2020-01-01T00:00:00Z"})  # in the past: 422  # fmt: skip
    exchange("post", "/passes/{serial}/reissue", serial=renewed["serial"], body={"reason": "lost"})
    for text in (card["qr_text"], permit["token"], "garbage"):
        exchange("post", "/verify", body={"token": text})
    csv_file = b"Ausweisnummer;Name\r\n100200300401;Erika Mustermann\r\n"
    for query in ({"type": "library", "dry_run": "true"}, {"type": "library"}):
        exchange("post", "/imports", raw=csv_file, content_type="text/csv", query=query)
    bad_file = b"Ausweisnummer;Name\r\n12;Erika\r\n"
    exchange("post", "/imports", raw=bad_file, content_type="text/csv", query={"type": "library"})

    # And the errors, each with its documented status and the Error schema.
    exchange("post", "/passes", body={**LIBRARY, "colour": "red"}, request_valid=False)
    exchange("post", "/passes", body={**LIBRARY, "holder": {"name": "Erika"}}, request_valid=False)
    exchange("post", "/passes", body={**LIBRARY, "valid_from": "2026-12-01T00:00:00"},
             request_valid=False)  # fmt: skip
    other = {**exchange.headers, "Idempotency-Key": "doc-1"}
    exchange("post", "/passes", body=PARKING, headers=other)  # reused key: 422
    exchange("post", "/passes", raw=b'{"type":')
    exchange("post", "/passes", raw=b'{"type": "' + b"x" * 70_000 + b'"}')
    exchange("get", "/passes", query={"limit": "0"})
    exchange("get", "/passes/{serial}", serial="AAAAAAAAAAAAAAAA")
    exchange("post", "/passes/{serial}/revoke", serial=permit["serial"], body={"reason": "x"})
    exchange("post", "/passes/{serial}/revoke", serial=card["serial"], body={}, request_valid=False)
    exchange("post", "/verify", body={"token": 5}, request_valid=False)
    exchange("get", "/passes", headers={})
    verifier = {"Authorization": f"Bearer {make_token('verifier')}"}
    exchange("get", "/passes", headers=verifier)

    statuses = {status for _, _, status in exchange.seen}
    assert statuses == {"200", "201", "400", "401", "403", "404", "409", "413", "422"}
    assert {(t, m) for t, m, _ in exchange.seen} == set(operations(document)) - {
        ("/openapi.json", "get")
    }


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"type": "library"},
        {"type": "pool", "holder": {}},
        {**LIBRARY, "holder": {**LIBRARY["holder"], "age": "40"}},
        {**LIBRARY, "holder": {**LIBRARY["holder"], "card_number": "12"}},
        {**LIBRARY, "holder": {**LIBRARY["holder"], "name": "   "}},
        {**PARKING, "holder": {"plate": "not a plate", "zone": "12"}},
        {**LIBRARY, "holder": PARKING["holder"]},
        {**LIBRARY, "valid_until": "2027-01-01"},
        {**LIBRARY, "valid_until": 1795512600},
    ],
)
def test_what_the_schema_refuses_the_api_refuses(
    client: FlaskClient, document: dict[str, Any], make_token: Callable[[str], str], body: Any
) -> None:
    exchange = Exchange(client, document, {"Authorization": f"Bearer {make_token('issuer')}"})
    assert exchange("post", "/passes", body=body, request_valid=False).status_code == 422


def test_errors_the_http_server_answers_itself_are_documented(document: dict[str, Any]) -> None:
    for (path, method), op in operations(document).items():
        if op["operationId"] == "openapi_document":
            continue
        assert {"414", "431"} <= set(op["responses"]), f"{method} {path}"


def test_empty_query_values_are_what_the_document_says(
    client: FlaskClient, document: dict[str, Any], make_token: Callable[[str], str]
) -> None:
    params = {p["name"]: p["schema"] for p in document["paths"]["/passes"]["get"]["parameters"]}
    headers = {"Authorization": f"Bearer {make_token('issuer')}"}
    for name in ("type", "state"):  # empty means "any": documented, and served
        assert "" in params[name]["enum"]
        assert client.get(f"{PREFIX}/passes?{name}=", headers=headers).status_code == 200
    for name in ("limit", "offset"):  # an empty number is not a number: refused, naming it
        assert params[name]["type"] == "integer"
        response = client.get(f"{PREFIX}/passes?{name}=", headers=headers)
        assert response.status_code == 422
        assert response.get_json()["error"]["field"] == name


def test_forbidden_characters_are_stated_in_the_document(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    name = schemas["IssueLibraryHolder"]["properties"]["name"]
    assert name["format"] == "visible-text"
    holder = re.compile(name["pattern"])
    for bad in ("Erika \u202eanmretsuM", "Erika\u200b", "\ufeffErika", "Erika\u2028M", " "):
        assert holder.search(bad) is None, repr(bad)
    assert holder.search("Erika Mustermann") is not None
    reason = re.compile(schemas["Reason"]["properties"]["reason"]["pattern"])
    revoke = re.compile(schemas["RevokeRequest"]["properties"]["reason"]["pattern"])
    query = next(p for p in document["paths"]["/passes"]["get"]["parameters"] if p["name"] == "q")
    for pattern in (reason, revoke, re.compile(query["schema"]["pattern"])):
        assert pattern.search("lost\nphone") is None and pattern.search("lost \x07") is None
        assert pattern.search("lost phone") is not None
    assert revoke.search("   ") is None and reason.search("") is not None
