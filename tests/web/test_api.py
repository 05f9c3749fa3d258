"""The JSON API /api/v1 over a real database: roles, life cycle, idempotency, bad input."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from tests.factories import HOLDERS, NOW, fresh_holder, genuine_token_without_a_published_list
from wallet.bundle import TrustBundle
from wallet.services import accounts, audit, passes, verification
from wallet.services.context import Services
from wallet.store.db import Database
from wallet.store.driver import sent_statements
from wallet.store.models import AuditEntryRow, ClaimLinkRow, IdempotencyKeyRow, PassRow
from wallet.verifier import Verifier
from wallet.web import api, create_app

LIBRARY: dict[str, Any] = {"type": "library", "holder": dict(HOLDERS["library"])}
PARKING: dict[str, Any] = {"type": "parking", "holder": dict(HOLDERS["parking"])}
ISSUERS = {"admin", "issuer"}
EVERYONE = {"admin", "issuer", "verifier"}
# The role matrix of issue #3, written out so a change to api.ROLES must change it too.
MATRIX: dict[str, set[str]] = {
    "create_pass": ISSUERS,
    "list_passes": ISSUERS,
    "get_pass": ISSUERS,
    "revoke_pass": ISSUERS,
    "suspend_pass": ISSUERS,
    "reinstate_pass": ISSUERS,
    "reissue_pass": ISSUERS,
    "renew_pass": ISSUERS,
    "replace_claim_link": ISSUERS,
    "create_import": ISSUERS,
    "verify": EVERYONE,
}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def issuer(make_token: Callable[[str], str]) -> dict[str, str]:
    return bearer(make_token("issuer"))


def problem(response: TestResponse, status: int, code: str, field: str | None) -> str | None:
    """What is wrong with an error answer, or None if it has this status, code and field."""
    body = response.get_json(silent=True)
    got = (response.status_code, body)
    if response.status_code != status or not isinstance(body, dict) or set(body) != {"error"}:
        return f"expected {status} {code} {field}, got {got}"
    inner = body["error"]
    if inner.get("code") != code or not isinstance(inner.get("message"), str):
        return f"expected {status} {code} {field}, got {got}"
    if not inner["message"] or not set(inner) <= {"code", "message", "field"}:
        return f"malformed error {got}"
    if field is not None and inner.get("field") != field:
        return f"expected field {field}, got {got}"
    return None


def error(response: TestResponse, status: int, code: str, field: str | None = None) -> str:
    """Assert the one error shape; returns the message."""
    wrong = problem(response, status, code, field)
    assert wrong is None, wrong
    return str(response.get_json()["error"]["message"])


def count(db: Database, table: type[Any]) -> int:
    with db.transaction(write=False) as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def issue_direct(
    db: Database, services: Services, type_id: str = "parking", state: str = "valid"
) -> passes.IssuedPass:
    """A pass made through the service, so API tests start from a known state."""
    with db.transaction(write=True) as session:
        issued = passes.issue_pass(
            session, services, type_id=type_id, holder=fresh_holder(type_id), actor="test", now=NOW
        )
        if state == "suspended":
            passes.change_state(
                session, services, issued.record.serial, action="suspend", reason=None,
                actor="test", now=NOW,
            )  # fmt: skip
    return issued


# -- authentication and roles --------------------------------------------------

ROUTES: list[tuple[str, str, str, dict[str, Any] | bytes | None, int]] = [
    # endpoint, method, path ({serial} filled in), body, status on success
    ("create_pass", "POST", "/api/v1/passes", LIBRARY, 201),
    ("list_passes", "GET", "/api/v1/passes", None, 200),
    ("get_pass", "GET", "/api/v1/passes/{serial}", None, 200),
    ("revoke_pass", "POST", "/api/v1/passes/{serial}/revoke", {"reason": "lost"}, 200),
    ("suspend_pass", "POST", "/api/v1/passes/{serial}/suspend", {}, 200),
    ("reinstate_pass", "POST", "/api/v1/passes/{serial}/reinstate", {}, 200),
    ("reissue_pass", "POST", "/api/v1/passes/{serial}/reissue", {}, 201),
    ("renew_pass", "POST", "/api/v1/passes/{serial}/renew", {}, 201),
    ("replace_claim_link", "POST", "/api/v1/passes/{serial}/claim-link", {}, 201),
    ("verify", "POST", "/api/v1/verify", {"token": "{qr}"}, 200),
    (
        "create_import",
        "POST",
        "/api/v1/imports?type=library&dry_run=true",
        b"Ausweisnummer;Name\r\n100200300401;Erika Mustermann\r\n",
        200,
    ),
]


def test_the_role_table_is_the_one_of_the_issue() -> None:
    assert {name: set(roles) for name, roles in api.ROLES.items()} == MATRIX
    assert {r[0] for r in ROUTES} == set(MATRIX)


def call(
    client: FlaskClient,
    method: str,
    path: str,
    body: dict[str, Any] | bytes | None,
    headers: dict[str, str],
    issued: passes.IssuedPass,
) -> TestResponse:
    path = path.format(serial=issued.record.serial)
    if isinstance(body, bytes):  # a CSV file
        return client.open(path, method=method, data=body, content_type="text/csv",
                           headers=headers)  # fmt: skip
    if body is not None and body.get("token") == "{qr}":
        body = {"token": issued.qr_text}
    return client.open(path, method=method, json=body, headers=headers)


@pytest.mark.parametrize("role", ["admin", "issuer", "verifier"])
def test_each_route_admits_exactly_its_roles(
    client: FlaskClient,
    db: Database,
    services: Services,
    make_token: Callable[[str], str],
    role: str,
) -> None:
    headers = bearer(make_token(role))
    for endpoint, method, path, body, success in ROUTES:
        state = "suspended" if endpoint == "reinstate_pass" else "valid"
        issued = issue_direct(db, services, state=state)
        response = call(client, method, path, body, headers, issued)
        if role in MATRIX[endpoint]:
            assert response.status_code == success, (endpoint, response.get_json())
        else:
            error(response, 403, "forbidden")


BAD_AUTHORIZATIONS = [
    None,
    "",
    "Bearer",
    "Bearer ",
    "Basic YWRtaW46YWRtaW4=",
    "Bearer wpt_not-a-real-token",
    "Bearer not-even-our-prefix",
    "Bearer wpt_" + "x" * 500,
    "Bearer wpt_\x00",
]


def test_every_route_refuses_a_missing_or_unknown_token(
    client: FlaskClient, db: Database, services: Services
) -> None:
    issued = issue_direct(db, services)
    wrong = []
    for authorization in BAD_AUTHORIZATIONS:
        headers = {} if authorization is None else {"Authorization": authorization}
        for endpoint, method, path, body, _ in ROUTES:
            response = call(client, method, path, body, headers, issued)
            if not response.headers.get("WWW-Authenticate", "").startswith("Bearer"):
                wrong.append(f"{endpoint} {authorization!r}: no Bearer challenge")
            if found := problem(response, 401, "unauthorized", None):
                wrong.append(f"{endpoint} {authorization!r}: {found}")
    assert wrong == []
    assert count(db, PassRow) == 1


def test_a_revoked_token_is_refused_once_the_lookup_cache_expires(
    app: Flask,
    client: FlaskClient,
    db: Database,
    services: Services,
    make_token: Callable[[str], str],
) -> None:
    """Workers reuse a token lookup for WALLET_API_TOKEN_CACHE seconds (2), no longer."""
    clock = [1000.0]
    tokens = app.extensions["wallet.api"].tokens
    tokens._clock = lambda: clock[0]
    secret = make_token("admin")
    assert client.get("/api/v1/passes", headers=bearer(secret)).status_code == 200
    with db.transaction(write=True) as session:
        row = accounts.authenticate_token(session, secret)
        assert row is not None
        accounts.revoke_api_token(
            session, name=row.name, actor="test", audit_key=services.audit_key, now=NOW
        )
    clock[0] += 1.5  # still inside the window: the documented delay
    assert client.get("/api/v1/passes", headers=bearer(secret)).status_code == 200
    clock[0] += 1.0
    response = client.get("/api/v1/passes", headers=bearer(secret))
    error(response, 401, "unauthorized")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_token_cache_can_be_switched_off(
    db: Database, services: Services, make_token: Callable[[str], str]
) -> None:
    from dataclasses import replace

    settings = replace(services.settings, api_token_cache=0)
    app = create_app(settings, services=services, db=db, config={"TESTING": True})
    client = app.test_client()
    secret = make_token("admin")
    assert client.get("/api/v1/passes", headers=bearer(secret)).status_code == 200
    with db.transaction(write=True) as session:
        row = accounts.authenticate_token(session, secret)
        assert row is not None
        accounts.revoke_api_token(
            session, name=row.name, actor="test", audit_key=services.audit_key, now=NOW
        )
    error(client.get("/api/v1/passes", headers=bearer(secret)), 401, "unauthorized")


def test_the_bearer_scheme_is_case_insensitive(
    client: FlaskClient, make_token: Callable[[str], str]
) -> None:
    secret = make_token("issuer")
    assert (
        client.get("/api/v1/passes", headers={"Authorization": f"bearer {secret}"}).status_code
        == 200
    )


def test_the_audit_log_names_the_token(
    client: FlaskClient, db: Database, make_token: Callable[[str], str]
) -> None:
    secret = make_token("issuer")
    with db.transaction(write=False) as session:
        token = accounts.authenticate_token(session, secret)
        assert token is not None
        name = token.name
    serial = client.post("/api/v1/passes", json=LIBRARY, headers=bearer(secret)).get_json()[
        "serial"
    ]
    client.post(f"/api/v1/passes/{serial}/revoke", json={"reason": "lost"}, headers=bearer(secret))
    with db.transaction(write=False) as session:
        entries = audit.trail(session, serial)
        assert [(e.action, e.actor) for e in entries] == [
            ("pass.revoke", f"token:{name}"),
            ("pass.issue", f"token:{name}"),
        ]
        assert entries[0].details["reason"] == "lost"


# -- the life of a pass ------------------------------------------------------------


def verdict(client: FlaskClient, headers: dict[str, str], text: str) -> dict[str, Any]:
    response = client.post("/api/v1/verify", json={"token": text}, headers=headers)
    assert response.status_code == 200
    result: dict[str, Any] = response.get_json()
    assert set(result) == {"state", "reason", "admit", "message", "claims", "warnings", "detail"}
    return result


def test_issue_find_suspend_reinstate_revoke_and_verify(
    app: Flask, client: FlaskClient, db: Database, issuer: dict[str, str],
    make_token: Callable[[str], str],
) -> None:  # fmt: skip
    checker = bearer(make_token("verifier"))
    created = client.post(
        "/api/v1/passes",
        json={**PARKING, "valid_until": "2027-06-30T22:00:00+00:00"},
        headers=issuer,
    )
    assert created.status_code == 201
    new = created.get_json()
    serial = new["serial"]
    assert created.headers["Location"] == f"/api/v1/passes/{serial}"
    assert created.headers["Cache-Control"] == "no-store"
    assert (new["type"], new["state"], new["holder"]) == ("parking", "valid", PARKING["holder"])
    assert (new["valid_from"], new["valid_until"]) == (
        "2026-11-24T09:30:00Z",
        "2027-06-30T22:00:00Z",
    )
    claim = urlsplit(new["claim_url"])
    assert f"{claim.scheme}://{claim.netloc}" == app.extensions["wallet"].settings.public_url
    assert claim.path.startswith("/p/") and len(claim.path) > 3 + 22  # >= 128 bits
    assert new["token"].count(".") == 2 and new["qr_text"].startswith("WP1")
    if "citizen" in app.blueprints:  # the colleague's page: the link must open it
        assert client.get(claim.path).status_code == 200
    downloads = new["downloads"]
    # Neither wallet is set up here (no Google issuer, no development chain yet).
    assert "google_wallet" not in downloads and "apple_wallet" not in downloads
    assert downloads["card_png"] == new["claim_url"] + "/card.png"
    for link in downloads.values():
        assert client.get(urlsplit(link).path + "?" + urlsplit(link).query).status_code == 200

    shown = client.get(f"/api/v1/passes/{serial}", headers=issuer)
    assert shown.status_code == 200
    assert "claim_url" not in shown.get_json()
    assert claim.path[3:] not in shown.get_data(as_text=True)  # the secret is shown once only
    assert {k: v for k, v in new.items() if k not in ("claim_url", "downloads")} == (
        shown.get_json()
    )

    client.post("/api/v1/passes", json=LIBRARY, headers=issuer)
    listing = client.get("/api/v1/passes", headers=issuer).get_json()
    assert (listing["total"], listing["limit"], listing["offset"]) == (2, 50, 0)
    assert listing["items"][1] == shown.get_json()  # newest first
    by_type = client.get("/api/v1/passes?type=parking", headers=issuer).get_json()
    assert [p["serial"] for p in by_type["items"]] == [serial]
    by_text = client.get("/api/v1/passes", query_string={"q": "d-ab 12"}, headers=issuer)
    assert [p["serial"] for p in by_text.get_json()["items"]] == [serial]
    by_serial = client.get("/api/v1/passes", query_string={"q": serial}, headers=issuer)
    assert [p["serial"] for p in by_serial.get_json()["items"]] == [serial]

    assert verdict(client, checker, new["qr_text"])["state"] == "valid"
    suspended = client.post(f"/api/v1/passes/{serial}/suspend", headers=issuer)
    assert suspended.get_json()["state"] == "suspended"
    assert verdict(client, checker, new["qr_text"])["state"] == "suspended"
    by_state = client.get("/api/v1/passes?state=suspended", headers=issuer).get_json()
    assert [p["serial"] for p in by_state["items"]] == [serial]
    error(
        client.post(f"/api/v1/passes/{serial}/suspend", headers=issuer), 409, "invalid_transition"
    )
    reinstated = client.post(
        f"/api/v1/passes/{serial}/reinstate", json={"reason": "paid"}, headers=issuer
    )
    assert (reinstated.get_json()["state"], reinstated.get_json()["reason"]) == ("valid", "paid")
    assert verdict(client, checker, new["token"])["state"] == "valid"  # a bare JWS works too
    error(
        client.post(f"/api/v1/passes/{serial}/reinstate", headers=issuer), 409, "invalid_transition"
    )

    revoked = client.post(
        f"/api/v1/passes/{serial}/revoke", json={"reason": "moved away"}, headers=issuer
    )
    assert revoked.status_code == 200
    assert (revoked.get_json()["state"], revoked.get_json()["reason"]) == ("revoked", "moved away")
    result = verdict(client, checker, new["qr_text"])
    assert (result["state"], result["reason"], result["claims"]["serial"]) == (
        "revoked", "revoked", serial,
    )  # fmt: skip
    for action in ("revoke", "suspend", "reinstate", "reissue"):
        response = client.post(
            f"/api/v1/passes/{serial}/{action}", json={"reason": "again"}, headers=issuer
        )
        error(response, 409, "invalid_transition")


def test_library_cards_cannot_be_suspended(client: FlaskClient, issuer: dict[str, str]) -> None:
    serial = client.post("/api/v1/passes", json=LIBRARY, headers=issuer).get_json()["serial"]
    error(
        client.post(f"/api/v1/passes/{serial}/suspend", headers=issuer), 409, "invalid_transition"
    )


def test_reissue_gives_a_new_pass_and_revokes_the_old_one(
    client: FlaskClient, db: Database, issuer: dict[str, str]
) -> None:
    old = client.post("/api/v1/passes", json=LIBRARY, headers=issuer).get_json()
    response = client.post(
        f"/api/v1/passes/{old['serial']}/reissue", json={"reason": "lost phone"}, headers=issuer
    )
    assert response.status_code == 201
    new = response.get_json()
    assert new["serial"] != old["serial"] and new["claim_url"] != old["claim_url"]
    assert response.headers["Location"] == f"/api/v1/passes/{new['serial']}"
    assert (new["replaces"], new["holder"], new["state"]) == (old["serial"], old["holder"], "valid")
    assert new["valid_until"] == old["valid_until"]
    old_now = client.get(f"/api/v1/passes/{old['serial']}", headers=issuer).get_json()
    assert (old_now["state"], old_now["replaced_by"], old_now["reason"]) == (
        "revoked", new["serial"], "lost phone",
    )  # fmt: skip
    assert verdict(client, issuer, old["qr_text"])["state"] == "revoked"
    assert verdict(client, issuer, new["qr_text"])["state"] == "valid"
    assert count(db, ClaimLinkRow) == 2


def test_verify_answers_garbage_with_a_verdict(client: FlaskClient, issuer: dict[str, str]) -> None:
    for text in ("", "hello", "WP1123", "a.b.c", "WP1" + "9" * 5000, "\x00\ud800"):
        result = verdict(client, issuer, text)
        assert result["state"] == "invalid" and result["reason"]


def test_api_verify_of_a_pass_without_a_status_list_is_amber_not_valid(
    client: FlaskClient, services: Services, make_token: Callable[[str], str]
) -> None:
    checker = bearer(make_token("verifier"))
    for type_id, admit in (("library", True), ("parking", False)):
        token = genuine_token_without_a_published_list(services, type_id)
        result = verdict(client, checker, token)
        assert (result["state"], result["admit"]) == ("status_unchecked", admit)
        assert result["claims"]["serial"] == "SERIAL0123456789"


def test_the_verifier_is_built_once_per_bundle(
    client: FlaskClient, issuer: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Verifier] = []

    class CountingVerifier(Verifier):
        def __init__(self, bundle: TrustBundle) -> None:
            super().__init__(bundle)
            built.append(self)

    monkeypatch.setattr(verification, "Verifier", CountingVerifier)
    qr = client.post("/api/v1/passes", json=LIBRARY, headers=issuer).get_json()["qr_text"]
    for _ in range(3):
        verdict(client, issuer, qr)
    assert len(built) == 1
    client.post("/api/v1/passes", json=PARKING, headers=issuer)  # a new status list
    verdict(client, issuer, qr)
    assert len(built) == 2 and built[1].bundle.version > built[0].bundle.version


def test_list_pages_through_the_passes(
    client: FlaskClient, db: Database, services: Services, issuer: dict[str, str]
) -> None:
    serials = [issue_direct(db, services).record.serial for _ in range(5)]
    first = client.get("/api/v1/passes?limit=2", headers=issuer).get_json()
    second = client.get("/api/v1/passes?limit=2&offset=2", headers=issuer).get_json()
    last = client.get("/api/v1/passes?limit=2&offset=4&type=&state=", headers=issuer).get_json()
    assert first["total"] == second["total"] == last["total"] == 5
    assert (second["limit"], second["offset"]) == (2, 2)
    got = [p["serial"] for page in (first, second, last) for p in page["items"]]
    assert got == serials[::-1]
    beyond = client.get("/api/v1/passes?offset=10", headers=issuer).get_json()
    assert (beyond["items"], beyond["total"]) == ([], 5)
    assert client.get("/api/v1/passes?limit=200", headers=issuer).status_code == 200


BAD_QUERIES = [
    ("limit=0", "limit"),
    ("limit=201", "limit"),
    ("limit=abc", "limit"),
    ("limit=1.5", "limit"),
    ("limit=%EF%BC%91", "limit"),  # a full-width digit one
    ("offset=-1", "offset"),
    ("offset=99999999999999999999", "offset"),
    ("state=lost", "state"),
    ("type=pool", "type"),
    ("q=%00", "q"),
    ("q=" + "x" * 201, "q"),
    ("sort=serial", "sort"),
    ("limit=1&limit=2", "limit"),
]


def test_bad_list_parameters_are_named(client: FlaskClient, issuer: dict[str, str]) -> None:
    wrong = [
        f"{query[:40]}: {found}"
        for query, field in BAD_QUERIES
        if (
            found := problem(client.get(f"/api/v1/passes?{query}", headers=issuer), 422, BAD, field)
        )
    ]
    assert wrong == []


def test_unknown_serials_and_routes_answer_404_and_405_as_json(
    client: FlaskClient, issuer: dict[str, str]
) -> None:
    for path in ("/api/v1/passes/AAAAAAAAAAAAAAAA", "/api/v1/passes/%00%00%00%00%00%00%00%00",
                 "/api/v1/passes/short", "/api/v1/passes/" + "A" * 65):  # fmt: skip
        error(client.get(path, headers=issuer), 404, "not_found")
        error(client.post(path + "/revoke", json={"reason": "x"}, headers=issuer), 404, "not_found")
        error(client.post(path + "/reissue", headers=issuer), 404, "not_found")
    error(client.get("/api/v1/nothing-here", headers=issuer), 404, "not_found")
    error(client.put("/api/v1/passes", headers=issuer), 405, "method_not_allowed")
    error(
        client.delete("/api/v1/passes/AAAAAAAAAAAAAAAA", headers=issuer), 405, "method_not_allowed"
    )
    error(client.get("/api/v1/verify", headers=issuer), 405, "method_not_allowed")


# -- bad input ----------------------------------------------------------------------

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
BAD, HOLDER = "invalid_input", "holder_data_invalid"
MALFORMED, MEDIA = "malformed_json", "unsupported_media_type"
ENCODED = json.dumps(LIBRARY).encode()


def lib(**changes: Any) -> dict[str, Any]:
    return {**LIBRARY, **changes}


def lib_holder(**changes: Any) -> dict[str, Any]:
    return {**LIBRARY, "holder": {**LIBRARY["holder"], **changes}}


BAD_BODIES = [
    # name, content type, raw body, status, code, field
    ("malformed", JSON, b'{"type": "library",', 400, MALFORMED, "body"),
    ("trailing", JSON, b'{"type": "library"} x', 400, MALFORMED, "body"),
    ("not-utf8", JSON, b'{"type": "biblioth\xe8que"}', 400, MALFORMED, "body"),
    ("duplicate", JSON, b'{"type": "a", "type": "b"}', 400, MALFORMED, "body"),
    ("nan", JSON, b'{"type": NaN}', 400, MALFORMED, "body"),
    ("huge-float", JSON, b'{"type": 1e999}', 400, MALFORMED, "body"),
    ("huge-int", JSON, b'{"type": ' + b"9" * 5000 + b"}", 400, MALFORMED, "body"),
    ("deep-nesting", JSON, b"[" * 60000, 400, MALFORMED, "body"),
    ("text-plain", "text/plain", ENCODED, 400, MEDIA, "Content-Type"),
    ("form", FORM, b"type=library", 400, MEDIA, "Content-Type"),
    ("latin-1", f"{JSON}; charset=latin-1", ENCODED, 400, MEDIA, "Content-Type"),
    ("array", JSON, b"[]", 422, BAD, "body"),
    ("string", JSON, b'"library"', 422, BAD, "body"),
    ("null", JSON, b"null", 422, BAD, "body"),
    ("empty", JSON, b"", 422, BAD, "type"),
    ("empty-object", JSON, b"{}", 422, BAD, "type"),
    ("too-large", JSON, b'{"type": "' + b"x" * 70000 + b'"}', 413, "payload_too_large", "body"),
]  # fmt: skip
BAD_FIELDS = [
    # name, body, code, field
    ("unknown-field", lib(colour="red"), BAD, "colour"),
    ("no-holder", {"type": "library"}, BAD, "holder"),
    ("type-not-text", lib(type=1), BAD, "type"),
    ("unknown-type", lib(type="pool"), BAD, "type"),
    ("holder-not-object", lib(holder="Erika"), BAD, "holder"),
    ("holder-value-not-text", lib_holder(name=7), BAD, "holder.name"),
    ("holder-field-missing", lib(holder={"card_number": "100200300400"}), HOLDER, "holder.name"),
    ("holder-field-unknown", lib_holder(age="40"), HOLDER, "holder.age"),
    ("holder-pattern", lib_holder(card_number="12"), HOLDER, "holder.card_number"),
    ("holder-blank", lib_holder(name="   "), HOLDER, "holder.name"),
    ("holder-nul", lib_holder(name="Erika\x00"), BAD, "holder.name"),
    ("holder-too-long", lib_holder(name="E" * 81), HOLDER, "holder.name"),
    ("plate", {**PARKING, "holder": {"plate": "ABC", "zone": "12"}}, HOLDER, "holder.plate"),
    ("time-not-text", lib(valid_from=1795512600), BAD, "valid_from"),
    ("no-zone", lib(valid_from="2026-12-01T00:00:00"), BAD, "valid_from"),
    ("date-only", lib(valid_from="2026-12-01"), BAD, "valid_from"),
    ("not-a-time", lib(valid_from="tomorrow"), BAD, "valid_from"),
    ("impossible", lib(valid_from="2026-02-30T00:00:00Z"), BAD, "valid_from"),
    ("wide-digits", lib(valid_from="\uff12\uff10\uff12\uff16-12-01T00:00Z"), BAD, "valid_from"),
    ("year-one", lib(valid_from="0001-01-01T00:00:00+01:00"), BAD, "valid_from"),
    ("far-start", lib(valid_from="9999-06-01T00:00:00Z"), BAD, "valid_from"),
    ("past-start", lib(valid_from="2026-11-01T00:00:00Z"), BAD, "valid_from"),
    ("end-no-zone", lib(valid_until="2027-01-01T00:00:00"), BAD, "valid_until"),
    ("end-too-late", lib(valid_until="2030-01-01T00:00:00Z"), BAD, "valid_until"),
    ("end-far-future", lib(valid_until="9999-12-31T23:59:59-01:00"), BAD, "valid_until"),
    ("end-past", lib(valid_until="2026-11-20T00:00:00Z"), BAD, "valid_until"),
]  # fmt: skip


def assert_nothing_written(db: Database) -> None:
    for table in (PassRow, ClaimLinkRow, IdempotencyKeyRow):
        assert count(db, table) == 0
    with db.transaction(write=False) as session:
        actions = session.scalars(select(AuditEntryRow.action)).all()
    assert set(actions) <= {"api_token.create"}


def test_unreadable_bodies_are_refused_naming_the_field(
    client: FlaskClient, db: Database, issuer: dict[str, str]
) -> None:
    wrong = []
    for name, content_type, raw, status, code, field in BAD_BODIES:
        headers = {**issuer, "Content-Type": content_type, "Idempotency-Key": "k1"}
        response = client.post("/api/v1/passes", data=raw, headers=headers)
        if found := problem(response, status, code, field):
            wrong.append(f"{name}: {found}")
    assert wrong == []
    assert_nothing_written(db)


def test_bad_fields_are_refused_naming_the_field(
    client: FlaskClient, db: Database, issuer: dict[str, str]
) -> None:
    wrong = []
    for name, body, code, field in BAD_FIELDS:
        headers = {**issuer, "Idempotency-Key": "k1"}
        response = client.post("/api/v1/passes", json=body, headers=headers)
        if found := problem(response, 422, code, field):
            wrong.append(f"{name}: {found}")
    assert wrong == []
    assert_nothing_written(db)


def test_lone_surrogates_are_refused_not_stored(
    client: FlaskClient, db: Database, issuer: dict[str, str]
) -> None:
    raw = b'{"type": "library", "holder": {"card_number": "100200300400", "name": "\\ud800"}}'
    response = client.post("/api/v1/passes", data=raw, content_type=JSON, headers=issuer)
    error(response, 422, "invalid_input", "holder.name")
    raw = b'{"reason": "lost \\udfff"}'
    response = client.post(
        "/api/v1/passes/AAAAAAAAAAAAAAAA/revoke", data=raw, content_type=JSON, headers=issuer
    )
    error(response, 422, "invalid_input", "reason")
    assert_nothing_written(db)


BAD_CHANGES: list[tuple[str, dict[str, Any] | None, str]] = [
    ("revoke", None, "reason"),
    ("revoke", {}, "reason"),
    ("revoke", {"reason": ""}, "reason"),
    ("revoke", {"reason": "  "}, "reason"),
    ("revoke", {"reason": None}, "reason"),
    ("revoke", {"reason": 5}, "reason"),
    ("revoke", {"reason": "x" * 501}, "reason"),
    ("revoke", {"reason": "lost", "why": "x"}, "why"),
    ("suspend", {"reason": ["late"]}, "reason"),
    ("suspend", {"state": "revoked"}, "state"),
    ("reinstate", {"reason": "\x07"}, "reason"),
    ("reissue", {"holder": "Mallory"}, "holder"),
    ("reissue", {"holder": {"name": 5}}, "holder.name"),
    ("reissue", {"reason": {}}, "reason"),
]


def test_state_changes_refuse_bad_bodies(
    client: FlaskClient, db: Database, services: Services, issuer: dict[str, str]
) -> None:
    serial = issue_direct(db, services).record.serial
    wrong = []
    for action, body, field in BAD_CHANGES:
        response = client.post(f"/api/v1/passes/{serial}/{action}", json=body, headers=issuer)
        if found := problem(response, 422, BAD, field):
            wrong.append(f"{action} {body!r:.40}: {found}")
    assert wrong == []
    with db.transaction(write=False) as session:
        assert passes.get_pass(session, serial).state == "valid"
    assert count(db, PassRow) == 1


def test_verify_refuses_bad_bodies(client: FlaskClient, issuer: dict[str, str]) -> None:
    for body, field in (({}, "token"), ({"token": 5}, "token"), ({"token": "x", "k": 1}, "k"),
                        ([], "body")):  # fmt: skip
        error(client.post("/api/v1/verify", json=body, headers=issuer), 422, BAD, field)
    response = client.post("/api/v1/verify", data="{", content_type=JSON, headers=issuer)
    error(response, 400, "malformed_json", "body")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELD_NAMES = st.sampled_from(["type", "holder", "valid_from", "valid_until", "name", "plate"])
HOLDERISH = st.dictionaries(
    st.sampled_from(["card_number", "name", "plate", "zone", "x"]),
    st.text(max_size=14) | st.sampled_from(["100200300400", "D-AB 1234", "12"]) | JSON_VALUES,
    max_size=3,
)
TIMES = st.sampled_from(
    ["2026-11-25T00:00:00Z", "2027-01-01T00:00:00+01:00", "2026-12-01T00:00:00", "2026-11-24"]
) | st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat())
BODIES = (
    st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=4)
    | st.fixed_dictionaries(
        {
            "type": st.sampled_from(["library", "parking", "pool"]) | JSON_VALUES,
            "holder": HOLDERISH,
        },
        optional={"valid_from": TIMES | JSON_VALUES, "valid_until": TIMES | JSON_VALUES},
    )
    | st.sampled_from([LIBRARY, PARKING]).flatmap(
        lambda valid: st.fixed_dictionaries(
            {name: st.just(value) for name, value in valid.items()},
            optional={"valid_from": TIMES, "valid_until": TIMES},
        )
    )
    | JSON_VALUES
)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=BODIES | st.binary(max_size=64))
def test_no_body_ever_gets_a_500(client: FlaskClient, issuer: dict[str, str], body: Any) -> None:
    if isinstance(body, bytes):
        response = client.post("/api/v1/passes", data=body, content_type=JSON, headers=issuer)
    else:
        response = client.post("/api/v1/passes", json=body, headers=issuer)
    assert response.status_code in (201, 400, 409, 413, 422), response.get_data(as_text=True)
    if response.status_code != 201:
        payload = response.get_json()
        assert set(payload) == {"error"} and {"code", "message", "field"} <= set(
            payload["error"]
        ), payload


# -- idempotency ----------------------------------------------------------------------


def test_a_retry_with_the_same_key_returns_the_first_answer(
    client: FlaskClient, db: Database, issuer: dict[str, str]
) -> None:
    headers = {**issuer, "Idempotency-Key": "order-4711"}
    first = client.post("/api/v1/passes", json=LIBRARY, headers=headers)
    # The same request, its members in another order and spaced differently.
    raw = json.dumps({"holder": LIBRARY["holder"], "type": "library"}, indent=3)
    again = client.post("/api/v1/passes", data=raw, content_type=JSON, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()  # claim_url included
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert count(db, PassRow) == 1
    with db.transaction(write=False) as session:
        stored = session.scalars(select(IdempotencyKeyRow)).one()
        secret = urlsplit(first.get_json()["claim_url"]).path[3:]
        assert secret not in json.dumps(stored.response)  # sealed, not stored in the clear
        assert first.get_json()["token"] not in json.dumps(stored.response)


def test_a_replay_answers_as_the_first_request_did_though_its_checks_would_now_refuse_it(
    app: Flask, client: FlaskClient, db: Database, issuer: dict[str, str]
) -> None:
    """Without a key, issuance checks the request before the write transaction opens;
    with one, the stored answer comes first: a client retrying after a timeout gets
    its pass, not a refusal of a start time that has since slipped a day into the past."""
    started = (NOW - timedelta(hours=23)).isoformat()
    body = {**LIBRARY, "valid_from": started}
    headers = {**issuer, "Idempotency-Key": "order-4712"}
    first = client.post("/api/v1/passes", json=body, headers=headers)
    assert first.status_code == 201, first.get_json()
    app.extensions["wallet"].clock = lambda: NOW + timedelta(hours=2)
    again = client.post("/api/v1/passes", json=body, headers=headers)
    assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (201, "true")
    assert again.get_json() == first.get_json()
    error(
        client.post("/api/v1/passes", json=body, headers=issuer), 422, "invalid_input", "valid_from"
    )
    assert count(db, PassRow) == 1


def test_the_same_key_with_another_body_is_refused(
    client: FlaskClient, db: Database, issuer: dict[str, str]
) -> None:
    headers = {**issuer, "Idempotency-Key": "order-4711"}
    assert client.post("/api/v1/passes", json=LIBRARY, headers=headers).status_code == 201
    other = client.post("/api/v1/passes", json=PARKING, headers=headers)
    error(other, 422, "idempotency_key_reused", "Idempotency-Key")
    assert count(db, PassRow) == 1


def test_keys_belong_to_one_token(
    client: FlaskClient, db: Database, issuer: dict[str, str], make_token: Callable[[str], str]
) -> None:
    other = {**bearer(make_token("issuer")), "Idempotency-Key": "shared"}
    mine = {**issuer, "Idempotency-Key": "shared"}
    a = client.post("/api/v1/passes", json=LIBRARY, headers=mine).get_json()["serial"]
    b = client.post("/api/v1/passes", json=LIBRARY, headers=other).get_json()["serial"]
    assert a != b and count(db, PassRow) == 2


def test_a_failed_request_does_not_use_up_its_key(
    client: FlaskClient, db: Database, issuer: dict[str, str]
) -> None:
    headers = {**issuer, "Idempotency-Key": "retry-me"}
    bad = {**LIBRARY, "holder": {**LIBRARY["holder"], "card_number": "12"}}
    error(
        client.post("/api/v1/passes", json=bad, headers=headers),
        422,
        "holder_data_invalid",
        "holder.card_number",
    )
    assert count(db, IdempotencyKeyRow) == 0
    assert client.post("/api/v1/passes", json=LIBRARY, headers=headers).status_code == 201


def test_malformed_idempotency_keys_are_refused(
    client: FlaskClient, db: Database, issuer: dict[str, str]
) -> None:
    for key in ("", "x" * 256, "schlüssel", "tab\there"):
        response = client.post(
            "/api/v1/passes", json=LIBRARY, headers={**issuer, "Idempotency-Key": key}
        )
        error(response, 422, BAD, "Idempotency-Key")
    assert_nothing_written(db)


def test_a_retried_reissue_returns_the_same_new_pass(
    client: FlaskClient, db: Database, services: Services, issuer: dict[str, str]
) -> None:
    old = issue_direct(db, services, "library")
    headers = {**issuer, "Idempotency-Key": "lost-phone-1"}
    path = f"/api/v1/passes/{old.record.serial}/reissue"
    first = client.post(path, json={"reason": "lost"}, headers=headers)
    again = client.post(path, json={"reason": "lost"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()
    assert count(db, PassRow) == 2
    # Without the key, the retry meets a revoked pass.
    error(client.post(path, json={"reason": "lost"}, headers=issuer), 409, "invalid_transition")
    # The same key on another route is another request.
    other = client.post("/api/v1/passes", json=LIBRARY, headers=headers)
    error(other, 422, "idempotency_key_reused", "Idempotency-Key")


def test_racing_duplicates_create_exactly_one_pass(
    app: Flask, db: Database, services: Services, issuer: dict[str, str]
) -> None:
    headers = {**issuer, "Idempotency-Key": "race-1"}
    barrier = threading.Barrier(8)
    answers: list[tuple[int, dict[str, Any]]] = []
    lock = threading.Lock()

    def post() -> None:
        client = app.test_client()
        barrier.wait()
        response = client.post("/api/v1/passes", json=LIBRARY, headers=headers)
        with lock:
            answers.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [status for status, _ in answers] == [201] * 8, answers
    assert len({json.dumps(body, sort_keys=True) for _, body in answers}) == 1
    assert count(db, PassRow) == 1 and count(db, IdempotencyKeyRow) == 1
    with db.transaction(write=False) as session:
        assert audit.verify_chain(session, key=services.audit_key).intact


@pytest.mark.parametrize(
    "name",
    [
        "Erika \u202eanmretsuM",
        "Erika\u200bMustermann",
        "\ufeffErika",
        "Erika\u2028M",
        "Erika\uffff",
    ],
)
def test_bidi_override_in_holder_name_is_refused(
    client: FlaskClient, db: Database, issuer: dict[str, str], name: str
) -> None:
    body = {"type": "library", "holder": {"card_number": "100200300400", "name": name}}
    response = client.post("/api/v1/passes", json=body, headers=issuer)
    message = error(response, 422, HOLDER, "holder.name")
    assert "invisible or control character" in message
    assert_nothing_written(db)


def test_decomposed_holder_name_is_signed_in_nfc(
    client: FlaskClient, issuer: dict[str, str]
) -> None:
    body = {"type": "library", "holder": {"card_number": "100200300400", "name": "Rene\u0301"}}
    response = client.post("/api/v1/passes", json=body, headers=issuer)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["holder"]["name"] == "Ren\u00e9"
    verdict = client.post("/api/v1/verify", json={"token": response.get_json()["token"]},
                          headers=issuer).get_json()  # fmt: skip
    assert verdict["claims"]["holder"]["name"] == "Ren\u00e9"


def test_an_issuance_into_a_list_this_process_knows_is_one_round_trip(
    client: FlaskClient, db: Database, issuer: dict[str, str]
) -> None:
    """Storing a pass is then one statement, which PostgreSQL commits on its own:
    no BEGIN before it and no COMMIT after it (two round trips of three)."""
    for _ in range(2):  # the first makes the list, the second counts it: now it is known
        assert client.post("/api/v1/passes", json=LIBRARY, headers=issuer).status_code == 201
    with sent_statements(db.engine) as sent:
        answer = client.post("/api/v1/passes", json=LIBRARY, headers=issuer)
    assert answer.status_code == 201, answer.get_json()
    stores = [i for i, statement in enumerate(sent) if "INSERT INTO passes" in statement]
    assert len(stores) == 1, sent
    before, after = sent[: stores[0]], sent[stores[0] + 1 :]
    if db.is_sqlite:  # in-process: still one write transaction, nothing to save
        assert before[-1] == "BEGIN IMMEDIATE" and after[-1] == "COMMIT", sent
    else:
        assert before[-1:] != ["BEGIN"] and after[:1] != ["COMMIT"], sent
    serial = answer.get_json()["serial"]
    with db.transaction(write=False) as session:
        row = session.scalars(select(PassRow).where(PassRow.serial == serial)).one()
        assert session.scalar(select(func.count()).where(ClaimLinkRow.pass_id == row.id)) == 1
        entries = select(func.count()).where(AuditEntryRow.target == serial)
        assert session.scalar(entries) == 1
