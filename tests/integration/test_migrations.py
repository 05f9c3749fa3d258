"""Migrations: they build exactly the models' schema, and carry old data forward."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, create_engine, text

from tests.database import BACKENDS, throwaway_postgres
from wallet.store.db import MIGRATIONS, Database
from wallet.store.models import Base


def _config(connection: object) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def test_migrations_build_exactly_the_models_schema(db: Database) -> None:
    with db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_upgrading_from_0001_gives_existing_passes_their_own_apple_secret(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    with engine.begin() as connection:
        command.upgrade(_config(connection), "0001")
        connection.execute(
            text(
                "INSERT INTO status_lists (id, name, pass_type, bits, size, used, version, "
                "published_version, created_at) VALUES (1, 'library-1', 'library', 1, 131072, 2, "
                "1, 0, '2026-01-01 00:00:00.000000')"
            )
        )
        for n in (1, 2):
            connection.execute(
                text(
                    "INSERT INTO passes (serial, pass_type, holder, holder_search, state, "
                    "valid_from, valid_until, status_list_id, status_idx, kid, token, update_tag, "
                    "created_at, updated_at) VALUES (:serial, 'library', :holder, 'x', 'valid', "
                    "'2026-01-01 00:00:00.000000', '2028-01-01 00:00:00.000000', 1, :idx, 'k', "
                    "'t', 1, '2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000')"
                ),
                {"serial": f"serial{n}", "holder": json.dumps({"name": "x"}), "idx": n},
            )
        command.upgrade(_config(connection), "head")
        secrets = [
            row[0] for row in connection.execute(text("SELECT apple_auth_token FROM passes"))
        ]
    assert len(secrets) == 2 and len(set(secrets)) == 2
    assert all(len(s) >= 16 for s in secrets)


def test_every_migration_can_be_undone(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'down.sqlite3'}")
    with engine.begin() as connection:
        command.upgrade(_config(connection), "head")
        command.downgrade(_config(connection), "base")
        tables = connection.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))
        assert {row[0] for row in tables} <= {"alembic_version"}


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables yet, of each backend: to migrate step by step."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    with throwaway_postgres("wallet_migrate") as url:
        yield url


_OLD_PERMIT = text(
    "INSERT INTO passes (id, serial, pass_type, holder, holder_search, state, valid_from, "
    "valid_until, status_list_id, status_idx, kid, token, update_tag, apple_auth_token, "
    "enforcement_key, retire_at, created_at, updated_at) VALUES (:id, :serial, 'parking', "
    "'{}', 'x', :state, '2026-01-01 00:00:00', '2027-01-01 00:00:00', 1, :id, 'k', 't', 0, "
    "'secret-secret-secret', :key, :retire_at, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
)


def _permits_before_0016(connection: Connection) -> None:
    """Permits as 0015 stored them: the key on the pass, unique among live ones only."""
    connection.execute(
        text(
            "INSERT INTO status_lists (id, name, pass_type, bits, size, used, version, "
            "published_version, created_at) VALUES (1, 'parking-1', 'parking', 2, 131072, 5, "
            "1, 0, '2026-01-01 00:00:00')"
        )
    )
    for id_, state, key, retire_at in (
        (1, "valid", "D-AB 1|12", None),  # live
        (2, "suspended", "D-AB 2|12", None),  # live: still the plate's permit
        (3, "revoked", "D-AB 3|12", None),  # gone: the plate is free
        (4, "valid", "D-AB 4|12", "2027-01-14 00:00:00"),  # renewed, waiting to retire
        (5, "valid", "D-AB 4|12", None),  # its successor holds the plate now
        (6, "revoked", "D-AB 1|12", None),  # an older permit of a live plate
    ):
        connection.execute(
            _OLD_PERMIT,
            {"id": id_, "serial": f"serial{id_}", "state": state, "key": key,
             "retire_at": retire_at},
        )  # fmt: skip


def test_0016_moves_the_keys_of_live_permits_only_and_back(empty_url: str) -> None:
    engine = create_engine(empty_url)
    try:
        with engine.begin() as connection:
            command.upgrade(_config(connection), "0015")
            _permits_before_0016(connection)
            command.upgrade(_config(connection), "0016")
            moved = connection.execute(
                text("SELECT pass_id, value FROM enforcement_keys ORDER BY pass_id")
            ).all()
            assert [tuple(row) for row in moved] == [
                (1, "D-AB 1|12"), (2, "D-AB 2|12"), (5, "D-AB 4|12"),
            ]  # fmt: skip
            command.downgrade(_config(connection), "0015")
            restored = connection.execute(
                text("SELECT id, enforcement_key FROM passes ORDER BY id")
            ).all()
        assert [tuple(row) for row in restored] == [
            (1, "D-AB 1|12"), (2, "D-AB 2|12"), (3, None), (4, None), (5, "D-AB 4|12"),
            (6, None),
        ]  # fmt: skip
    finally:
        engine.dispose()
