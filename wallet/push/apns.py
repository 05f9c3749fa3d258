"""The APNs client: tells Apple Wallet on a device that one of its passes changed.

A Wallet pass update push carries no content. Apple's "Adding a Web Service to
Update Passes" asks for an empty JSON dictionary as the payload, sent with the
pass type identifier as the topic to each push token registered for the pass;
the device then asks our web service which passes changed and fetches them.

Choices made here, with Apple's documents as the reason:

- ``apns-push-type: background`` and ``apns-priority: 5``. Apple's pass
  documents name no push type, but "Sending notification requests to APNs"
  requires the push type to match the payload: ``{}`` has no alert, sound or
  badge, so it is not an ``alert``; a ``background`` push must use priority 5
  (10 is an error). The delay that priority 5 may add is acceptable: the
  status list, not the Wallet card, is what makes a revocation effective.
- Provider tokens are reused for 50 minutes: APNs rejects an ``iat`` older than
  an hour (ExpiredProviderToken) and answers TooManyProviderTokenUpdates (429)
  when a connection sees a new token more often than every 20 minutes.
- 410 (Unregistered, ExpiredToken) and 400 BadDeviceToken mean the
  registration is dead: Apple's pass documentation says to delete a device when
  APNs reports its push token invalid, and pass pushes exist only in the
  production environment, so a BadDeviceToken is not an environment mix-up.
  DeviceTokenNotForTopic stays an error (retry=False): with a pass type
  identifier as topic it more likely means our topic is misconfigured, and
  deleting every registration for it would be hard to undo.
- Network trouble, timeouts, 429 and 5xx raise ``DeliveryError(retry=True)``;
  every other refusal raises ``DeliveryError(retry=False)`` - including a
  provider token APNs still refuses after one refresh (wrong key, key id, team
  id or clock: an operator must fix it).
- Device tokens are checked to be hex (64 to 200 characters, whole bytes)
  before anything is sent: the token becomes part of the request path.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import certifi
import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from wallet.errors import ConfigError, DeliveryError, InputError

if TYPE_CHECKING:  # httpx (and the rich and pygments it loads) only once a push is sent
    import httpx

__all__ = [
    "PAYLOAD",
    "PRIORITY",
    "PRODUCTION_URL",
    "PUSH_TYPE",
    "TOKEN_MIN_INTERVAL",
    "TOKEN_REFRESH_AFTER",
    "ApnsClient",
    "ApnsOutcome",
    "CertificateAuth",
    "Clock",
    "Delivery",
    "TokenAuth",
    "load_token_auth",
    "validate_device_token",
    "validate_topic",
]

log = logging.getLogger(__name__)

PRODUCTION_URL = "https://api.push.apple.com"
PUSH_TYPE = "background"
PRIORITY = "5"
PAYLOAD = b"{}"

TOKEN_REFRESH_AFTER = timedelta(minutes=50)
TOKEN_MIN_INTERVAL = timedelta(minutes=20)

Clock = Callable[[], datetime]

# Whole bytes in hex, 32 to 100 of them. Apple says not to assume a token size;
# the bound only keeps absurd input out. ASCII ranges on purpose (``\d`` would
# admit other scripts' digits) and used with fullmatch (``$`` admits a "\n").
_DEVICE_TOKEN = re.compile(r"(?:[0-9a-fA-F]{2}){32,100}")
# Bundle and pass type identifiers: reverse-DNS, with an optional suffix.
_TOPIC = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
# Apple's key ids and team ids are 10 characters, upper-case letters and digits.
_APPLE_ID = re.compile(r"[A-Z0-9]{10}")

_STALE_TOKEN_REASONS = frozenset({"ExpiredProviderToken", "InvalidProviderToken"})
_DEAD_TOKEN_REASONS = frozenset({"BadDeviceToken"})


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("naive datetime: use aware UTC datetimes")
    return now


def _redacted(device_token: str) -> str:
    """Enough of a device token to tell pushes apart in messages, not enough to reuse it."""
    return device_token[:8] + "..."


def validate_device_token(device_token: str) -> str:
    """Return an APNs device token in lower case; anything but whole bytes of hex is refused.

    The token becomes part of the request path, so this is what keeps ``/``,
    ``..``, ``%2f``, ``?`` or a line break out of it. The web layer should run
    the same check when a device registers, so a bad token never gets stored.

    :raises InputError: (field ``device_token``) for anything else.
    """
    if not isinstance(device_token, str) or _DEVICE_TOKEN.fullmatch(device_token) is None:
        raise InputError(
            "a device token is 64 to 200 hexadecimal characters (whole bytes)",
            field="device_token",
        )
    return device_token.lower()


def validate_topic(topic: str) -> str:
    """Return an APNs topic (here: a pass type identifier) if it is safe as a header value.

    :raises InputError: (field ``topic``) for an empty value, whitespace, control
        characters or anything else outside reverse-DNS identifiers.
    """
    if not isinstance(topic, str) or _TOPIC.fullmatch(topic) is None:
        raise InputError(
            "an APNs topic is a reverse-DNS identifier such as pass.de.example.library",
            field="topic",
        )
    return topic


class Delivery(StrEnum):
    """What a push achieved, when APNs accepted the request as well-formed."""

    DELIVERED = "delivered"
    # The push token is dead: the caller deletes the registration.
    UNREGISTERED = "unregistered"


@dataclass(frozen=True)
class ApnsOutcome:
    """APNs' answer to one push that needs no retry.

    ``apns_id`` is APNs' identifier of the notification (Apple's support and
    the delivery log know it). For :attr:`Delivery.UNREGISTERED`, ``reason``
    is APNs' reason and ``unregistered_at`` the moment APNs last knew the
    token was dead (410 only): a registration made after it is a new one and
    must be kept.
    """

    delivery: Delivery
    apns_id: str | None
    reason: str | None = None
    unregistered_at: datetime | None = None

    @property
    def delivered(self) -> bool:
        return self.delivery is Delivery.DELIVERED

    @property
    def unregistered(self) -> bool:
        return self.delivery is Delivery.UNREGISTERED


def _require_p256(key: object, *, source: str) -> ec.EllipticCurvePrivateKey:
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError(f"{source} is not an EC P-256 key; APNs provider tokens need ES256")
    return key


def _load_p256_key(
    data: bytes, *, passphrase: bytes | None, source: str
) -> ec.EllipticCurvePrivateKey:
    """Parse a PKCS#8 PEM P-256 private key; errors name ``source``, never the key."""
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError as exc:
        # cryptography says TypeError for "encrypted but no passphrase" and the reverse.
        raise ConfigError(f"{source}: {exc}") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ConfigError(
            f"{source} is not a PEM private key (or the passphrase is wrong)"
        ) from exc
    return _require_p256(key, source=source)


