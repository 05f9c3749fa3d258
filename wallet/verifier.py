"""The offline verifier a staff device runs: QR text in, a verdict out.

Needs only PyJWT and cryptography (no web framework, database or terminal
library). :meth:`Verifier.check` never raises: hostile input becomes a result
with a state, a stable reason code and a message in German and English.

A pass is ``valid`` only when its status was read from a fresh status list. A
genuine pass whose list is missing (``status_unchecked``) or out of date
(``stale_status``) is amber, whatever its pass type's policy; the policy only
decides whether amber lets the holder through (``admit``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from wallet.bundle import TrustBundle, root_public_key, verify_bundle
from wallet.errors import (
    BundleError,
    QRTextError,
    SigningKeyError,
    StatusListSubjectError,
    TokenError,
    TokenRejected,
)
from wallet.keys import PublicKey
from wallet.qrtext import decode_qr_parts
from wallet.status import INVALID, SUSPENDED, VALID
from wallet.tokens import (
    MAX_PASS_TOKEN_LENGTH,
    PassClaims,
    PassTokenVerifier,
    ShownClaims,
    StatusListToken,
    signature_keys,
    verify_status_list_token,
)

__all__ = [
    "ADMITTING_REASONS",
    "FORGED",
    "MAX_INPUT_LENGTH",
    "MESSAGES",
    "REASONS",
    "STATES",
    "TONES",
    "UNCHECKED_STATES",
    "VerificationResult",
    "Verifier",
    "load_root_key",
]

# The verdict vocabulary, in one place. These codes are a contract: the console,
# the API, ``wallet-verify``'s exit codes and the JavaScript twin of this verifier
# (with the shared vector corpus) all key on them, so they never change meaning.
STATES = (
    "valid",
    "invalid",
    "revoked",
    "suspended",
    "expired",
    "not_yet_valid",
    "unknown_key",
    "stale_status",
    "status_unchecked",
)
# How a screen shows each state. Amber: a genuine pass that is not refused for
# good but must not simply pass either: suspended for now (GESPERRT), or in date
# with a revocation status that could not be checked against a fresh list (then
# `admit` says whether the pass type's policy lets the holder through anyway).
TONES: dict[str, str] = {
    "valid": "green",
    "invalid": "red",
    "revoked": "red",
    "suspended": "amber",
    "expired": "red",
    "not_yet_valid": "red",
    "unknown_key": "red",
    "stale_status": "amber",
    "status_unchecked": "amber",
}
# The amber states in which the revocation status went unchecked (the policy speaks).
UNCHECKED_STATES = frozenset({"stale_status", "status_unchecked"})
# Every reason code and the one state it comes with.
REASONS: dict[str, str] = {
    "ok": "valid",
    # amber: `*_closed` when the pass type fails closed (parking), else admitted (library)
    "status_stale": "stale_status",
    "status_stale_closed": "stale_status",
    "status_list_unknown": "status_unchecked",
    "status_list_unknown_closed": "status_unchecked",
    # the status list says so
    "revoked": "revoked",
    "suspended": "suspended",
    # outside the pass's validity
    "expired": "expired",
    "not_yet_valid": "not_yet_valid",
    "unknown_kid": "unknown_key",
    # invalid: the input, the token or the status data cannot be trusted
    "malformed": "invalid",
    "too_long": "invalid",
    "duplicate_member": "invalid",
    "bad_header": "invalid",
    "alg_none": "invalid",
    "alg_mismatch": "invalid",
    "crit_header": "invalid",
    "forbidden_header": "invalid",
    "wrong_typ": "invalid",
    "bad_signature": "invalid",
    "bad_claim": "invalid",
    "wrong_issuer": "invalid",
    "issued_in_future": "invalid",
    "key_revoked": "invalid",
    "key_not_allowed": "invalid",
    "key_window": "invalid",
    "token_invalid": "invalid",
    "unknown_pass_type": "invalid",
    "status_list_invalid": "invalid",
    "status_list_subject": "invalid",
    "status_index_out_of_range": "invalid",
    "status_unknown": "invalid",  # a status value the draft does not define
    "internal_error": "invalid",
}
# The only reasons whose verdict lets the holder through.
ADMITTING_REASONS = frozenset({"ok", "status_stale", "status_list_unknown"})
MAX_INPUT_LENGTH = 4 * MAX_PASS_TOKEN_LENGTH  # QR text of a token, with headroom

# reason code -> (German, English). Staff read these on the street: short and plain.
MESSAGES: dict[str, tuple[str, str]] = {
    "ok": ("Ausweis gültig.", "Pass is valid."),
    "status_stale": (
        "Ausweis echt, aber der Sperrstatus ist veraltet und wurde nicht geprüft. "
        "Für diese Ausweisart trotzdem anerkennen; bitte bald synchronisieren.",
        "Pass is genuine, but the revocation data is out of date and was not checked. "
        "This pass type may still be accepted; please sync soon.",
    ),
    "status_stale_closed": (
        "Sperrstatus veraltet: Ausweis kann nicht geprüft werden. "
        "Nicht anerkennen, bitte synchronisieren.",
        "Revocation data is out of date: the pass cannot be checked. "
        "Do not accept it; please sync.",
    ),
    "status_list_unknown": (
        "Ausweis echt, aber für ihn liegt keine Sperrliste vor: Status nicht geprüft. "
        "Für diese Ausweisart trotzdem anerkennen; bitte synchronisieren.",
        "Pass is genuine, but no revocation list for it is available: status not checked. "
        "This pass type may still be accepted; please sync.",
    ),
    "status_list_unknown_closed": (
        "Für diesen Ausweis liegt keine Sperrliste vor: Status nicht prüfbar. "
        "Nicht anerkennen, bitte synchronisieren.",
        "No revocation list for this pass is available: its status cannot be checked. "
        "Do not accept it; please sync.",
    ),
    "revoked": ("Ausweis wurde widerrufen.", "Pass has been revoked."),
    "too_long": (
        "Eingabe zu lang für einen Ausweis: ungültig.",
        "Input too long for a pass: invalid.",
    ),
    "suspended": ("Ausweis ist vorübergehend gesperrt.", "Pass is suspended."),
    "expired": ("Ausweis ist abgelaufen.", "Pass has expired."),
    "not_yet_valid": ("Ausweis ist noch nicht gültig.", "Pass is not valid yet."),
    "unknown_kid": (
        "Unbekannter Schlüssel: Ausweis nicht von dieser Stadt oder Daten veraltet.",
        "Unknown key: pass not issued by this city, or the data is out of date.",
    ),
    "issued_in_future": (
        "Ausstellungsdatum liegt in der Zukunft: Geräteuhr prüfen.",
        "Issue date is in the future: check the device clock.",
    ),
    "status_index_out_of_range": (
        "Ungültiger Verweis auf die Sperrliste.",
        "Invalid reference into the revocation list.",
    ),
    "status_list_invalid": (
        "Die Sperrliste ist nicht echt. Ausweis nicht anerkennen.",
        "The revocation list is not genuine. Do not accept the pass.",
    ),
    "status_list_subject": (
        "Die Sperrliste passt nicht zum Ausweis. Ausweis nicht anerkennen.",
        "The revocation list does not match the pass. Do not accept the pass.",
    ),
    "key_revoked": (
        "Der Signaturschlüssel wurde gesperrt. Ausweis nicht anerkennen.",
        "The signing key has been revoked. Do not accept the pass.",
    ),
    "unknown_pass_type": (
        "Unbekannte Ausweisart. Bitte synchronisieren.",
        "Unknown pass type. Please sync.",
    ),
}
_NO_CLAIMS: Mapping[str, Any] = MappingProxyType({})
# The message of every reason that has none of its own.
FORGED = (
    "Ausweis ist ungültig oder gefälscht.",
    "Pass is invalid or forged.",
)


class VerificationResult(NamedTuple):
    """A verdict: data, never an exception.

    ``admit`` is the one answer a gate needs: true for ``valid``, false for every
    red state, and for an amber state whatever the pass type's policy says.
    A NamedTuple rather than a frozen dataclass: as immutable, and one is built on
    every scan at less than half the cost.
    """

    state: str
    reason: str
    message_de: str
    message_en: str
    claims: Mapping[str, Any] = _NO_CLAIMS
    warnings: tuple[str, ...] = ()
    detail: str = ""
    admit: bool = False

    @property
    def valid(self) -> bool:
        """Genuine, in date and checked against a fresh status list: nothing less."""
        return self.state == "valid"

    @property
    def tone(self) -> str:
        """``green``, ``amber`` or ``red``: how a screen shows this verdict."""
        return TONES.get(self.state, "red")

    @property
    def unchecked(self) -> bool:
        """The revocation status went unchecked: the pass type's policy decided ``admit``."""
        return self.state in UNCHECKED_STATES

    def message(self, lang: str = "de") -> str:
        return self.message_en if lang == "en" else self.message_de

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "reason": self.reason,
            "admit": self.admit,
            "message": {"de": self.message_de, "en": self.message_en},
            "claims": dict(self.claims),
            "warnings": list(self.warnings),
            "detail": self.detail,
        }

    @classmethod
    def of(
        cls,
        state: str,
        reason: str,
        *,
        claims: Mapping[str, Any] | None = None,
        warnings: tuple[str, ...] = (),
        detail: str = "",
    ) -> VerificationResult:
        de, en = MESSAGES.get(reason, FORGED)
        admit = reason in ADMITTING_REASONS and REASONS[reason] == state
        if not isinstance(claims, ShownClaims):  # never format them just to test emptiness
            claims = claims or _NO_CLAIMS
        # tuple.__new__ with the fields in order: a third of the cost of the
        # generated keyword __new__, on every scan.
        return tuple.__new__(
            cls,
            (
                state,
                reason,
                de,
                en,
                claims,
                warnings,
                detail,
                admit,
            ),
        )


