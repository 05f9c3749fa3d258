"""A local stand-in for APNs: a real HTTP/2-over-TLS server on 127.0.0.1.

Hypercorn serves a small ASGI app in a background thread with its own event
loop. It checks what APNs checks, so a client that passes here is not merely
talking to something lenient:

- HTTP/2 only: ALPN offers only ``h2``, and a request in any other HTTP version
  is answered 505;
- ``POST /3/device/<hex token>``, an ``apns-topic``, a known ``apns-push-type``
  with a priority APNs allows for it (background with 10 is BadPriority), a
  non-empty payload of at most 4 KB;
- token mode: the provider token's ES256 signature against the configured
  public key (the algorithm is pinned, never read from the token), ``kid``,
  ``iss`` = team id and an ``iat`` at most an hour old, else 403 with
  InvalidProviderToken / ExpiredProviderToken / MissingProviderToken; and, like
  APNs, 429 TooManyProviderTokenUpdates when one connection switches to a new
  token issued less than 20 minutes after the one it replaces;
- certificate mode: the TLS handshake requires a client certificate signed by
  the configured CA.

Tests script answers per device token (410 Unregistered with a timestamp, 500,
429, 400 BadTopic, a slow answer ...) and read what arrived: device token,
headers, body, HTTP version, connection and arrival time.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import socket
import ssl
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypercorn.asyncio import serve
from hypercorn.config import Config

KEY_ID = "ABC123DEFG"
TEAM_ID = "DEF123GHIJ"
PASS_TYPE_ID = "pass.de.musterstadt.library"
MAX_PAYLOAD = 4096
TOKEN_MAX_AGE = timedelta(hours=1)
TOKEN_MIN_INTERVAL = timedelta(minutes=20)
# iat a little ahead of this server's clock is tolerated; more is a bogus token.
CLOCK_SKEW = timedelta(minutes=1)

PUSH_TYPES = frozenset(
    {
        "alert",
        "background",
        "location",
        "voip",
        "complication",
        "fileprovider",
        "mdm",
        "liveactivity",
        "pushtotalk",
        "widgets",
    }
)
_PATH = re.compile(r"/3/device/([^/]*)")
_HEX_TOKEN = re.compile(r"(?:[0-9a-fA-F]{2}){32,100}")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


# --------------------------------------------------------------------------- PKI


def _name(common_name: str, **extra: str) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if "uid" in extra:
        attributes.append(x509.NameAttribute(NameOID.USER_ID, extra["uid"]))
    return x509.Name(attributes)


@dataclass(frozen=True)
class Authority:
    """A test certificate authority (EC P-256)."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls, common_name: str) -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        public = key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(_name(common_name))
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=400))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    def issue(
        self, common_name: str, *, server: bool, uid: str | None = None
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """A leaf certificate: for 127.0.0.1/localhost if ``server``, else a TLS client."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, **({"uid": uid} if uid else {})))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=400))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.DNSName("localhost"),
                    ]
                ),
                critical=False,
            )
        return key, builder.sign(self.key, hashes.SHA256())


def write_cert(path: Path, *certs: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return path


def write_key(
    path: Path, key: ec.EllipticCurvePrivateKey, *, passphrase: bytes | None = None
) -> Path:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return path


@dataclass(frozen=True)
class Pki:
    """Files of a test PKI: the CA that clients trust, and the stand-in's server certificate."""

    ca_file: Path
    server_cert: Path
    server_key: Path
    authority: Authority


def make_pki(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    authority = Authority.create("Test APNs CA")
    key, cert = authority.issue("localhost", server=True)
    return Pki(
        ca_file=write_cert(folder / "ca.pem", authority.cert),
        server_cert=write_cert(folder / "server.pem", cert),
        server_key=write_key(folder / "server.key", key),
        authority=authority,
    )


@dataclass(frozen=True)
class ClientIdentity:
    """A TLS client certificate and its (optionally encrypted) key, like a pass type ID cert."""

    cert: Path
    key: Path
    passphrase: bytes | None = field(default=None, repr=False)


def make_client_identity(
    folder: Path,
    authority: Authority,
    *,
    topic: str = "pass.de.musterstadt.library",
    passphrase: bytes | None = None,
) -> ClientIdentity:
    """A client certificate named like Apple's: "Pass Type ID: <topic>", UID <topic>."""
    folder.mkdir(parents=True, exist_ok=True)
    key, cert = authority.issue(f"Pass Type ID: {topic}", server=False, uid=topic)
    return ClientIdentity(
        cert=write_cert(folder / "client.pem", cert),
        key=write_key(folder / "client.key", key, passphrase=passphrase),
        passphrase=passphrase,
    )


@dataclass(frozen=True)
class ProviderKey:
    """An APNs auth key as Apple hands it out: ``AuthKey_<KID>.p8`` plus key and team ids."""

    path: Path
    key: ec.EllipticCurvePrivateKey = field(repr=False)
    key_id: str = KEY_ID
    team_id: str = TEAM_ID

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.key.public_key()


def make_provider_key(folder: Path, *, key_id: str = KEY_ID, team_id: str = TEAM_ID) -> ProviderKey:
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    path = write_key(folder / f"AuthKey_{key_id}.p8", key)
    return ProviderKey(path=path, key=key, key_id=key_id, team_id=team_id)


# --------------------------------------------------------------------------- server


@dataclass(frozen=True)
class Reply:
    """A scripted answer: the status and APNs ``reason``, optionally late."""

    status: int
    reason: str | None = None
    timestamp_ms: int | None = None
    delay: float = 0.0


def unregistered(at: datetime) -> Reply:
    """410 Unregistered, with APNs' timestamp (milliseconds since the epoch)."""
    return Reply(410, "Unregistered", timestamp_ms=int(at.timestamp() * 1000))


@dataclass(frozen=True)
class ReceivedPush:
    """One request as the stand-in saw it, and how it answered."""

    method: str
    path: str
    device_token: str | None
    headers: Mapping[str, str]
    body: bytes
    http_version: str
    connection: tuple[str, int]
    received_at: datetime
    status: int
    reason: str | None
    apns_id: str

    @property
    def bearer(self) -> str | None:
        value = self.headers.get("authorization", "")
        return value[len("bearer ") :] if value.lower().startswith("bearer ") else None


@dataclass
class _Connection:
    token: str
    iat: datetime


async def _still_there_after(delay: float, receive: Receive) -> bool:
    """Wait ``delay`` seconds; False as soon as the client disconnects meanwhile."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait_for(asyncio.shield(watcher), timeout=delay)
    except TimeoutError:
        return True
    finally:
        watcher.cancel()
    return False


def _quiet_about_cancellation(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """At shutdown hypercorn cancels connections still open (a client that timed out)."""
    if not isinstance(context.get("exception"), asyncio.CancelledError):
        loop.default_exception_handler(context)


class ApnsStandIn:
    """The server. ``provider`` set: token mode; ``client_ca`` set: certificate mode."""

    def __init__(
        self,
        pki: Pki,
        *,
        provider: ProviderKey | None = None,
        client_ca: Path | None = None,
    ) -> None:
        self.pki = pki
        self.provider = provider
        self.client_ca = client_ca
        self.port = 0
        self._lock = threading.Condition()
        self._pushes: list[ReceivedPush] = []
        self._scripts: dict[str, list[Reply]] = {}
        self._connections: dict[tuple[str, int], _Connection] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._failure: BaseException | None = None

    # -- what tests use

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.pki.ca_file

    @property
    def pushes(self) -> list[ReceivedPush]:
        with self._lock:
            return list(self._pushes)

    @property
    def connections(self) -> set[tuple[str, int]]:
        """The client ends of the TLS connections requests arrived on."""
        return {push.connection for push in self.pushes}

    def script(self, device_token: str, *replies: Reply) -> None:
        """Answer the next pushes to ``device_token`` with ``replies``, in order, then normally."""
        with self._lock:
            self._scripts.setdefault(device_token.lower(), []).extend(replies)

    def wait_for(self, count: int, *, timeout: float = 5.0) -> list[ReceivedPush]:
        """Block until ``count`` requests have arrived; fail the test if they do not."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._pushes) >= count, timeout=timeout):
                raise AssertionError(
                    f"the APNs stand-in got {len(self._pushes)} requests, not {count}"
                )
            return list(self._pushes)

    def reset(self) -> None:
        """Forget requests, scripts and connection state (between tests)."""
        with self._lock:
            self._pushes.clear()
            self._scripts.clear()
            self._connections.clear()

    # -- life cycle

    def start(self) -> ApnsStandIn:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)  # connections queue up even before the loop accepts them
        self.port = sock.getsockname()[1]

        config = Config()
        config.bind = [f"fd://{sock.detach()}"]
        config.certfile = str(self.pki.server_cert)
        config.keyfile = str(self.pki.server_key)
        config.alpn_protocols = ["h2"]
        config.graceful_timeout = 0.5
        config.accesslog = None
        config.errorlog = None
        if self.client_ca is not None:
            config.ca_certs = str(self.client_ca)
            config.verify_mode = ssl.CERT_REQUIRED

        loop = asyncio.new_event_loop()
        loop.set_exception_handler(_quiet_about_cancellation)
        self._loop = loop
        started = threading.Event()

        async def main() -> None:
            self._stop = asyncio.Event()
            started.set()
            await serve(self._app, config, shutdown_trigger=self._stop.wait, mode="asgi")  # type: ignore[arg-type]

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(main())
            except BaseException as exc:  # surfaced by stop()
                self._failure = exc
                started.set()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="apns-stand-in", daemon=True)
        self._thread.start()
        if not started.wait(5):
            raise RuntimeError("the APNs stand-in did not start")
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None or self._stop is None:
            return
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)
        self._thread = None
        if self._failure is not None:
            raise RuntimeError("the APNs stand-in failed") from self._failure

    def __enter__(self) -> ApnsStandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- the ASGI app

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return

        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope.get("raw_path", b"").decode("latin-1") or scope["path"]
        match = _PATH.fullmatch(path)
        device_token = match.group(1) if match else None
        now = datetime.now(UTC)
        client = scope.get("client") or ("?", 0)
        connection = (str(client[0]), int(client[1]))

        reply = self._judge(scope, headers, body, device_token, connection, now)
        apns_id = headers.get("apns-id") or str(uuid.uuid4()).upper()
        push = ReceivedPush(
            method=scope["method"],
            path=path,
            device_token=device_token,
            headers=headers,
            body=body,
            http_version=scope["http_version"],
            connection=connection,
            received_at=now,
            status=reply.status,
            reason=reply.reason,
            apns_id=apns_id,
        )
        with self._lock:  # before answering: a client that gave up was still seen
            self._pushes.append(push)
            self._lock.notify_all()
        if reply.delay and not await _still_there_after(reply.delay, receive):
            return  # the client gave up (timed out) while we dawdled
        response_body = b""
        response_headers = [(b"apns-id", apns_id.encode())]
        if reply.status != 200:
            error: dict[str, object] = {"reason": reply.reason}
            if reply.timestamp_ms is not None:
                error["timestamp"] = reply.timestamp_ms
            response_body = json.dumps(error).encode()
            response_headers.append((b"content-type", b"application/json"))
        await send(
            {"type": "http.response.start", "status": reply.status, "headers": response_headers}
        )
        await send({"type": "http.response.body", "body": response_body})

    def _judge(
        self,
        scope: Scope,
        headers: Mapping[str, str],
        body: bytes,
        device_token: str | None,
        connection: tuple[str, int],
        now: datetime,
    ) -> Reply:
        """APNs' checks, in roughly APNs' order; the first failing one answers."""
        if scope["http_version"] != "2":
            return Reply(505, "HTTP2Required")
        if scope["method"] != "POST":
            return Reply(405, "MethodNotAllowed")
        if device_token is None:
            return Reply(404, "BadPath")
        if self.provider is not None:
            refused = self._check_provider_token(headers.get("authorization"), connection, now)
            if refused is not None:
                return refused
        if not device_token:
            return Reply(400, "MissingDeviceToken")
        if not headers.get("apns-topic"):
            return Reply(400, "MissingTopic")
        push_type = headers.get("apns-push-type")
        if push_type is not None and push_type not in PUSH_TYPES:
            return Reply(400, "InvalidPushType")
        priority = headers.get("apns-priority", "10")
        if priority not in ("1", "5", "10") or (push_type == "background" and priority == "10"):
            return Reply(400, "BadPriority")
        if not body:
            return Reply(400, "PayloadEmpty")
        if len(body) > MAX_PAYLOAD:
            return Reply(413, "PayloadTooLarge")
        if _HEX_TOKEN.fullmatch(device_token) is None:
            return Reply(400, "BadDeviceToken")
        with self._lock:
            queue = self._scripts.get(device_token.lower())
            if queue:
                return queue.pop(0)
        return Reply(200)

    def _check_provider_token(
        self, authorization: str | None, connection: tuple[str, int], now: datetime
    ) -> Reply | None:
        assert self.provider is not None
        if not authorization or not authorization.lower().startswith("bearer "):
            return Reply(403, "MissingProviderToken")
        token = authorization[len("bearer ") :]
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != "ES256" or header.get("kid") != self.provider.key_id:
                return Reply(403, "InvalidProviderToken")
            claims = jwt.decode(
                token,
                self.provider.public_key,
                algorithms=["ES256"],  # pinned: never taken from the token
                issuer=self.provider.team_id,
                options={"require": ["iss", "iat"], "verify_iat": False},
            )
        except jwt.PyJWTError:
            return Reply(403, "InvalidProviderToken")
        iat = claims["iat"]
        if isinstance(iat, bool) or not isinstance(iat, int):
            return Reply(403, "InvalidProviderToken")
        issued = datetime.fromtimestamp(iat, UTC)
        if issued > now + CLOCK_SKEW:
            return Reply(403, "InvalidProviderToken")
        if now - issued > TOKEN_MAX_AGE:
            return Reply(403, "ExpiredProviderToken")
        with self._lock:
            previous = self._connections.get(connection)
            if (
                previous is not None
                and previous.token != token
                and issued - previous.iat < TOKEN_MIN_INTERVAL
            ):
                return Reply(429, "TooManyProviderTokenUpdates")
            self._connections[connection] = _Connection(token, issued)
        return None


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def apns_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("apns-pki"))


@pytest.fixture(scope="module")
def provider_key(tmp_path_factory: pytest.TempPathFactory) -> ProviderKey:
    """A fresh P-256 APNs auth key written as ``AuthKey_<KID>.p8``."""
    return make_provider_key(tmp_path_factory.mktemp("apns-key"))


@pytest.fixture(scope="module")
def _apns_server_module(apns_pki: Pki, provider_key: ProviderKey) -> Iterator[ApnsStandIn]:
    with ApnsStandIn(apns_pki, provider=provider_key) as server:
        yield server


@pytest.fixture
def apns_server(_apns_server_module: ApnsStandIn) -> ApnsStandIn:
    """The token-mode stand-in, started once per module and reset for each test."""
    _apns_server_module.reset()
    return _apns_server_module