class TokenAuth:
    """Token-based APNs authentication: an ES256 provider token, minted rarely.

    Time is a parameter (``now=``) so the caller's clock decides, and tests
    never sleep. Thread-safe: several outbox workers may share one instance.
    The private key never appears in ``repr``, messages or logs.
    """

    __slots__ = ("_issued_at", "_key", "_lock", "_renewed_at", "_token", "key_id", "team_id")

    def __init__(
        self,
        key: ec.EllipticCurvePrivateKey | bytes,
        *,
        key_id: str,
        team_id: str,
        passphrase: bytes | None = None,
    ) -> None:
        if isinstance(key, bytes):
            key = _load_p256_key(key, passphrase=passphrase, source="the APNs key")
        key = _require_p256(key, source="the APNs key")
        if _APPLE_ID.fullmatch(key_id) is None:
            raise ConfigError("an APNs key id is the 10-character Key ID from Apple")
        if _APPLE_ID.fullmatch(team_id) is None:
            raise ConfigError("an Apple team id is the 10-character Team ID from Apple")
        self._key = key
        self.key_id = key_id
        self.team_id = team_id
        self._lock = threading.Lock()
        self._token: str | None = None
        self._issued_at: datetime | None = None
        self._renewed_at: datetime | None = None

    def __repr__(self) -> str:
        return f"TokenAuth(key_id={self.key_id!r}, team_id={self.team_id!r})"

    def _mint(self, now: datetime) -> str:
        token = jwt.encode(
            {"iss": self.team_id, "iat": int(now.timestamp())},
            self._key,
            algorithm="ES256",
            # Apple's token header is exactly alg and kid; PyJWT drops an empty typ.
            headers={"kid": self.key_id, "typ": None},
        )
        self._token, self._issued_at = token, now
        return token

    def bearer(self, *, now: datetime) -> str:
        """The provider token to send at ``now``: the cached one until it is 50 minutes old."""
        _aware(now)
        with self._lock:
            if (
                self._token is None
                or self._issued_at is None
                or now - self._issued_at >= TOKEN_REFRESH_AFTER
            ):
                return self._mint(now)
            return self._token

    def renew(self, rejected: str, *, now: datetime) -> bool:
        """APNs refused ``rejected`` as expired or invalid: mint a new token if that is safe.

        Returns whether a different token is now available. Forced renewals are
        at most one per 20 minutes, so a wrong key or clock cannot make every
        push mint a token and earn TooManyProviderTokenUpdates on top.
        """
        _aware(now)
        with self._lock:
            if self._token is not None and rejected != self._token:
                return True  # another sender renewed it meanwhile
            if self._renewed_at is not None and now - self._renewed_at < TOKEN_MIN_INTERVAL:
                return False
            self._renewed_at = now
            self._mint(now)
            return True


