"""A small client for the Google Wallet REST API: generic classes and objects.

It signs in with the service account by OAuth's JWT bearer grant, keeps the
access token until shortly before it expires, and turns every failure into a
:class:`~wallet.errors.DeliveryError` that says whether retrying may help, so
the outbox worker can back off or give up. The bodies it sends are built by
:mod:`wallet.formats.google`; this module only moves them.
"""

from __future__ import annotations

import re
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from wallet.errors import DeliveryError

if TYPE_CHECKING:  # httpx (and the rich and pygments it loads) only once a client is made
    import httpx

__all__ = ["DEFAULT_BASE_URL", "SCOPE", "GoogleWalletClient", "ServiceAccountLike"]

DEFAULT_BASE_URL = "https://walletobjects.googleapis.com/walletobjects/v1"
SCOPE = "https://www.googleapis.com/auth/wallet_object.issuer"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME = timedelta(hours=1)  # the longest Google accepts
REFRESH_MARGIN = timedelta(seconds=60)
MAX_ERROR_TEXT = 300
_RESOURCE_ID_RE = re.compile(r"[0-9]{1,32}\.[A-Za-z0-9._-]{1,200}")


class ServiceAccountLike(Protocol):
    """What the client needs of :class:`wallet.formats.google.ServiceAccount`.

    A protocol, because wallet.push and wallet.formats are independent layers.
    """

    @property
    def email(self) -> str: ...
    @property
    def private_key(self) -> rsa.RSAPrivateKey: ...
    @property
    def private_key_id(self) -> str: ...
    @property
    def token_uri(self) -> str: ...


@dataclass(frozen=True)
class _AccessToken:
    value: str
    expires_at: datetime


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _check_resource_id(resource_id: object) -> str:
    """Ids go into the URL path: only Google's id alphabet, never a '/' or '?'."""
    if not isinstance(resource_id, str) or not _RESOURCE_ID_RE.fullmatch(resource_id):
        raise ValueError(f"{resource_id!r} is not a Google Wallet id (issuer id, '.', suffix)")
    return resource_id


def _clean(text: str) -> str:
    """Google's words for an error, on one line and short enough for a log."""
    one_line = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return one_line[:MAX_ERROR_TEXT]


def _google_message(response: httpx.Response) -> str:
    """Google's error message (REST ``error.message`` or OAuth ``error_description``)."""
    try:
        body = response.json()
    except ValueError:
        return _clean(response.text) or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return _clean(error["message"])
        description = body.get("error_description")
        if isinstance(error, str):
            return _clean(f"{error}: {description}" if isinstance(description, str) else error)
    return response.reason_phrase


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


