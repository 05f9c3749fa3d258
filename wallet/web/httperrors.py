"""The one shape of every error the service answers, and which HTTP status each error gets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import request

from wallet.errors import InputError, NotFoundError, PassTypeError, StateConflictError, WalletError

__all__ = ["HTTP_STATUS", "error_body", "status_for", "wants_json"]

# WalletError subclass -> HTTP status. Everything else that is a WalletError is a 400.
HTTP_STATUS: Mapping[type[WalletError], int] = {
    NotFoundError: 404,
    StateConflictError: 409,
    InputError: 422,
    PassTypeError: 422,
}


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def status_for(exc: WalletError) -> int:
    for kind, status in HTTP_STATUS.items():
        if isinstance(exc, kind):
            return status
    return 400


def wants_json() -> bool:
    """API-like paths answer errors in JSON; pages answer them as pages."""
    return request.path.startswith(
        ("/api/", "/device/", "/status/", "/verifier/", "/.well-known/", "/apple/")
    )
