"""One error tree for the whole service.

Every error has a stable ``code`` slug (for machines, logs and HTTP bodies) and
a human ``message``. Third-party exceptions are translated at the boundary with
``raise ... from exc`` so callers only ever catch :class:`WalletError`.
"""

from __future__ import annotations


class WalletError(Exception):
    """Base of every error this package raises on purpose."""

    code: str = "wallet_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class ConfigError(WalletError):
    """The configuration (environment, files) is missing or inconsistent."""

    code = "config_invalid"


class PassTypeError(WalletError):
    """A pass type definition, or data given for a pass type, is not acceptable."""

    code = "pass_type_invalid"


class InputError(WalletError):
    """A value given by a user or client is not acceptable; ``field`` names it."""

    code = "invalid_input"

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class HolderDataError(InputError):
    """Holder data does not satisfy the pass type's field rules."""

    code = "holder_data_invalid"


class NotFoundError(WalletError):
    """The thing asked for does not exist (or is not visible to the asker)."""

    code = "not_found"


class StateConflictError(WalletError):
    """The action does not fit the current state (revoking a revoked pass …)."""

    code = "invalid_transition"


class SigningKeyError(WalletError):
    """A signing key cannot be created, loaded or used."""

    code = "key_invalid"


class KeyNotFoundError(SigningKeyError):
    code = "key_not_found"


class KeyPassphraseError(SigningKeyError):
    """The key passphrase is missing or wrong."""

    code = "key_passphrase"


class StatusListError(WalletError):
    """A status list is malformed, or an index or value is out of range."""

    code = "status_list_invalid"


class StatusListFullError(StatusListError):
    """No free index is left in a status list."""

    code = "status_list_full"


class QRTextError(WalletError):
    """The text of a QR code is not a pass in any encoding we know."""

    code = "malformed"


class TokenError(WalletError):
    """A token cannot be trusted. Subclasses carry a more specific code."""

    code = "token_invalid"


class BundleError(WalletError):
    """A trust bundle is not genuine, is outdated, or is malformed."""

    code = "bundle_invalid"


class BundleRollbackError(BundleError):
    """A bundle is older than the one already held."""

    code = "bundle_rollback"


class BundleExpiredError(BundleError):
    code = "bundle_expired"


class DeliveryError(WalletError):
    """A push to a wallet platform (APNs, Google Wallet) did not go through.

    ``retry`` says whether the same request may succeed later (network trouble,
    429, 5xx) or never will (a rejected request); the outbox worker backs off
    and retries the first kind and records the second.
    """

    code = "delivery_failed"

    def __init__(self, message: str, *, retry: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retry = retry
        self.status = status
