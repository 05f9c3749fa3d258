"""Migrations: they build exactly the models' schema, and carry old data forward."""

from __future__ import annotations

import json
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

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