class GoogleWalletClient:
    """Insert, read and patch Google Wallet generic classes and objects.

    ``clock`` decides when the cached access token expires and stamps the
    token request, so tests move time instead of sleeping. ``transport`` and
    ``verify`` exist for tests (a local stand-in); production uses neither.
    One client may be shared by threads: the token refresh is locked.
    """

    def __init__(
        self,
        account: ServiceAccountLike,
        *,
        base_url: str = DEFAULT_BASE_URL,
        token_url: str | None = None,
        timeout: float = 10,
        transport: httpx.BaseTransport | None = None,
        verify: ssl.SSLContext | bool = True,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._account = account
        self._base_url = base_url.rstrip("/")
        self._token_url = token_url or account.token_uri
        self._clock = clock
        import httpx

        self._http = httpx.Client(timeout=timeout, transport=transport, verify=verify)
        self._token: _AccessToken | None = None
        self._lock = threading.Lock()

    # --- lifetime ---

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"GoogleWalletClient({self._account.email!r}, base_url={self._base_url!r})"

    # --- the API ---

    def ensure_class(self, body: dict[str, Any]) -> Literal["created", "updated"]:
        """Make the class exist and match ``body``.

        On 409 the class exists and is replaced (PUT), so a changed design
        reaches passes already saved; a class is small and rarely sent.
        """
        resource_id = _check_resource_id(body.get("id"))
        response = self._call("POST", "/genericClass", body, allow=(409,))
        if response.status_code != 409:
            return "created"
        self._call("PUT", f"/genericClass/{resource_id}", body)
        return "updated"

    def insert_object(self, body: dict[str, Any]) -> bool:
        """Insert an object; False when it already exists (a retried insert is not an error).

        An existing object keeps what it had: patch it if its state may have changed since.
        """
        _check_resource_id(body.get("id"))
        response = self._call("POST", "/genericObject", body, allow=(409,))
        return response.status_code != 409

    def patch_object(self, object_id: str, body: dict[str, Any]) -> bool:
        """Patch an object; False when Google does not know it (never saved: nothing to update)."""
        path = f"/genericObject/{_check_resource_id(object_id)}"
        response = self._call("PATCH", path, body, allow=(404,))
        return response.status_code != 404

    def get_object(self, object_id: str) -> dict[str, Any] | None:
        """The object as Google holds it, or None when it does not exist."""
        path = f"/genericObject/{_check_resource_id(object_id)}"
        response = self._call("GET", path, None, allow=(404,))
        if response.status_code == 404:
            return None
        return self._json_object(response, f"GET {path}")

    # --- HTTP ---

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        *,
        allow: tuple[int, ...] = (),
    ) -> httpx.Response:
        """Send with a valid access token; one fresh token is tried after a 401."""
        what = f"Google Wallet {method} {path}"
        response = self._send(method, path, body, self._access_token(), what)
        if response.status_code == 401:
            # The token may have been revoked or expired early: one fresh try.
            self._forget_token()
            response = self._send(method, path, body, self._access_token(), what)
        status = response.status_code
        if status < 300 or status in allow:
            return response
        raise DeliveryError(
            f"{what}: HTTP {status}: {_google_message(response)}",
            retry=_retryable(status),
            status=status,
        )

    def _send(
        self, method: str, path: str, body: dict[str, Any] | None, token: str, what: str
    ) -> httpx.Response:
        import httpx

        try:
            return self._http.request(
                method,
                self._base_url + path,
                json=body,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            )
        except httpx.TimeoutException as exc:
            raise DeliveryError(f"{what}: timed out", retry=True) from exc
        except httpx.TransportError as exc:
            raise DeliveryError(f"{what}: {type(exc).__name__}: {exc}", retry=True) from exc

    @staticmethod
    def _json_object(response: httpx.Response, what: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            # A garbled success is most likely a proxy or network hiccup.
            raise DeliveryError(
                f"{what}: the answer is not a JSON object", retry=True, status=response.status_code
            )
        return body

    # --- the access token ---

    def _forget_token(self) -> None:
        with self._lock:
            self._token = None

    def _access_token(self) -> str:
        with self._lock:
            now = self._clock()
            if self._token is None or now >= self._token.expires_at - REFRESH_MARGIN:
                self._token = self._fetch_token(now)
            return self._token.value

    def _assertion(self, now: datetime) -> str:
        issued = int(now.timestamp())
        claims = {
            "iss": self._account.email,
            "scope": SCOPE,
            "aud": self._token_url,
            "iat": issued,
            "exp": issued + int(ASSERTION_LIFETIME.total_seconds()),
        }
        return jwt.encode(
            claims,
            self._account.private_key,
            algorithm="RS256",
            headers={"kid": self._account.private_key_id},
        )

    def _fetch_token(self, now: datetime) -> _AccessToken:
        what = "Google OAuth token request"
        form = {"grant_type": GRANT_TYPE, "assertion": self._assertion(now)}
        import httpx

        try:
            response = self._http.post(
                self._token_url, data=form, headers={"Accept": "application/json"}
            )
        except httpx.TimeoutException as exc:
            raise DeliveryError(f"{what}: timed out", retry=True) from exc
        except httpx.TransportError as exc:
            raise DeliveryError(f"{what}: {type(exc).__name__}: {exc}", retry=True) from exc
        status = response.status_code
        if status != 200:
            raise DeliveryError(
                f"{what}: HTTP {status}: {_google_message(response)}",
                retry=_retryable(status),
                status=status,
            )
        body = self._json_object(response, what)
        value, lifetime = body.get("access_token"), body.get("expires_in")
        if (
            not isinstance(value, str)
            or not value
            or not isinstance(lifetime, int)
            or isinstance(lifetime, bool)
            or lifetime <= 0
        ):
            raise DeliveryError(
                f"{what}: the answer has no access_token and expires_in", retry=True, status=status
            )
        return _AccessToken(value=value, expires_at=now + timedelta(seconds=lifetime))
