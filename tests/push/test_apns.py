"""The APNs client against the local HTTP/2 TLS stand-in (tests/standins/apns.py).

The stand-in verifies provider tokens and HTTP/2 like APNs does; the first
tests below show that it really does, so the client tests that pass against it
mean something. Attack tests are named after the attack they stop.
"""

# Fixtures imported from the stand-in reappear as test parameters, which is what F811 flags.
# ruff: noqa: F811

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.standins.apns import (  # noqa: F401 - the stand-in's fixtures
    PASS_TYPE_ID,
    ApnsStandIn,
    Authority,
    Pki,
    ProviderKey,
    Reply,
    _apns_server_module,
    apns_pki,
    apns_server,
    make_client_identity,
    make_provider_key,
    provider_key,
    unregistered,
    write_cert,
    write_key,
)
from wallet.errors import ConfigError, DeliveryError, InputError
from wallet.push.apns import (
    PRIORITY,
    PUSH_TYPE,
    TOKEN_MIN_INTERVAL,
    TOKEN_REFRESH_AFTER,
    ApnsClient,
    CertificateAuth,
    Delivery,
    TokenAuth,
    load_token_auth,
    validate_device_token,
)

DEVICE = "0f" * 32
OTHER_DEVICE = "a1" * 32


@dataclass
class Clock:
    """A clock the test moves by hand."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


def real_now() -> datetime:
    # The stand-in judges token age by its own wall clock, as APNs would.
    return datetime.now(UTC).replace(microsecond=0)


def token_auth(key: ProviderKey) -> TokenAuth:
    return load_token_auth(key.path, key_id=key.key_id, team_id=key.team_id)


@pytest.fixture
def client(apns_server: ApnsStandIn, provider_key: ProviderKey) -> Iterator[ApnsClient]:
    with ApnsClient(
        auth=token_auth(provider_key), base_url=apns_server.base_url, ca_file=apns_server.ca_file
    ) as apns:
        yield apns


def raw_http(server: ApnsStandIn, *, http2: bool) -> httpx.Client:
    """A plain HTTP client, to show what the stand-in does with requests ours never sends."""
    context = ssl.create_default_context(cafile=str(server.ca_file))
    return httpx.Client(verify=context, http2=http2)


def raw_token(key: ProviderKey, *, iat: datetime, signing_key: object = None) -> str:
    return jwt.encode(
        {"iss": key.team_id, "iat": int(iat.timestamp())},
        signing_key or key.key,  # type: ignore[arg-type]
        algorithm="ES256",
        headers={"kid": key.key_id},
    )


def raw_push(http: httpx.Client, server: ApnsStandIn, bearer: str) -> httpx.Response:
    return http.post(
        f"{server.base_url}/3/device/{DEVICE}",
        content=b"{}",
        headers={
            "authorization": f"bearer {bearer}",
            "apns-topic": PASS_TYPE_ID,
            "apns-push-type": "background",
            "apns-priority": "5",
        },
    )


# --------------------------------------------------------------- the stand-in is strict


def test_standin_refuses_http1(apns_server: ApnsStandIn, provider_key: ProviderKey) -> None:
    with raw_http(apns_server, http2=False) as http:
        response = raw_push(http, apns_server, raw_token(provider_key, iat=real_now()))
    assert response.status_code == 505
    assert apns_server.pushes[0].http_version == "1.1"


def test_standin_rejects_provider_token_older_than_an_hour(
    apns_server: ApnsStandIn, provider_key: ProviderKey
) -> None:
    stale = raw_token(provider_key, iat=real_now() - timedelta(minutes=61))
    with raw_http(apns_server, http2=True) as http:
        response = raw_push(http, apns_server, stale)
    assert (response.status_code, response.json()) == (403, {"reason": "ExpiredProviderToken"})


def test_standin_punishes_provider_token_churn_on_one_connection(
    apns_server: ApnsStandIn, provider_key: ProviderKey
) -> None:
    now = real_now()
    with raw_http(apns_server, http2=True) as http:
        first = raw_push(http, apns_server, raw_token(provider_key, iat=now - timedelta(minutes=5)))
        second = raw_push(http, apns_server, raw_token(provider_key, iat=now))
    assert first.status_code == 200
    assert (second.status_code, second.json()) == (429, {"reason": "TooManyProviderTokenUpdates"})


def test_forged_provider_token_is_rejected(
    apns_server: ApnsStandIn, provider_key: ProviderKey
) -> None:
    """A token with the right kid and team but signed by another key gets nowhere."""
    forger = ec.generate_private_key(ec.SECP256R1())
    forged = TokenAuth(forger, key_id=provider_key.key_id, team_id=provider_key.team_id)
    with (
        ApnsClient(auth=forged, base_url=apns_server.base_url, ca_file=apns_server.ca_file) as apns,
        pytest.raises(DeliveryError) as caught,
    ):
        apns.send(DEVICE, topic=PASS_TYPE_ID)
    assert (caught.value.status, caught.value.retry) == (403, False)
    # Refreshed once and retried once, then given up: no loop minting tokens.
    pushes = apns_server.pushes
    assert [(p.status, p.reason) for p in pushes] == [(403, "InvalidProviderToken")] * 2
    assert pushes[0].bearer != pushes[1].bearer


@pytest.mark.parametrize(
    ("key_id", "team_id"), [("ABC123DEFG", "ZZZ999ZZZZ"), ("ZZZ999ZZZZ", "DEF123GHIJ")]
)
def test_provider_token_with_our_key_but_another_team_or_key_id_is_rejected(
    apns_server: ApnsStandIn, provider_key: ProviderKey, key_id: str, team_id: str
) -> None:
    auth = TokenAuth(provider_key.key, key_id=key_id, team_id=team_id)
    with (
        ApnsClient(auth=auth, base_url=apns_server.base_url, ca_file=apns_server.ca_file) as apns,
        pytest.raises(DeliveryError),
    ):
        apns.send(DEVICE, topic=PASS_TYPE_ID)
    assert {p.reason for p in apns_server.pushes} == {"InvalidProviderToken"}


def test_alg_none_provider_token_is_rejected(
    apns_server: ApnsStandIn, provider_key: ProviderKey
) -> None:
    unsigned = jwt.encode(
        {"iss": provider_key.team_id, "iat": int(real_now().timestamp())},
        "",
        algorithm="none",
        headers={"kid": provider_key.key_id},
    )
    with raw_http(apns_server, http2=True) as http:
        response = raw_push(http, apns_server, unsigned)
    assert (response.status_code, response.json()) == (403, {"reason": "InvalidProviderToken"})


# --------------------------------------------------------------- sending


def test_delivered_push_is_an_http2_pass_update_with_an_empty_payload(
    client: ApnsClient, apns_server: ApnsStandIn, provider_key: ProviderKey
) -> None:
    outcome = client.send(DEVICE.upper(), topic=PASS_TYPE_ID)

    (push,) = apns_server.pushes
    assert outcome.delivery is Delivery.DELIVERED and outcome.delivered
    assert outcome.apns_id == push.apns_id
    assert push.http_version == "2"
    assert push.method == "POST"
    assert push.path == f"/3/device/{DEVICE}"
    assert push.headers["apns-topic"] == PASS_TYPE_ID
    assert (push.headers["apns-push-type"], push.headers["apns-priority"]) == ("background", "5")
    assert (PUSH_TYPE, PRIORITY) == ("background", "5")
    assert push.body == b"{}" and json.loads(push.body) == {}
    assert push.bearer is not None
    header = jwt.get_unverified_header(push.bearer)
    assert header == {"alg": "ES256", "kid": provider_key.key_id}
    claims = jwt.decode(
        push.bearer, provider_key.public_key, algorithms=["ES256"], options={"verify_iat": False}
    )
    assert set(claims) == {"iss", "iat"} and claims["iss"] == provider_key.team_id


def test_pushes_share_one_tls_connection_and_one_provider_token(
    client: ApnsClient, apns_server: ApnsStandIn
) -> None:
    for device in (DEVICE, OTHER_DEVICE, DEVICE):
        assert client.send(device, topic=PASS_TYPE_ID).delivered
    pushes = apns_server.pushes
    assert len(pushes) == 3
    assert len(apns_server.connections) == 1
    assert len({p.bearer for p in pushes}) == 1


def test_410_unregistered_tells_the_caller_to_delete_the_registration(
    client: ApnsClient, apns_server: ApnsStandIn
) -> None:
    gone_at = datetime(2026, 3, 1, 12, 30, 15, 250000, tzinfo=UTC)
    apns_server.script(DEVICE, unregistered(gone_at))
    outcome = client.send(DEVICE, topic=PASS_TYPE_ID)
    assert outcome.delivery is Delivery.UNREGISTERED and outcome.unregistered
    assert outcome.reason == "Unregistered"
    assert outcome.unregistered_at == gone_at
    assert outcome.apns_id == apns_server.pushes[0].apns_id


def test_400_bad_device_token_counts_as_unregistered(
    client: ApnsClient, apns_server: ApnsStandIn
) -> None:
    apns_server.script(DEVICE, Reply(400, "BadDeviceToken"))
    outcome = client.send(DEVICE, topic=PASS_TYPE_ID)
    assert outcome.unregistered
    assert (outcome.reason, outcome.unregistered_at) == ("BadDeviceToken", None)


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (500, "InternalServerError"),
        (503, "ServiceUnavailable"),
        (503, "Shutdown"),
        (429, "TooManyRequests"),
        (429, "TooManyProviderTokenUpdates"),
    ],
)
def test_server_trouble_and_throttling_are_retried_later(
    client: ApnsClient, apns_server: ApnsStandIn, status: int, reason: str
) -> None:
    apns_server.script(DEVICE, Reply(status, reason))
    with pytest.raises(DeliveryError) as caught:
        client.send(DEVICE, topic=PASS_TYPE_ID)
    assert (caught.value.retry, caught.value.status) == (True, status)
    assert reason in caught.value.message
    assert len(apns_server.pushes) == 1  # the outbox retries, not the client


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (400, "BadTopic"),
        (400, "DeviceTokenNotForTopic"),
        (400, "TopicDisallowed"),
        (403, "Forbidden"),
        (413, "PayloadTooLarge"),
    ],
)
def test_rejected_requests_are_not_retried(
    client: ApnsClient, apns_server: ApnsStandIn, status: int, reason: str
) -> None:
    apns_server.script(DEVICE, Reply(status, reason))
    with pytest.raises(DeliveryError) as caught:
        client.send(DEVICE, topic=PASS_TYPE_ID)
    assert (caught.value.retry, caught.value.status) == (False, status)
    assert reason in caught.value.message
    assert len(apns_server.pushes) == 1


def test_scripted_answers_are_used_once_then_apns_answers_normally(
    client: ApnsClient, apns_server: ApnsStandIn
) -> None:
    apns_server.script(DEVICE, Reply(500, "InternalServerError"))
    with pytest.raises(DeliveryError):
        client.send(DEVICE, topic=PASS_TYPE_ID)
    assert client.send(DEVICE, topic=PASS_TYPE_ID).delivered


def test_slow_apns_times_out_and_is_retried_later(
    apns_server: ApnsStandIn, provider_key: ProviderKey
) -> None:
    apns_server.script(DEVICE, Reply(200, delay=1.0))
    with (
        ApnsClient(
            auth=token_auth(provider_key),
            base_url=apns_server.base_url,
            ca_file=apns_server.ca_file,
            timeout=0.2,
        ) as apns,
        pytest.raises(DeliveryError) as caught,
    ):
        apns.send(DEVICE, topic=PASS_TYPE_ID)
    assert (caught.value.retry, caught.value.status) == (True, None)


def test_unreachable_apns_is_retried_later(provider_key: ProviderKey, apns_pki: Pki) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and is closed now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        ApnsClient(
            auth=token_auth(provider_key),
            base_url=f"https://127.0.0.1:{port}",
            ca_file=apns_pki.ca_file,
            timeout=2,
        ) as apns,
        pytest.raises(DeliveryError) as caught,
    ):
        apns.send(DEVICE, topic=PASS_TYPE_ID)
    assert (caught.value.retry, caught.value.status) == (True, None)


def test_server_with_an_untrusted_certificate_is_refused(
    apns_server: ApnsStandIn, provider_key: ProviderKey, tmp_path: Path
) -> None:
    """Without the test CA the stand-in is a stranger: no token is sent to it."""
    strange_ca = tmp_path / "other-ca.pem"
    strange_ca.write_bytes(
        Authority.create("Some other CA").cert.public_bytes(serialization.Encoding.PEM)
    )
    with (
        ApnsClient(
            auth=token_auth(provider_key), base_url=apns_server.base_url, ca_file=strange_ca
        ) as apns,
        pytest.raises(DeliveryError) as caught,
    ):
        apns.send(DEVICE, topic=PASS_TYPE_ID)
    assert caught.value.retry is True
    assert apns_server.pushes == []


# --------------------------------------------------------------- input checks


@pytest.mark.parametrize(
    "device_token",
    [
        "../../../3/device/" + DEVICE,
        DEVICE + "/..",
        DEVICE[:-2] + "/x",
        "..%2f" + DEVICE,
        "%2e%2e" + DEVICE,
        DEVICE + "?topic=x",
        DEVICE + "#",
        DEVICE + "\n",
        DEVICE + "\r\nx-injected: 1",
        "\u0660" * 64,  # Arabic-Indic digits: \d would let them through
        " " + DEVICE,
        DEVICE[:-1],  # odd length: not whole bytes
        "ab" * 31,  # too short
        "ab" * 101,  # too long
        "",
    ],
)
def test_path_injection_through_the_device_token_is_refused_before_any_request(
    client: ApnsClient, apns_server: ApnsStandIn, device_token: str
) -> None:
    with pytest.raises(InputError) as caught:
        client.send(device_token, topic=PASS_TYPE_ID)
    assert caught.value.field == "device_token"
    assert apns_server.pushes == []


@pytest.mark.parametrize(
    "topic", ["", "pass.x\r\nauthorization: bearer x", "pass x", ".pass", "pass/x", "päss.x"]
)
def test_header_injection_through_the_topic_is_refused_before_any_request(
    client: ApnsClient, apns_server: ApnsStandIn, topic: str
) -> None:
    with pytest.raises(InputError) as caught:
        client.send(DEVICE, topic=topic)
    assert caught.value.field == "topic"
    assert apns_server.pushes == []


def test_device_tokens_are_normalised_to_lower_case() -> None:
    assert validate_device_token("AB" * 32) == "ab" * 32
    assert validate_device_token("ab" * 100) == "ab" * 100


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8443",  # the provider token would travel in clear text
        "ftp://api.push.apple.com",
        "https://",
        "https://api.push.apple.com/3/device/x",
        "https://api.push.apple.com?x=1",
        "https://user:pw@api.push.apple.com",
    ],
)
def test_base_url_must_be_an_https_origin(provider_key: ProviderKey, base_url: str) -> None:
    with pytest.raises(ConfigError):
        ApnsClient(auth=token_auth(provider_key), base_url=base_url)


# --------------------------------------------------------------- provider tokens


def test_expired_provider_token_is_refreshed_once_and_the_push_retried(
    apns_server: ApnsStandIn, provider_key: ProviderKey
) -> None:
    # The first token is minted while the host clock is two hours behind; by the
    # time APNs refuses it, NTP has corrected the clock.
    readings = iter([real_now() - timedelta(hours=2), real_now(), real_now()])
    with ApnsClient(
        auth=token_auth(provider_key),
        base_url=apns_server.base_url,
        ca_file=apns_server.ca_file,
        clock=lambda: next(readings),
    ) as apns:
        outcome = apns.send(DEVICE, topic=PASS_TYPE_ID)

    first, second = apns_server.pushes
    assert (first.status, first.reason) == (403, "ExpiredProviderToken")
    assert second.status == 200 and second.bearer != first.bearer
    assert outcome.delivered
    assert next(readings, None) is None  # minted, renewed, minted: nothing more


def test_client_refreshes_its_token_after_50_minutes_and_apns_accepts_it(
    apns_server: ApnsStandIn, provider_key: ProviderKey
) -> None:
    clock = Clock(real_now() - timedelta(minutes=55))
    with ApnsClient(
        auth=token_auth(provider_key),
        base_url=apns_server.base_url,
        ca_file=apns_server.ca_file,
        clock=clock,
    ) as apns:
        apns.send(DEVICE, topic=PASS_TYPE_ID)
        clock.now += timedelta(minutes=19)
        apns.send(DEVICE, topic=PASS_TYPE_ID)
        clock.now = real_now()
        apns.send(DEVICE, topic=PASS_TYPE_ID)

    first, second, third = apns_server.pushes
    assert [p.status for p in (first, second, third)] == [200, 200, 200]
    assert first.bearer == second.bearer  # 19 minutes: still the same token
    assert third.bearer != second.bearer  # 55 minutes: a new one, which APNs takes
    assert len(apns_server.connections) == 1


def test_provider_token_is_cached_until_50_minutes_old(provider_key: ProviderKey) -> None:
    auth = token_auth(provider_key)
    t0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    first = auth.bearer(now=t0)
    assert auth.bearer(now=t0 + timedelta(minutes=19)) == first
    assert auth.bearer(now=t0 + TOKEN_REFRESH_AFTER - timedelta(seconds=1)) == first
    second = auth.bearer(now=t0 + TOKEN_REFRESH_AFTER)
    assert second != first
    claims = jwt.decode(
        second, provider_key.public_key, algorithms=["ES256"], options={"verify_iat": False}
    )
    assert claims["iat"] == int((t0 + TOKEN_REFRESH_AFTER).timestamp())


def test_forced_renewals_are_at_most_one_per_20_minutes(provider_key: ProviderKey) -> None:
    """A wrong key or clock must not make every push mint a token (TooManyProviderTokenUpdates)."""
    auth = token_auth(provider_key)
    t0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    first = auth.bearer(now=t0)
    assert auth.renew(first, now=t0 + timedelta(seconds=1))
    second = auth.bearer(now=t0 + timedelta(seconds=1))
    assert second != first

    assert not auth.renew(second, now=t0 + timedelta(minutes=5))
    assert auth.bearer(now=t0 + timedelta(minutes=5)) == second
    assert not auth.renew(second, now=t0 + TOKEN_MIN_INTERVAL)

    assert auth.renew(second, now=t0 + TOKEN_MIN_INTERVAL + timedelta(seconds=1))
    assert auth.bearer(now=t0 + TOKEN_MIN_INTERVAL + timedelta(seconds=1)) != second


def test_renewal_already_done_by_another_sender_mints_nothing(provider_key: ProviderKey) -> None:
    auth = token_auth(provider_key)
    t0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    old = auth.bearer(now=t0)
    assert auth.renew(old, now=t0)
    current = auth.bearer(now=t0)
    assert auth.renew(old, now=t0)  # a second sender with the same stale token
    assert auth.bearer(now=t0) == current


def test_naive_datetimes_are_refused(provider_key: ProviderKey) -> None:
    with pytest.raises(ValueError, match="naive"):
        token_auth(provider_key).bearer(now=datetime(2026, 11, 24, 8, 0))


# --------------------------------------------------------------- loading keys


def test_p8_key_file_loads(provider_key: ProviderKey) -> None:
    auth = load_token_auth(provider_key.path, key_id="ABC123DEFG", team_id="DEF123GHIJ")
    token = auth.bearer(now=real_now())
    assert jwt.decode(token, provider_key.public_key, algorithms=["ES256"])["iss"] == "DEF123GHIJ"


def test_missing_key_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "AuthKey_ABC123DEFG.p8"
    with pytest.raises(ConfigError, match=str(path)):
        load_token_auth(path, key_id="ABC123DEFG", team_id="DEF123GHIJ")


@pytest.mark.parametrize("kind", ["garbage", "rsa", "p384", "encrypted"])
def test_unusable_key_file_is_a_config_error_naming_it(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "AuthKey_ABC123DEFG.p8"
    if kind == "garbage":
        path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    elif kind == "rsa":
        path.write_bytes(
            rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    elif kind == "p384":
        write_key(path, ec.generate_private_key(ec.SECP384R1()))
    else:
        write_key(path, ec.generate_private_key(ec.SECP256R1()), passphrase=b"secret")
    with pytest.raises(ConfigError, match=str(path)):
        load_token_auth(path, key_id="ABC123DEFG", team_id="DEF123GHIJ")


def test_encrypted_key_file_loads_with_its_passphrase(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    path = write_key(tmp_path / "AuthKey_ABC123DEFG.p8", key, passphrase=b"secret")
    auth = load_token_auth(path, key_id="ABC123DEFG", team_id="DEF123GHIJ", passphrase=b"secret")
    jwt.decode(auth.bearer(now=real_now()), key.public_key(), algorithms=["ES256"])


@pytest.mark.parametrize(("key_id", "team_id"), [("abc", "DEF123GHIJ"), ("ABC123DEFG", "")])
def test_key_and_team_ids_are_checked(provider_key: ProviderKey, key_id: str, team_id: str) -> None:
    with pytest.raises(ConfigError):
        load_token_auth(provider_key.path, key_id=key_id, team_id=team_id)


def test_private_key_and_passphrase_never_show_in_repr(
    provider_key: ProviderKey, tmp_path: Path
) -> None:
    auth = token_auth(provider_key)
    scalar = provider_key.key.private_numbers().private_value
    assert repr(auth) == "TokenAuth(key_id='ABC123DEFG', team_id='DEF123GHIJ')"
    assert str(scalar) not in repr(auth) and "PRIVATE" not in repr(auth)
    cert = CertificateAuth(tmp_path / "c.pem", tmp_path / "k.pem", passphrase=b"hunter2-secret")
    assert "hunter2" not in repr(cert)


# --------------------------------------------------------------- certificate mode


@pytest.fixture(scope="module")
def client_authority() -> Authority:
    return Authority.create("Test Apple WWDR CA")


@pytest.fixture(scope="module")
def cert_server(
    apns_pki: Pki, client_authority: Authority, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApnsStandIn]:
    ca = write_cert(tmp_path_factory.mktemp("client-ca") / "wwdr.pem", client_authority.cert)
    with ApnsStandIn(apns_pki, client_ca=ca) as server:
        yield server


def test_certificate_auth_pushes_without_a_provider_token(
    cert_server: ApnsStandIn, client_authority: Authority, tmp_path: Path
) -> None:
    cert_server.reset()
    identity = make_client_identity(tmp_path, client_authority, passphrase=b"pass-cert-secret")
    auth = CertificateAuth(identity.cert, identity.key, passphrase=identity.passphrase)
    with ApnsClient(auth=auth, base_url=cert_server.base_url, ca_file=cert_server.ca_file) as apns:
        assert apns.send(DEVICE, topic=PASS_TYPE_ID).delivered
    (push,) = cert_server.pushes
    assert "authorization" not in push.headers
    assert (push.http_version, push.headers["apns-topic"]) == ("2", PASS_TYPE_ID)


def test_certificate_from_a_foreign_ca_is_refused_by_the_standin(
    cert_server: ApnsStandIn, tmp_path: Path
) -> None:
    cert_server.reset()
    identity = make_client_identity(tmp_path, Authority.create("Impostor CA"))
    auth = CertificateAuth(identity.cert, identity.key)
    with (
        ApnsClient(auth=auth, base_url=cert_server.base_url, ca_file=cert_server.ca_file) as apns,
        pytest.raises(DeliveryError) as caught,
    ):
        apns.send(DEVICE, topic=PASS_TYPE_ID)
    assert caught.value.retry is True
    assert cert_server.pushes == []


def test_certificate_mode_standin_refuses_a_client_without_certificate(
    cert_server: ApnsStandIn, provider_key: ProviderKey
) -> None:
    cert_server.reset()
    with (
        ApnsClient(
            auth=token_auth(provider_key),
            base_url=cert_server.base_url,
            ca_file=cert_server.ca_file,
        ) as apns,
        pytest.raises(DeliveryError),
    ):
        apns.send(DEVICE, topic=PASS_TYPE_ID)
    assert cert_server.pushes == []


@pytest.mark.parametrize("passphrase", [b"wrong", None])
def test_wrong_or_missing_certificate_passphrase_is_a_config_error(
    client_authority: Authority, tmp_path: Path, passphrase: bytes | None
) -> None:
    identity = make_client_identity(tmp_path, client_authority, passphrase=b"right")
    auth = CertificateAuth(identity.cert, identity.key, passphrase=passphrase)
    with pytest.raises(ConfigError, match=str(identity.cert)):
        ApnsClient(auth=auth)


def test_missing_certificate_file_is_a_config_error(tmp_path: Path) -> None:
    auth = CertificateAuth(tmp_path / "missing.pem", tmp_path / "missing.key")
    with pytest.raises(ConfigError, match=r"missing\.pem"):
        ApnsClient(auth=auth)


def test_missing_ca_file_is_a_config_error(provider_key: ProviderKey, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nothing\.pem"):
        ApnsClient(auth=token_auth(provider_key), ca_file=tmp_path / "nothing.pem")


def test_provider_key_fixture_writes_an_apple_style_p8(tmp_path: Path) -> None:
    key = make_provider_key(tmp_path)
    assert key.path.name == "AuthKey_ABC123DEFG.p8"
    assert key.path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
