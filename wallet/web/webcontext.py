"""What every view reads: the per-process web context (settings, services, database, clock)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flask import current_app

from wallet.config import Settings
from wallet.services.context import Services
from wallet.services.verification import VerifierCache
from wallet.store.db import Database

__all__ = ["WebContext", "context", "now"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class WebContext:
    """Everything a view needs, built once per process in the app factory."""

    settings: Settings
    services: Services
    db: Database
    clock: Callable[[], datetime] = field(default=_utc_now)
    # One online verifier per published bundle, shared by the API and the console.
    verifiers: VerifierCache = field(default_factory=VerifierCache)


def context() -> WebContext:
    ctx: WebContext = current_app.extensions["wallet"]
    return ctx


def now() -> datetime:
    return context().clock()
