"""Online verification: the offline verifier, run on the bundle the service just published.

Staff without a synced device, and the API's verify route, get exactly the
verdict a device would give right after a sync, so there is one verification
code path and one result shape. Building a :class:`Verifier` checks every
status list signature, so it is built once per published bundle, not per scan.
"""

from __future__ import annotations

import threading
from datetime import datetime

from wallet.bundle import verify_bundle
from wallet.services.context import Services
from wallet.verifier import VerificationResult, Verifier


class VerifierCache:
    """The Verifier for the newest bundle token this process has seen; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._token: str | None = None
        self._verifier: Verifier | None = None

    def verifier_for(self, bundle_token: str, *, services: Services, now: datetime) -> Verifier:
        """A Verifier over ``bundle_token``, checked against our own trust root like a device."""
        with self._lock:
            if self._token == bundle_token and self._verifier is not None:
                return self._verifier
        root = services.keys.root_public_key(now=now)
        verifier = Verifier(verify_bundle(bundle_token, root, now=now))
        with self._lock:
            self._token, self._verifier = bundle_token, verifier
        return verifier

    def check(
        self, text: object, *, bundle_token: str, services: Services, now: datetime
    ) -> VerificationResult:
        """Judge a QR text or JWS against the given (current) bundle. Never raises on input."""
        verifier = self.verifier_for(bundle_token, services=services, now=now)
        return verifier.check(text, now=now)