def load_token_auth(
    path: Path, *, key_id: str, team_id: str, passphrase: bytes | None = None
) -> TokenAuth:
    """Read Apple's ``AuthKey_<KEYID>.p8`` (PKCS#8 PEM, EC P-256) into a :class:`TokenAuth`.

    :raises ConfigError: naming the file, when it is missing, unreadable or not
        such a key.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the APNs key {path}: {exc.strerror or exc}") from exc
    key = _load_p256_key(data, passphrase=passphrase, source=f"the APNs key {path}")
    return TokenAuth(key, key_id=key_id, team_id=team_id)


@dataclass(frozen=True)
class CertificateAuth:
    """Certificate-based APNs authentication: the pass type ID certificate as TLS client cert.

    This is what Apple's pass documentation describes: the certificate and key
    that signed the pass. ``key_path`` may be None when the key is in the
    certificate file. The passphrase reaches OpenSSL through a callback, so it
    never appears on a command line and OpenSSL never prompts on a terminal.
    """

    cert_path: Path
    key_path: Path | None = None
    passphrase: bytes | None = field(default=None, repr=False)

    def load_into(self, context: ssl.SSLContext) -> None:
        """Add the client certificate to ``context``.

        :raises ConfigError: naming the files, when they are missing or the
            key cannot be decrypted.
        """

        def passphrase() -> bytes:
            return self.passphrase or b""  # b"" fails cleanly where None would prompt

        files = str(self.cert_path) + (f" / {self.key_path}" if self.key_path else "")
        try:
            context.load_cert_chain(
                self.cert_path,
                self.key_path,
                password=passphrase,
            )
        except FileNotFoundError as exc:
            raise ConfigError(f"APNs certificate or key file missing: {files}") from exc
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"cannot load the APNs client certificate {files}: "
                "wrong passphrase, or not a PEM certificate and key that belong together"
            ) from exc


def _check_base_url(base_url: str) -> str:
    """Only an https origin: the provider token must never travel in clear text."""
    import httpx

    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL as exc:
        raise ConfigError(f"APNs base URL {base_url!r} is not a URL") from exc
    if url.scheme != "https" or not url.host:
        raise ConfigError(f"APNs base URL {base_url!r} must be https://host[:port]")
    if url.userinfo or url.query or url.fragment or url.path not in ("", "/"):
        raise ConfigError(f"APNs base URL {base_url!r} must be an origin, with no path or query")
    return base_url.rstrip("/")


def _tls_context(*, ca_file: Path | None, auth: TokenAuth | CertificateAuth) -> ssl.SSLContext:
    if ca_file is not None and not ca_file.is_file():
        raise ConfigError(f"APNs CA file {ca_file} does not exist")
    context = ssl.create_default_context(cafile=str(ca_file or certifi.where()))
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # APNs: TLS 1.2 or later
    if isinstance(auth, CertificateAuth):
        auth.load_into(context)
    return context


def _error_body(response: httpx.Response) -> dict[str, object]:
    try:
        body = json.loads(response.content or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _reason(response: httpx.Response) -> str | None:
    reason = _error_body(response).get("reason")
    return reason if isinstance(reason, str) else None


def _unregistered_at(response: httpx.Response) -> datetime | None:
    stamp = _error_body(response).get("timestamp")
    if isinstance(stamp, bool) or not isinstance(stamp, int | float):
        return None
    try:
        return datetime.fromtimestamp(stamp / 1000, UTC)  # APNs: milliseconds since the epoch
    except (OverflowError, OSError, ValueError):
        return None


class ApnsClient:
    """Sends Wallet pass update pushes over one reused HTTP/2 connection to APNs.

    Apple asks providers to keep connections open for as long as possible; the
    underlying ``httpx.Client`` does, and multiplexes concurrent pushes as HTTP/2
    streams. Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        *,
        auth: TokenAuth | CertificateAuth,
        base_url: str = PRODUCTION_URL,
        ca_file: Path | None = None,
        timeout: float = 10.0,
        clock: Clock = _utc_now,
    ) -> None:
        self._auth = auth
        self._base_url = _check_base_url(base_url)
        self._clock = clock
        import httpx

        self._http = httpx.Client(
            http1=False,  # APNs speaks HTTP/2 only
            http2=True,
            verify=_tls_context(ca_file=ca_file, auth=auth),
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,  # no proxy or netrc picked up from the environment
        )

    def __enter__(self) -> ApnsClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection to APNs."""
        self._http.close()

    def send(self, device_token: str, *, topic: str) -> ApnsOutcome:
        """Push a pass update (an empty payload) for ``topic`` to one device.

        :returns: DELIVERED, or UNREGISTERED when the caller must delete the
            registration.
        :raises InputError: for a malformed device token or topic, before any request.
        :raises DeliveryError: when the push did not go through; ``retry`` says
            whether the same push may succeed later.
        """
        token = validate_device_token(device_token)
        topic = validate_topic(topic)
        response, bearer = self._post(token, topic)
        if (
            isinstance(self._auth, TokenAuth)
            and bearer is not None
            and response.status_code == 403
            and _reason(response) in _STALE_TOKEN_REASONS
            and self._auth.renew(bearer, now=self._clock())
        ):
            response, bearer = self._post(token, topic)
        return self._outcome(response, token)

    def _post(self, token: str, topic: str) -> tuple[httpx.Response, str | None]:
        headers = {
            "apns-topic": topic,
            "apns-push-type": PUSH_TYPE,
            "apns-priority": PRIORITY,
            "content-type": "application/json",
        }
        bearer: str | None = None
        if isinstance(self._auth, TokenAuth):
            bearer = self._auth.bearer(now=self._clock())
            headers["authorization"] = f"bearer {bearer}"
        import httpx

        try:
            response = self._http.post(
                f"{self._base_url}/3/device/{token}", content=PAYLOAD, headers=headers
            )
        except httpx.TimeoutException as exc:
            raise DeliveryError(
                f"APNs did not answer in time for device {_redacted(token)}", retry=True
            ) from exc
        except httpx.TransportError as exc:
            raise DeliveryError(
                f"cannot reach APNs at {self._base_url}: {type(exc).__name__}", retry=True
            ) from exc
        return response, bearer

    def _outcome(self, response: httpx.Response, token: str) -> ApnsOutcome:
        status = response.status_code
        apns_id = response.headers.get("apns-id")
        if status == 200:
            return ApnsOutcome(Delivery.DELIVERED, apns_id)
        reason = _reason(response)
        if status == 410 or (status == 400 and reason in _DEAD_TOKEN_REASONS):
            log.info("APNs: device %s is unregistered (%s)", _redacted(token), reason)
            return ApnsOutcome(
                Delivery.UNREGISTERED,
                apns_id,
                reason=reason,
                unregistered_at=_unregistered_at(response) if status == 410 else None,
            )
        retry = status == 429 or status >= 500
        raise DeliveryError(
            f"APNs refused the push to device {_redacted(token)}: {status} {reason or 'no reason'}",
            retry=retry,
            status=status,
        )
