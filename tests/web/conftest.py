"""Web fixtures: the real app over a real database, with an explicit test config."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.factories import NOW
from wallet.services import accounts
from wallet.services.context import Services
from wallet.store.db import Database
from wallet.web import create_app


@pytest.fixture
def app(db: Database, services: Services) -> Iterator[Flask]:
    """The app on each database backend, its clock fixed at tests.factories.NOW."""
    application = create_app(
        services.settings,
        services=services,
        db=db,
        clock=lambda: NOW,
        config={"TESTING": True, "RATELIMIT_ENABLED": False},
    )
    yield application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def make_token(db: Database, services: Services) -> Callable[[str], str]:
    """Create an API token with a role; returns the bearer secret."""
    counter = iter(range(1_000_000))

    def make(role: str) -> str:
        with db.transaction(write=True) as session:
            token = accounts.create_api_token(
                session, name=f"{role}-{next(counter)}", role=role, actor="test",
                audit_key=services.audit_key, now=NOW,
            )  # fmt: skip
        return token.secret

    return make


@pytest.fixture
def make_user(db: Database, services: Services) -> Callable[..., str]:
    """Create a staff user; returns the username (the password is 'correct horse battery')."""

    def make(username: str = "anna", role: str = "issuer") -> str:
        with db.transaction(write=True) as session:
            accounts.add_user(
                session,
                username=username,
                password="correct horse battery",
                role=role,
                actor="test",
                audit_key=services.audit_key,
                now=NOW,
            )
        return username

    return make


@pytest.fixture
def quick_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real argon2, cheap parameters: hashes carry their parameters, so logins stay real."""
    quick = accounts.argon2.using(memory_cost=1024, rounds=1)
    monkeypatch.setattr(accounts, "argon2", quick)
    monkeypatch.setattr(accounts, "_DUMMY_HASH", quick.hash("unknown user"))
