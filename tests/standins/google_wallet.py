"""A local stand-in for Google's Wallet servers: the OAuth token endpoint and the REST API.

A real HTTP server on 127.0.0.1 (an ephemeral port, a background thread) that
behaves like Google where our client depends on it: the token endpoint checks
the assertion's RS256 signature with the service account's public key, its
audience, scope, issuer and lifetime, and hands out random access tokens; the
genericClass and genericObject resources live in memory behind those tokens,
answer 409 to a second insert and 404 to unknown ids, and use Google's error
body. Every request is recorded. Tests can make the next requests fail with a
chosen status, hang (for timeouts), or revoke every access token.

It is configured from the test key directly, never from the code under test.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from tests.factories import HOLDERS, NOW, PASS_TYPES, City
from wallet.domain import PassState, WalletPass
from wallet.qrtext import encode_qr_text

ISSUER_ID = "3388000000022334455"
SERVICE_ACCOUNT_EMAIL = "wallet-issuer@musterstadt-wallet.iam.gserviceaccount.com"
PRIVATE_KEY_ID = "5f0c1a9e8d7b6c5a4f3e2d1c0b9a8f7e6d5c4b3a"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
SCOPE = "https://www.googleapis.com/auth/wallet_object.issuer"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
API_PREFIX = "/walletobjects/v1"
_SKEW = timedelta(seconds=60)
_STATES = frozenset({"ACTIVE", "INACTIVE", "COMPLETED", "EXPIRED"})


@functools.cache
def service_account_key() -> rsa.RSAPrivateKey:
    """One RSA 2048 key per test session: generating it takes a noticeable moment."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def other_rsa_key() -> rsa.RSAPrivateKey:
    """A key Google does not know: what an attacker would sign with."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def service_account_json(**overrides: Any) -> dict[str, Any]:
    """A key file shaped like the one Google's console downloads (None drops a member)."""
    data: dict[str, Any] = {
        "type": "service_account",
        "project_id": "musterstadt-wallet",
        "private_key_id": PRIVATE_KEY_ID,
        "private_key": pem(service_account_key()),
        "client_email": SERVICE_ACCOUNT_EMAIL,
        "client_id": "104729384756102938475",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": GOOGLE_TOKEN_URI,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": (
            "https://www.googleapis.com/robot/v1/metadata/x509/"
            "wallet-issuer%40musterstadt-wallet.iam.gserviceaccount.com"
        ),
        "universe_domain": "googleapis.com",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def wallet_pass(type_id: str = "library", *, state: PassState = "valid") -> WalletPass:
    """A pass as the services layer hands it to the wrappings, with a genuine token."""
    city = City()
    token = city.issue(type_id)
    valid_from = NOW - timedelta(days=1)
    return WalletPass.from_holder(
        PASS_TYPES[type_id],
        HOLDERS[type_id],
        serial="SERIAL0123456789",
        valid_from=valid_from,
        valid_until=PASS_TYPES[type_id].valid_until(valid_from),
        state=state,
        reason=None if state == "valid" else "Test",
        token=token,
        qr_text=encode_qr_text(token),
        updated_at=NOW,
        authentication_token="a" * 32,
    )


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]
    body: Any  # the parsed JSON body, or None

    @property
    def bearer(self) -> str | None:
        value = self.headers.get("Authorization", "")
        return value.removeprefix("Bearer ") if value.startswith("Bearer ") else None


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No access log: pytest output stays readable."""


def _google_error(status: int, message: str, reason: str) -> Response:
    body = {"error": {"code": status, "message": message, "status": reason}}
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _oauth_error(error: str, description: str, status: int = 400) -> Response:
    body = {"error": error, "error_description": description}
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


class GoogleWalletStandIn:
    """Google's token endpoint and generic pass resources, for one issuer and one account."""

    def __init__(
        self,
        *,
        public_key: rsa.RSAPublicKey,
        email: str = SERVICE_ACCOUNT_EMAIL,
        key_id: str = PRIVATE_KEY_ID,
        issuer_id: str = ISSUER_ID,
        token_lifetime: int = 3600,
    ) -> None:
        self.public_key = public_key
        self.email = email
        self.key_id = key_id
        self.issuer_id = issuer_id
        self.token_lifetime = token_lifetime
        # Tests replace the clock to move time; it judges assertions and access tokens.
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.requests: list[RecordedRequest] = []
        self.classes: dict[str, dict[str, Any]] = {}
        self.objects: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, datetime] = {}
        self.issued_tokens: list[str] = []
        self._failures: list[tuple[str, int]] = []
        self._delays: list[float] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._id_re = re.compile(re.escape(issuer_id) + r"\.[A-Za-z0-9._-]+")
        self._map = Map(
            [
                Rule("/token", methods=["POST"], endpoint="token"),
                Rule(
                    f"{API_PREFIX}/<any(genericClass, genericObject):kind>",
                    methods=["POST"],
                    endpoint="insert",
                ),
                Rule(
                    f"{API_PREFIX}/<any(genericClass, genericObject):kind>/<resource_id>",
                    methods=["GET", "PUT", "PATCH"],
                    endpoint="resource",
                ),
            ]
        )
        self._server: Any = None
        self._thread: threading.Thread | None = None

    # --- what tests control ---

    @property
    def url(self) -> str:
        assert self._server is not None, "the stand-in is not running"
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def base_url(self) -> str:
        return self.url + API_PREFIX

    @property
    def token_url(self) -> str:
        return self.url + "/token"

    def fail_next(
        self, count: int, *, status: int = 503, endpoint: Literal["api", "token"] = "api"
    ) -> None:
        """Answer the next ``count`` requests to ``endpoint`` with ``status``."""
        with self._lock:
            self._failures.extend([(endpoint, status)] * count)

    def hang_next(self, seconds: float) -> None:
        """Let the next API request wait ``seconds`` before it is answered."""
        with self._lock:
            self._delays.append(seconds)

    def revoke_tokens(self) -> None:
        """Forget every access token, as when Google revokes them early."""
        with self._lock:
            self.tokens.clear()

    def token_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/token"]

    def api_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.startswith(API_PREFIX)]

    # --- running ---

    def start(self) -> None:
        self._server = make_server(
            "127.0.0.1", 0, self, threaded=True, request_handler=_QuietHandler
        )
        # A short poll interval: shutdown() waits for it, once per test.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="google-wallet-stand-in",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # --- WSGI ---

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        response = self._respond(request)
        return response(environ, start_response)

    def _respond(self, request: Request) -> Response:
        body: Any = None
        if request.mimetype == "application/json":
            try:
                body = json.loads(request.get_data())
            except ValueError:
                return _google_error(400, "Invalid JSON payload received.", "INVALID_ARGUMENT")
        endpoint_kind = "token" if request.path == "/token" else "api"
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.path,
                    headers=dict(request.headers),
                    form=dict(request.form),
                    body=body,
                )
            )
            failure = next((f for f in self._failures if f[0] == endpoint_kind), None)
            if failure is not None:
                self._failures.remove(failure)
            delay = self._delays.pop(0) if endpoint_kind == "api" and self._delays else 0.0
        if delay:
            self._stopping.wait(delay)
        if failure is not None:
            return _google_error(failure[1], "The service is currently unavailable.", "UNAVAILABLE")
        try:
            endpoint, args = self._map.bind_to_environ(request.environ).match()
        except HTTPException as exc:
            code = exc.code or 404
            reason = "NOT_FOUND" if code == 404 else "INVALID_ARGUMENT"
            return _google_error(code, exc.description or "Not found", reason)
        if endpoint == "token":
            return self._token(request)
        if not self._authorised(request):
            return _google_error(
                401, "Request had invalid authentication credentials.", "UNAUTHENTICATED"
            )
        store = self.classes if args["kind"] == "genericClass" else self.objects
        if endpoint == "insert":
            return self._insert(args["kind"], store, body)
        return self._resource(request.method, store, args["resource_id"], body)

    # --- OAuth ---

    def _token(self, request: Request) -> Response:
        if request.form.get("grant_type") != JWT_BEARER:
            return _oauth_error("unsupported_grant_type", "Invalid grant_type.")
        assertion = request.form.get("assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(
                assertion,
                self.public_key,
                algorithms=["RS256"],
                audience=self.token_url,
                issuer=self.email,
                # Times are judged below by this server's clock, which tests move.
                options={
                    "require": ["iss", "aud", "iat", "exp", "scope"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidSignatureError:
            return _oauth_error("invalid_grant", "Invalid JWT Signature.")
        except jwt.PyJWTError as exc:
            return _oauth_error("invalid_grant", f"Invalid JWT: {exc}")
        if header.get("kid") != self.key_id:
            return _oauth_error("invalid_grant", "Invalid key id in the JWT header.")
        if SCOPE not in str(claims["scope"]).split():
            return _oauth_error("invalid_scope", "The scope does not include wallet_object.issuer.")
        now = self.clock().timestamp()
        iat, exp = claims["iat"], claims["exp"]
        if not isinstance(iat, int) or not isinstance(exp, int):
            return _oauth_error("invalid_grant", "iat and exp must be integers.")
        if iat > now + _SKEW.total_seconds() or exp <= now or exp - iat > 3600:
            return _oauth_error(
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) "
                "and in a reasonable timeframe.",
            )
        token = "ya29." + secrets.token_urlsafe(32)
        with self._lock:
            self.tokens[token] = self.clock() + timedelta(seconds=self.token_lifetime)
            self.issued_tokens.append(token)
        return _json(
            {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}
        )

    def _authorised(self, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return False
        with self._lock:
            expires = self.tokens.get(header.removeprefix("Bearer "))
        return expires is not None and self.clock() < expires

    # --- resources ---

    def _check_body(self, kind: str, body: Any) -> Response | None:
        if not isinstance(body, dict):
            return _google_error(400, "Request body must be a JSON object.", "INVALID_ARGUMENT")
        resource_id = body.get("id")
        if not isinstance(resource_id, str) or not resource_id:
            return _google_error(400, "Resource id is required.", "INVALID_ARGUMENT")
        if not self._id_re.fullmatch(resource_id):
            return _google_error(
                403, f"The caller does not have permission for {resource_id}.", "PERMISSION_DENIED"
            )
        if kind == "genericObject":
            for required in ("classId", "cardTitle", "header"):
                if required not in body:
                    return _google_error(
                        400, f"{required} is required for a generic object.", "INVALID_ARGUMENT"
                    )
            if body["classId"] not in self.classes:
                return _google_error(
                    400, f"Class {body['classId']} does not exist.", "INVALID_ARGUMENT"
                )
        if "state" in body and body["state"] not in _STATES:
            return _google_error(400, f"Invalid state {body['state']!r}.", "INVALID_ARGUMENT")
        return None

    def _insert(self, kind: str, store: dict[str, dict[str, Any]], body: Any) -> Response:
        problem = self._check_body(kind, body)
        if problem is not None:
            return problem
        with self._lock:
            if body["id"] in store:
                return _google_error(
                    409, f"Resource {body['id']} already exists.", "ALREADY_EXISTS"
                )
            store[body["id"]] = body
        return _json(body)

    def _resource(
        self, method: str, store: dict[str, dict[str, Any]], resource_id: str, body: Any
    ) -> Response:
        with self._lock:
            current = store.get(resource_id)
        if current is None:
            return _google_error(404, f"Resource {resource_id} not found.", "NOT_FOUND")
        if method == "GET":
            return _json(current)
        if not isinstance(body, dict):
            return _google_error(400, "Request body must be a JSON object.", "INVALID_ARGUMENT")
        if "state" in body and body["state"] not in _STATES:
            return _google_error(400, f"Invalid state {body['state']!r}.", "INVALID_ARGUMENT")
        if body.get("id", resource_id) != resource_id:
            return _google_error(
                400, "The id in the body differs from the URL.", "INVALID_ARGUMENT"
            )
        # PATCH replaces the members it names (whole arrays included); PUT replaces all.
        updated = {**current, **body} if method == "PATCH" else {**body, "id": resource_id}
        with self._lock:
            store[resource_id] = updated
        return _json(updated)


def write_service_account_file(path: Path, **overrides: Any) -> Path:
    path.write_text(json.dumps(service_account_json(**overrides), indent=2), encoding="utf-8")
    return path


@pytest.fixture
def service_account_file(tmp_path: Path) -> Path:
    """A Google-shaped service-account key file with the session's test RSA key."""
    return write_service_account_file(tmp_path / "google-service-account.json")


@pytest.fixture
def google_wallet_server() -> Iterator[GoogleWalletStandIn]:
    """The stand-in, running on loopback and knowing the test key's public half."""
    server = GoogleWalletStandIn(public_key=service_account_key().public_key())
    server.start()
    try:
        yield server
    finally:
        server.stop()