class Verifier:
    """Checks pass QR codes against one verified trust bundle."""

    def __init__(self, bundle: TrustBundle) -> None:
        self.bundle = bundle
        self._keys = signature_keys(bundle.keys)
        self._passes = PassTokenVerifier(self._keys, issuer=bundle.issuer)
        # Status list tokens are verified once, here; a bad one is remembered
        # so every pass that points at it is refused with that reason.
        self._lists: dict[str, StatusListToken | TokenRejected] = {}
        for uri, token in bundle.status_lists.items():
            try:
                self._lists[uri] = verify_status_list_token(
                    token, self._keys, issuer=bundle.issuer, uri=uri
                )
            except TokenRejected as exc:
                self._lists[uri] = exc

    @classmethod
    def load(
        cls,
        bundle_path: str | os.PathLike[str],
        *,
        root_key: str | os.PathLike[str] | PublicKey,
        now: datetime | None = None,
    ) -> Verifier:
        """Read and verify a bundle file against the pinned root key.

        :raises BundleError: the bundle or the root key cannot be trusted.
        """
        root = root_key if isinstance(root_key, PublicKey) else load_root_key(Path(root_key))
        try:
            token = Path(bundle_path).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise BundleError(f"cannot read the bundle {bundle_path}: {exc}") from exc
        bundle = verify_bundle(token, root, now=now or datetime.now(UTC))
        return cls(bundle)

    def check(self, text: object, *, now: datetime | None = None) -> VerificationResult:
        """Judge a scanned QR text or bare JWS. Never raises."""
        try:
            return self._check(text, now=now or datetime.now(UTC))
        except Exception as exc:  # last line of defence: a verdict, never a crash
            return VerificationResult.of("invalid", "internal_error", detail=type(exc).__name__)

    def _check(self, text: object, *, now: datetime) -> VerificationResult:
        if not isinstance(text, str):
            return VerificationResult.of("invalid", "malformed", detail="not text")
        if len(text) > MAX_INPUT_LENGTH:
            return VerificationResult.of("invalid", "too_long", detail="input too long")
        try:
            parts = decode_qr_parts(text)
            if parts is None:
                claims = self._passes.verify(text, now=now)
            else:
                claims = self._passes.verify_parts(*parts, now=now)
        except TokenRejected as exc:
            return VerificationResult.of(exc.state, exc.code, claims=exc.claims, detail=exc.message)
        except (QRTextError, TokenError) as exc:
            return VerificationResult.of("invalid", exc.code, detail=exc.message)
        return self._with_status(claims, now=now)

    def _with_status(self, claims: PassClaims, *, now: datetime) -> VerificationResult:
        shown = ShownClaims(claims)  # formatted only if someone reads them
        pass_type = self.bundle.pass_types.get(claims.pass_type)
        if pass_type is None:
            return VerificationResult.of("invalid", "unknown_pass_type", claims=shown)
        fail_closed = pass_type.get("stale_status") != "warn"
        entry = self._lists.get(claims.status_uri)
        if isinstance(entry, TokenRejected):
            reason = (
                "status_list_subject"
                if isinstance(entry, StatusListSubjectError)
                else "status_list_invalid"
            )
            return VerificationResult.of("invalid", reason, claims=shown, detail=entry.message)
        if entry is None:
            return self._unchecked(shown, fail_closed=fail_closed, reason="status_list_unknown")
        if claims.status_idx >= len(entry.status_list):
            return VerificationResult.of("invalid", "status_index_out_of_range", claims=shown)
        value = entry.status_list.get(claims.status_idx)
        if value == INVALID:
            return VerificationResult.of("revoked", "revoked", claims=shown)
        if value == SUSPENDED:
            return VerificationResult.of("suspended", "suspended", claims=shown)
        if value != VALID:
            return VerificationResult.of("invalid", "status_unknown", claims=shown)
        if entry.is_stale(now):
            return self._unchecked(shown, fail_closed=fail_closed, reason="status_stale")
        return VerificationResult.of("valid", "ok", claims=shown)

    @staticmethod
    def _unchecked(
        shown: Mapping[str, Any], *, fail_closed: bool, reason: str
    ) -> VerificationResult:
        """The status list is missing or stale: amber, never ``valid``.

        The pass type's policy decides only ``admit`` (and so the reason code and
        its message); the state says what went unchecked either way.
        """
        if fail_closed:
            reason = f"{reason}_closed"
        return VerificationResult.of(REASONS[reason], reason, claims=shown)


def load_root_key(path: Path) -> PublicKey:
    """The pinned trust-root public key from a PEM file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read the trust-root key {path}: {exc}") from exc
    try:
        return root_public_key(data)
    except SigningKeyError as exc:
        raise BundleError(f"{path} is not a usable trust-root public key: {exc}") from exc
