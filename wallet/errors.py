"""One error tree for the whole service.

Every error has a stable ``code`` slug (for machines, logs and HTTP bodies) and
a human ``message``. Third-party exceptions are translated at the boundary with
``raise ... from exc`` so callers only ever catch :class:`WalletError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class WalletError(Exception):
    """Base of every error this package raises on purpose."""

    code: str = "wallet_error"
    # The input a client should fix, as the API names it (holder.plate), or None.
    field: str | None = None

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
    field: str

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class HolderDataError(InputError):
    """Holder data does not satisfy the pass type's field rules.

    ``kind`` says which rule, for reports that explain it in their own words:
    missing, empty, too_long, format, invisible, not_text, unknown_field, or for a
    plate field that holds several plates too_many_plates or duplicate_plate.
    """

    code = "holder_data_invalid"

    def __init__(self, message: str, *, field: str, kind: str = "invalid") -> None:
        super().__init__(message, field=field)
        self.kind = kind


class NotFoundError(WalletError):
    """The thing asked for does not exist (or is not visible to the asker)."""

    code = "not_found"


class ClaimLinkReplacedError(NotFoundError):
    """A claim link staff replaced with a new one: its page says so, instead of "unknown"."""

    code = "claim_link_replaced"


class StateConflictError(WalletError):
    """The action does not fit the current state (revoking a revoked pass …)."""

    code = "invalid_transition"


class PermitExistsError(StateConflictError):
    """A plate already has a live permit in that zone (one at a time, issue 11)."""

    code = "permit_exists"
    field: str

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field  # the plate field, as the API names it (holder.plate)


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


class MalformedDataError(WalletError):
    """Bytes or text not in the one strict encoding expected (base64url, JSON); see codec."""

    code = "malformed"


class DuplicateJSONMemberError(MalformedDataError):
    code = "duplicate_member"


class TokenError(WalletError):
    """A token cannot be trusted. Subclasses carry a more specific code."""

    code = "token_invalid"


class TokenRejected(TokenError):
    """A token that fails verification; ``state`` is what a verifier shows."""

    state: ClassVar[str] = "invalid"

    def __init__(self, message: str, *, claims: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.claims: Mapping[str, Any] = claims or {}


class MalformedTokenError(TokenRejected):
    code = "malformed"


class TokenTooLongError(MalformedTokenError):
    code = "too_long"


class DuplicateMemberError(MalformedTokenError):
    code = "duplicate_member"


class HeaderError(TokenRejected):
    code = "bad_header"


class AlgNoneError(HeaderError):
    code = "alg_none"


class AlgorithmMismatchError(HeaderError):
    code = "alg_mismatch"


class CritHeaderError(HeaderError):
    code = "crit_header"


class ForbiddenHeaderError(HeaderError):
    code = "forbidden_header"


class WrongTypeError(HeaderError):
    code = "wrong_typ"


class UnknownKeyError(TokenRejected):
    code = "unknown_kid"
    state = "unknown_key"


class BadSignatureError(TokenRejected):
    code = "bad_signature"


class ClaimError(TokenRejected):
    code = "bad_claim"


class WrongIssuerError(ClaimError):
    code = "wrong_issuer"


class IssuedInFutureError(ClaimError):
    code = "issued_in_future"


class ExpiredError(TokenRejected):
    code = "expired"
    state = "expired"


class NotYetValidError(TokenRejected):
    code = "not_yet_valid"
    state = "not_yet_valid"


class KeyRevokedError(TokenRejected):
    code = "key_revoked"


class KeyNotAllowedError(TokenRejected):
    code = "key_not_allowed"


class KeyWindowError(TokenRejected):
    code = "key_window"


class StatusListSubjectError(TokenRejected):
    code = "status_list_subject"


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
