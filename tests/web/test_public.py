"""Public endpoints: JWKS, status lists with caching headers, bundle, root key."""

from __future__ import annotations

import gzip

import pytest
from flask.testing import FlaskClient

from tests.factories import NOW
from wallet.bundle import root_public_key, verify_bundle
from wallet.services import passes
from wallet.services.context import Services
from wallet.store.db import Database
from wallet.verifier import Verifier


def issue(db: Database, services: Services, type_id: str = "parking") -> passes.IssuedPass:
    holder = {"plate": "D-AB 1234", "zone": "12"}
    if type_id == "library":
        holder = {"card_number": "100200300400", "name": "Erika Mustermann"}
    with db.transaction(write=True) as session:
        return passes.issue_pass(
            session, services, type_id=type_id, holder=holder, actor="test", now=NOW
        )


def test_jwks_lists_pass_keys_only(client: FlaskClient, services: Services) -> None:
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    kids = {k["kid"] for k in response.get_json()["keys"]}
    pass_kids = {k.kid for k in services.keys.public_keys() if k.info.role.value == "pass"}
    assert kids == pass_kids and kids


def test_status_list_is_served_with_etag_cache_control_and_gzip(
    client: FlaskClient, db: Database, services: Services
) -> None:
    issued = issue(db, services)
    assert issued.record.state == "valid"
    name = "parking-1"
    response = client.get(f"/status/{name}")
    assert response.status_code == 200
    assert response.mimetype == "application/statuslist+jwt"
    assert (
        response.headers["Cache-Control"] == f"public, max-age={services.settings.status_list_ttl}"
    )
    etag = response.headers["ETag"]
    again = client.get(f"/status/{name}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    zipped = client.get(f"/status/{name}", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.data) == response.data
    assert client.get("/status/nope-1").status_code == 404
    assert client.get("/status/nope-1").get_json()["error"]["code"] == "not_found"


def test_revocation_is_in_the_very_next_status_list_and_bundle(
    client: FlaskClient, db: Database, services: Services
) -> None:
    issued = issue(db, services)
    root = root_public_key(client.get("/verifier/root-key.pem").data)
    first = client.get("/verifier/bundle")
    assert first.mimetype == "application/jwt"
    verifier = Verifier(verify_bundle(first.data.decode(), root, now=NOW))
    assert verifier.check(issued.qr_text, now=NOW).state == "valid"
    etag = client.get("/status/parking-1").headers["ETag"]
    with db.transaction(write=True) as session:
        passes.change_state(
            session, services, issued.record.serial, action="revoke", reason="x", actor="t", now=NOW
        )
    assert client.get("/status/parking-1", headers={"If-None-Match": etag}).status_code == 200
    second = client.get("/verifier/bundle")
    assert second.headers["ETag"] != first.headers["ETag"]
    bundle = verify_bundle(second.data.decode(), root, now=NOW)
    assert bundle.version > verifier.bundle.version
    assert Verifier(bundle).check(issued.qr_text, now=NOW).state == "revoked"


def test_security_headers_are_set(client: FlaskClient) -> None:
    headers = client.get("/.well-known/jwks.json").headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]


def test_wrong_method_answers_json_with_allow_header(client: FlaskClient) -> None:
    response = client.post("/.well-known/jwks.json")
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


def test_client_address_comes_from_the_trusted_proxy_only(db: Database, services: Services) -> None:
    """Behind one TLS proxy the rate limits must see the citizen, not the proxy."""
    from dataclasses import replace

    from flask import request

    from wallet.web import create_app

    seen: list[str | None] = []
    for hops in (0, 1):
        settings = replace(services.settings, trusted_proxies=hops)
        app = create_app(settings, services=services, db=db, config={"TESTING": True})
        app.before_request(lambda: seen.append(request.remote_addr))  # type: ignore[arg-type,func-returns-value]
        app.test_client().get(
            "/.well-known/jwks.json",
            headers={"X-Forwarded-For": "203.0.113.7"},
            environ_base={"REMOTE_ADDR": "10.0.0.2"},
        )
    assert seen == ["10.0.0.2", "203.0.113.7"]


@pytest.mark.parametrize("type_id", ["library", "parking"])
def test_the_logo_google_fetches_is_served_where_the_design_points(
    client: FlaskClient, services: Services, type_id: str
) -> None:
    from wallet.formats.google import load_google_design

    design = load_google_design(services.settings.pass_types_dir / type_id)
    response = client.get("/" + design.logo)
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert response.data.startswith(b"\x89PNG\r\n\x1a\n")
    again = client.get("/" + design.logo, headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304


@pytest.mark.parametrize("path", ["/passes/nosuchtype/logo.png", "/passes/..%2Fkeys/logo.png"])
def test_logos_of_unknown_types_are_not_found(client: FlaskClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_the_bare_address_leads_to_the_console_not_a_404(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/console/")
    assert client.get("/", follow_redirects=True).status_code == 200
