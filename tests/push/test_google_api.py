"""The Google Wallet REST client against a local stand-in for Google's servers."""

# Fixtures imported from the stand-in reappear as test parameters, which is what F811 flags.
# ruff: noqa: F811

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.factories import NOW, PASS_TYPES
from tests.standins.google_wallet import (  # noqa: F401 - the stand-in's fixtures
    ISSUER_ID,
    PRIVATE_KEY_ID,
    SCOPE,
    SERVICE_ACCOUNT_EMAIL,
    GoogleWalletStandIn,
    google_wallet_server,
    other_rsa_key,
    service_account_file,
    wallet_pass,
)
from wallet.config import PROJECT_ROOT
from wallet.domain import WalletPass
from wallet.errors import DeliveryError
from wallet.formats.google import (
    ServiceAccount,
    generic_class,
    generic_object,
    load_google_design,
    load_service_account,
    object_id,
    save_url,
    state_patch,
)
from wallet.push.google_api import GoogleWalletClient

PUBLIC = "https://pass.stadt-musterstadt.de"


class Clock:
    """A clock tests move by hand; shared by the client and the stand-in."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock(google_wallet_server: GoogleWalletStandIn) -> Clock:
    shared = Clock(NOW)
    google_wallet_server.clock = shared
    return shared


@pytest.fixture
def account(service_account_file: Path) -> ServiceAccount:
    return load_service_account(service_account_file)


@pytest.fixture
def client(
    account: ServiceAccount, google_wallet_server: GoogleWalletStandIn, clock: Clock
) -> Iterator[GoogleWalletClient]:
    with GoogleWalletClient(
        account,
        base_url=google_wallet_server.base_url,
        token_url=google_wallet_server.token_url,
        timeout=5,
        clock=clock,
    ) as wallet_client:
        yield wallet_client


def google_class(type_id: str = "library") -> dict[str, Any]:
    return generic_class(
        issuer_id=ISSUER_ID,
        pass_type=PASS_TYPES[type_id],
        design=load_google_design(PROJECT_ROOT / "templates" / "passes" / type_id),
        public_base_url=PUBLIC,
    )


def google_object(type_id: str = "library", *, of: WalletPass | None = None) -> dict[str, Any]:
    return generic_object(
        of or wallet_pass(type_id),
        issuer_id=ISSUER_ID,
        design=load_google_design(PROJECT_ROOT / "templates" / "passes" / type_id),
        public_base_url=PUBLIC,
    )


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# --- the access token ---


def test_token_is_obtained_by_the_jwt_bearer_grant(
    client: GoogleWalletClient, google_wallet_server: GoogleWalletStandIn, account: ServiceAccount
) -> None:
    client.ensure_class(google_class())
    [token_request] = google_wallet_server.token_requests()
    assert token_request.form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assertion = token_request.form["assertion"]
    assert jwt.get_unverified_header(assertion)["kid"] == PRIVATE_KEY_ID
    claims = jwt.decode(
        assertion,
        account.private_key.public_key(),
        algorithms=["RS256"],
        audience=google_wallet_server.token_url,
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iss"] == SERVICE_ACCOUNT_EMAIL and claims["scope"] == SCOPE
    assert claims["iat"] == int(NOW.timestamp()) and claims["exp"] == claims["iat"] + 3600
    [api_request] = google_wallet_server.api_requests()
    assert api_request.bearer == google_wallet_server.issued_tokens[0]


def test_token_is_cached_while_it_is_fresh(
    client: GoogleWalletClient, google_wallet_server: GoogleWalletStandIn, clock: Clock
) -> None:
    client.ensure_class(google_class())
    client.insert_object(google_object())
    clock.advance(seconds=3600 - 61)
    client.get_object(object_id(ISSUER_ID, "SERIAL0123456789"))
    assert len(google_wallet_server.token_requests()) == 1
    bearers = {r.bearer for r in google_wallet_server.api_requests()}
    assert bearers == {google_wallet_server.issued_tokens[0]}


def test_token_is_refreshed_a_minute_before_it_expires(
    client: GoogleWalletClient, google_wallet_server: GoogleWalletStandIn, clock: Clock
) -> None:
    client.ensure_class(google_class())
    clock.advance(seconds=3600 - 60)
    client.ensure_class(google_class())
    assert len(google_wallet_server.token_requests()) == 2
    first, second = google_wallet_server.issued_tokens
    assert first != second
    assert google_wallet_server.api_requests()[-1].bearer == second
    # The new assertion was stamped with the moved clock.
    assertion = google_wallet_server.token_requests()[-1].form["assertion"]
    iat = jwt.decode(assertion, options={"verify_signature": False})["iat"]
    assert iat == int(clock.now.timestamp())


def test_token_is_refreshed_once_on_a_401(
    client: GoogleWalletClient, google_wallet_server: GoogleWalletStandIn
) -> None:
    client.ensure_class(google_class())
    google_wallet_server.revoke_tokens()
    assert client.get_object(object_id(ISSUER_ID, "unknown")) is None
    assert len(google_wallet_server.token_requests()) == 2
    bearers = [r.bearer for r in google_wallet_server.api_requests()]
    assert bearers[-2] == google_wallet_server.issued_tokens[0]
    assert bearers[-1] == google_wallet_server.issued_tokens[1]


def test_a_second_401_is_not_retried_again(
    client: GoogleWalletClient, google_wallet_server: GoogleWalletStandIn
) -> None:
    google_wallet_server.fail_next(2, status=401)
    with pytest.raises(DeliveryError) as caught:
        client.ensure_class(google_class())
    assert caught.value.status == 401 and caught.value.retry is False
    assert len(google_wallet_server.api_requests()) == 2
    assert len(google_wallet_server.token_requests()) == 2


# --- classes and objects ---


def test_ensure_class_creates_then_updates(
    client: GoogleWalletClient, google_wallet_server: GoogleWalletStandIn
) -> None:
    body = google_class("parking")
    assert client.ensure_class(body) == "created"
    assert google_wallet_server.classes[body["id"]] == body
    changed = {**body, "multipleDevicesAndHoldersAllowedStatus": "ONE_USER_ONE_DEVICE"}
    assert client.ensure_class(changed) == "updated"
    assert google_wallet_server.classes[body["id"]] == changed
    methods = [(r.method, r.path.rsplit("/", 1)[-1]) for r in google_wallet_server.api_requests()]
    assert methods == [("POST", "genericClass"), ("POST", "genericClass"), ("PUT", body["id"])]


def test_insert_get_and_patch_an_object(
    client: GoogleWalletClient, google_wallet_server: GoogleWalletStandIn
) -> None:
    client.ensure_class(google_class("parking"))
    permit = wallet_pass("parking")
    body = google_object("parking", of=permit)
    assert client.insert_object(body) is True
    held = client.get_object(body["id"])
    assert held is not None
    assert held["barcode"]["value"] == permit.token
    assert held["state"] == "ACTIVE"

    assert client.patch_object(body["id"], state_patch(replace(permit, state="revoked")))
    after = client.get_object(body["id"])
    assert after is not None and after["state"] == "INACTIVE"
    state_module = next(m for m in after["textModulesData"] if m["id"] == "state")
    assert state_module["body"] == "Widerrufen"
    # Untouched members stay as inserted.
    assert after["barcode"] == held["barcode"] and after["header"] == held["header"]


def test_inserting_an_existing_object_is_not_an_error(
    client: GoogleWalletClient, google_wallet_server: GoogleWalletStandIn
) -> None:
    client.ensure_class(google_class())
    body = google_object()
    assert client.insert_object(body) is True
    assert client.insert_object(body) is False
    assert len(google_wallet_server.objects) == 1


def test_patching_an_object_google_does_not_know_returns_false(
    client: GoogleWalletClient, google_wallet_server: GoogleWalletStandIn
) -> None:
    patched = client.patch_object(object_id(ISSUER_ID, "NEVERSAVED000000"), {"state": "INACTIVE"})
    assert patched is False
    assert google_wallet_server.objects == {}


def test_save_link_after_insert_names_the_inserted_object(
    client: GoogleWalletClient, account: ServiceAccount
) -> None:
    """The flow for real passes: too long as a whole, so insert first and link by id."""
    client.ensure_class(google_class())
    body = google_object()
    classes = [google_class()]
    assert save_url(account, objects=[body], classes=classes, origins=[PUBLIC], now=NOW) is None
    client.insert_object(body)
    url = save_url(account, object_ids=[body["id"]], origins=[PUBLIC], now=NOW)
    assert url is not None
    claims = jwt.decode(url.rsplit("/", 1)[1], options={"verify_signature": False})
    assert client.get_object(claims["payload"]["genericObjects"][0]["id"]) is not None


# --- failures ---


def test_service_unavailable_is_retryable(
    client: GoogleWalletClient, google_wallet_server: GoogleWalletStandIn
) -> None:
    client.ensure_class(google_class())
    google_wallet_server.fail_next(1, status=503)
    with pytest.raises(DeliveryError) as caught:
        client.insert_object(google_object())
    assert caught.value.retry is True and caught.value.status == 503
    assert "503" in caught.value.message and "currently unavailable" in caught.value.message
    # The next attempt goes through: the outbox worker's retry would succeed.
    assert client.insert_object(google_object()) is True


@pytest.mark.parametrize("status", [429, 500, 502])
def test_rate_limits_and_server_errors_are_retryable(
    client: GoogleWalletClient, google_wallet_server: GoogleWalletStandIn, status: int
) -> None:
    google_wallet_server.fail_next(1, status=status)
    with pytest.raises(DeliveryError) as caught:
        client.ensure_class(google_class())
    assert caught.value.retry is True and caught.value.status == status


def test_rejected_request_is_not_retryable_and_says_why(
    client: GoogleWalletClient, google_wallet_server: GoogleWalletStandIn
) -> None:
    # No class yet: Google refuses the object (400) and will keep refusing it.
    with pytest.raises(DeliveryError) as caught:
        client.insert_object(google_object())
    error = caught.value
    assert error.retry is False and error.status == 400
    assert f"Class {ISSUER_ID}.library does not exist" in error.message
    assert google_wallet_server.issued_tokens[0] not in error.message


def test_another_issuers_id_is_refused_and_not_retried(
    client: GoogleWalletClient,
) -> None:
    foreign = {**google_class(), "id": "1234567890.library"}
    with pytest.raises(DeliveryError) as caught:
        client.ensure_class(foreign)
    assert caught.value.status == 403 and caught.value.retry is False


def test_token_endpoint_outage_is_retryable(
    client: GoogleWalletClient, google_wallet_server: GoogleWalletStandIn
) -> None:
    google_wallet_server.fail_next(1, status=503, endpoint="token")
    with pytest.raises(DeliveryError) as caught:
        client.ensure_class(google_class())
    assert caught.value.retry is True and caught.value.status == 503
    assert google_wallet_server.api_requests() == []
    assert client.ensure_class(google_class()) == "created"


def test_connection_refused_is_retryable(account: ServiceAccount) -> None:
    port = free_port()
    with (
        GoogleWalletClient(
            account,
            base_url=f"http://127.0.0.1:{port}/walletobjects/v1",
            token_url=f"http://127.0.0.1:{port}/token",
            timeout=2,
        ) as unreachable,
        pytest.raises(DeliveryError) as caught,
    ):
        unreachable.get_object(object_id(ISSUER_ID, "SERIAL0123456789"))
    assert caught.value.retry is True and caught.value.status is None


def test_timeout_is_retryable(
    account: ServiceAccount, google_wallet_server: GoogleWalletStandIn, clock: Clock
) -> None:
    with GoogleWalletClient(
        account,
        base_url=google_wallet_server.base_url,
        token_url=google_wallet_server.token_url,
        timeout=0.2,
        clock=clock,
    ) as impatient:
        impatient.ensure_class(google_class())
        google_wallet_server.hang_next(5)
        with pytest.raises(DeliveryError) as caught:
            impatient.get_object(object_id(ISSUER_ID, "SERIAL0123456789"))
    assert caught.value.retry is True and "timed out" in caught.value.message


def test_garbled_token_answer_is_retryable(account: ServiceAccount) -> None:
    def garbled(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>proxy error</html>")

    with (
        GoogleWalletClient(
            account,
            base_url="http://127.0.0.1:9/walletobjects/v1",
            token_url="http://127.0.0.1:9/token",
            transport=httpx.MockTransport(garbled),
        ) as confused,
        pytest.raises(DeliveryError) as caught,
    ):
        confused.ensure_class(google_class())
    assert caught.value.retry is True and "not a JSON object" in caught.value.message


# --- attacks ---


def test_token_request_signed_by_another_key_is_refused(
    account: ServiceAccount, google_wallet_server: GoogleWalletStandIn, clock: Clock
) -> None:
    """The stand-in really checks the assertion: a key Google does not know gets no token."""
    impostor = replace(account, private_key=other_rsa_key())
    with (
        GoogleWalletClient(
            impostor,
            base_url=google_wallet_server.base_url,
            token_url=google_wallet_server.token_url,
            clock=clock,
        ) as forged,
        pytest.raises(DeliveryError) as caught,
    ):
        forged.ensure_class(google_class())
    assert caught.value.status == 400 and caught.value.retry is False
    assert "Invalid JWT Signature" in caught.value.message
    assert google_wallet_server.issued_tokens == []
    assert google_wallet_server.api_requests() == []


def test_token_request_replayed_to_another_audience_is_refused(
    account: ServiceAccount, google_wallet_server: GoogleWalletStandIn, clock: Clock
) -> None:
    """An assertion made for another token endpoint is not accepted here."""
    assertion = jwt.encode(
        {
            "iss": SERVICE_ACCOUNT_EMAIL,
            "scope": SCOPE,
            "aud": "https://oauth2.googleapis.com/token",
            "iat": int(NOW.timestamp()),
            "exp": int(NOW.timestamp()) + 3600,
        },
        account.private_key,
        algorithm="RS256",
        headers={"kid": PRIVATE_KEY_ID},
    )
    response = httpx.post(
        google_wallet_server.token_url,
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion},
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert google_wallet_server.issued_tokens == []


def test_expired_assertion_is_refused(
    account: ServiceAccount, google_wallet_server: GoogleWalletStandIn, clock: Clock
) -> None:
    """A captured assertion stops working after its hour."""
    with (
        GoogleWalletClient(
            account,
            base_url=google_wallet_server.base_url,
            token_url=google_wallet_server.token_url,
            clock=lambda: NOW - timedelta(hours=2),
        ) as stale,
        pytest.raises(DeliveryError) as caught,
    ):
        stale.ensure_class(google_class())
    assert caught.value.status == 400 and caught.value.retry is False
    assert google_wallet_server.issued_tokens == []


def test_request_without_a_valid_access_token_is_refused(
    google_wallet_server: GoogleWalletStandIn, clock: Clock
) -> None:
    """The stand-in guards its resources like Google: no bearer token, no data."""
    url = google_wallet_server.base_url + f"/genericObject/{ISSUER_ID}.x"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer ya29.guess"}).status_code == 401


@pytest.mark.parametrize(
    "resource_id", ["../genericClass/x", f"{ISSUER_ID}.x/../y", f"{ISSUER_ID}.x?fields=*", ""]
)
def test_object_id_with_path_characters_is_refused_before_any_request(
    client: GoogleWalletClient, google_wallet_server: GoogleWalletStandIn, resource_id: str
) -> None:
    with pytest.raises(ValueError):
        client.patch_object(resource_id, {"state": "INACTIVE"})
    with pytest.raises(ValueError):
        client.get_object(resource_id)
    assert google_wallet_server.requests == []


def test_access_token_never_appears_in_errors_or_repr(
    client: GoogleWalletClient, google_wallet_server: GoogleWalletStandIn
) -> None:
    client.ensure_class(google_class())
    google_wallet_server.fail_next(1, status=400)
    with pytest.raises(DeliveryError) as caught:
        client.insert_object(google_object())
    token = google_wallet_server.issued_tokens[0]
    assert token not in str(caught.value) and token not in repr(client)
    assert "PRIVATE KEY" not in repr(client)


def test_client_uses_real_time_by_default(
    account: ServiceAccount, google_wallet_server: GoogleWalletStandIn
) -> None:
    """Without an injected clock the assertion carries the current time and is accepted."""
    before = int(datetime.now(UTC).timestamp())
    with GoogleWalletClient(
        account, base_url=google_wallet_server.base_url, token_url=google_wallet_server.token_url
    ) as real:
        assert real.ensure_class(google_class()) == "created"
    assertion = google_wallet_server.token_requests()[0].form["assertion"]
    iat = jwt.decode(assertion, options={"verify_signature": False})["iat"]
    assert before <= iat <= int(datetime.now(UTC).timestamp())
