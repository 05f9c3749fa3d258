"""Sending e-mail over SMTP, for the outbox worker: STARTTLS or implicit TLS, login,
and the city mail server's rate.

A refusal the server means (5xx: no such mailbox, relaying denied, message
rejected) is final; everything else (4xx, a server that is down or slow) is
worth a retry. Each outcome is a :class:`~wallet.errors.DeliveryError` whose
``retry`` says which, and whose message never names the recipient.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Callable
from email.message import EmailMessage

from wallet.config import Settings
from wallet.errors import ConfigError, DeliveryError

__all__ = ["SmtpSender"]

TIMEOUT = 20.0  # seconds per connection and command


class SmtpSender:
    """One connection per message (a worker sends few; a pool would outlive its server)."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not settings.smtp_enabled:
            raise ConfigError("e-mail is not set up: WALLET_SMTP_HOST is empty")
        self.settings = settings
        self._clock = clock
        self._sleep = sleep
        self._gap = 60.0 / settings.smtp_per_minute
        self._last = -self._gap
        self._password = _read_password(settings)

    def send(self, message: EmailMessage) -> None:
        """Deliver one message, no faster than the configured rate allows.

        :raises DeliveryError: refused for good (retry False) or for now (retry True).
        """
        wait = self._last + self._gap - self._clock()
        if wait > 0:
            self._sleep(wait)
        self._last = self._clock()
        try:
            with self._connect() as client:
                if self.settings.smtp_username:
                    client.login(self.settings.smtp_username, self._password)
                client.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            final = all(500 <= code < 600 for code in codes)
            raise DeliveryError(
                f"the mail server refused the recipient ({', '.join(map(str, codes))})",
                retry=not final,
                status=codes[0] if codes else None,
            ) from None
        except smtplib.SMTPResponseException as exc:
            final = 500 <= exc.smtp_code < 600 and not isinstance(
                exc, smtplib.SMTPAuthenticationError
            )
            raise DeliveryError(
                f"the mail server answered {exc.smtp_code}: {_reason(exc.smtp_error)}",
                retry=not final,
                status=exc.smtp_code,
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(
                f"the mail server {self.settings.smtp_host}:{self.settings.smtp_port} "
                f"is not reachable ({type(exc).__name__})",
                retry=True,
            ) from None

    def _connect(self) -> smtplib.SMTP:
        settings = self.settings
        context = ssl.create_default_context(
            cafile=str(settings.smtp_ca_file) if settings.smtp_ca_file else None
        )
        if settings.smtp_security == "tls":
            return smtplib.SMTP_SSL(
                settings.smtp_host, settings.smtp_port, timeout=TIMEOUT, context=context
            )
        client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=TIMEOUT)
        if settings.smtp_security == "starttls":
            try:
                client.starttls(context=context)
            except BaseException:
                client.close()
                raise
        return client


def _reason(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return " ".join(text.split())[:200]


def _read_password(settings: Settings) -> str:
    if settings.smtp_password_file is None:
        return ""
    try:
        return settings.smtp_password_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read WALLET_SMTP_PASSWORD_FILE {settings.smtp_password_file}: {exc}"
        ) from exc
