"""Upgrading a populated database from EVERY earlier migration to the newest one.

The revisions come from Alembic's script directory, so a new migration is
tested the day it is added. The rows are realistic: an instance at the newest
schema is populated through the CLI (both pass types, revoked, suspended and
reissued passes, a published status list and bundle, a sealed audit chain,
staff, API tokens), and each table's rows are projected onto the schema of the
older revision (the columns that revision has). Tables nothing filled get rows
from a writer driven by reflection, which fills every column by its type.
Then ``wallet db upgrade`` must keep every value, and the app must work on the
result: the old passes read and verify as before, new passes get status
indices no old pass holds, and the audit chain verifies.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.types import TypeEngine

from tests.cli.admin import Wallet
from tests.database import BACKENDS, throwaway_postgres
from wallet.bundle import root_public_key, verify_bundle
from wallet.store.db import MIGRATIONS, Database, database_url
from wallet.store.models import Base, UTCDateTime
from wallet.verifier import Verifier


def _config(connection: object | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _revisions() -> list[str]:
    """Every migration, oldest first."""
    scripts = ScriptDirectory.from_config(_config())
    return [script.revision for script in reversed(list(scripts.walk_revisions()))]


REVISIONS = _revisions()
EARLIER = REVISIONS[:-1]
WHEN = datetime(2026, 3, 1, 8, 30, 15, 123456, tzinfo=UTC)


# -- the populated instance at the newest schema ------------------------------------------


@dataclass(frozen=True)
class Populated:
    folder: Path
    rows: Mapping[str, list[dict[str, Any]]]  # table -> rows, with the models' Python values
    passes: Mapping[str, tuple[str, str, dict[str, str]]]  # serial -> token, state, holder

    def env(self, url: str, instance: Path) -> dict[str, str | None]:
        return {
            "WALLET_DATABASE_URL": url,
            "WALLET_SIGNING_KEYS_DIR": str(self.folder / "keys"),
            "WALLET_INSTANCE_DIR": str(instance),
            "WALLET_PUBLIC_URL": "https://pass.stadt-musterstadt.de",
            "WALLET_ISSUER": None,
            "WALLET_DEV_MODE": "1",
            "WALLET_KEY_PASSPHRASE": None,
            "WALLET_SECRET_KEY": None,
            "WALLET_ACTOR": None,
            "WALLET_PASS_TYPES_DIR": None,
        }


def _issue(wallet: Wallet, type_id: str, **fields: str) -> str:
    pairs = [part for name, value in fields.items() for part in ("--field", f"{name}={value}")]
    result = wallet.ok("passes", "issue", "--type", type_id, *pairs)
    return result.stdout.splitlines()[0].rsplit(" ", 1)[1]


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Populated:
    folder = tmp_path_factory.mktemp("populated")
    database = Database(f"sqlite:///{folder / 'wallet.sqlite3'}")
    database.upgrade()
    skeleton = Populated(folder, {}, {})
    wallet = Wallet(CliRunner(), skeleton.env(database.url, folder / "instance"))
    wallet.ok("setup")
    wallet.ok("users", "add", "desk", "--role", "issuer", "--password-stdin", input="x" * 14)
    first = _issue(wallet, "library", card_number="100200300400", name="Erika Mustermann")
    _issue(wallet, "library", card_number="100200300401", name="Hans M\u00fcller")
    lost = _issue(wallet, "parking", plate="D-AB 1234", zone="12")
    moved = _issue(wallet, "parking", plate="D-CD 567", zone="12")
    unpaid = _issue(wallet, "parking", plate="D-EF 89", zone="7")
    wallet.ok("passes", "revoke", first, "--reason", "card reported stolen")
    wallet.ok("passes", "revoke", moved, "--reason", "moved away")
    wallet.ok("passes", "suspend", unpaid, "--reason", "fee unpaid")
    wallet.ok("passes", "reissue", lost, "--reason", "new phone")
    wallet.ok("status", "publish")
    wallet.ok("bundle", "export", "--out", str(folder / "bundle.jwt"))
    assert "intact" in wallet.ok("audit", "verify").stdout
    rows: dict[str, list[dict[str, Any]]] = {}
    with database.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            found = connection.execute(select(table)).mappings().all()
            rows[table.name] = [dict(row) for row in found]
        passes = {
            row["serial"]: (row["token"], row["state"], dict(row["holder"]))
            for row in rows["passes"]
        }
    database.dispose()
    assert {state for _, state, _ in passes.values()} == {"valid", "revoked", "suspended"}
    return Populated(folder, rows, passes)


# -- an empty database of each backend, one per test --------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """ "sqlite", or the URL of a throw-away PostgreSQL database for this module."""
    if request.param == "sqlite":
        yield "sqlite"
        return
    with throwaway_postgres("wallet_upgrades") as url:
        yield url


@pytest.fixture
def empty_url(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'old.sqlite3'}"
    engine = create_engine(backend, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return backend


# -- writing rows into an older schema ------------------------------------------------------


def _column_type(name: str, column: str, reflected: Any) -> TypeEngine[Any]:
    """The models' type where the column still exists (values go in as the app wrote
    them), else the reflected one."""
    model = Base.metadata.tables.get(name)
    if model is not None and column in model.columns:
        return model.columns[column].type
    return reflected  # type: ignore[no-any-return]


def _writable(connection: Connection, name: str) -> Table:
    columns = inspect(connection).get_columns(name)
    return Table(
        name,
        MetaData(),
        *(Column(c["name"], _column_type(name, c["name"], c["type"])) for c in columns),
    )


def _value(column: Column[Any], n: int, *, parent: object = None) -> object:
    """A value of the column's type, distinct per ``n`` (unique columns stay unique)."""
    if parent is not None:
        return parent
    kind = column.type
    if isinstance(kind, Boolean):
        return n % 2 == 0
    if isinstance(kind, Integer | BigInteger):
        return n
    if isinstance(kind, UTCDateTime | DateTime):
        return WHEN.replace(second=n % 60)
    if isinstance(kind, JSON):
        return {"n": n, "note": "generated"}
    if isinstance(kind, LargeBinary):
        return bytes([n % 256]) * 8
    if isinstance(kind, String | Text):
        length = getattr(kind, "length", None) or 40
        return f"{column.name[:4]}{n:04d}"[:length]
    raise AssertionError(f"no generated value for {column.table.name}.{column.name}: {kind!r}")


def _generated_rows(connection: Connection, name: str, count: int) -> list[dict[str, Any]]:
    """Rows filling every column by its type; foreign keys point at existing rows."""
    inspector = inspect(connection)
    parents: dict[str, list[object]] = {}
    for foreign in inspector.get_foreign_keys(name):
        parent = Table(foreign["referred_table"], MetaData(), autoload_with=connection)
        for local, remote in zip(
            foreign["constrained_columns"], foreign["referred_columns"], strict=True
        ):
            found = list(connection.execute(select(parent.c[remote]).limit(count)).scalars())
            assert len(found) == count, f"{name}.{local}: too few {parent.name} rows to refer to"
            parents[local] = found  # one parent per row: a key may be unique (holder_contacts)
    table = _writable(connection, name)
    return [
        {
            c.name: _value(c, 9000 + n, parent=parents[c.name][n] if c.name in parents else None)
            for c in table.c
        }
        for n in range(count)
    ]


def _project(
    connection: Connection, name: str, rows: list[dict[str, Any]], populated: Populated
) -> list[dict[str, Any]]:
    """The newest schema's rows, as this revision stores them."""
    table = _writable(connection, name)
    inspector = inspect(connection)
    required = {c["name"] for c in inspector.get_columns(name) if not c["nullable"]}
    projected = []
    for n, row in enumerate(rows, start=1):
        out = {c.name: row[c.name] for c in table.c if c.name in row}
        for column in table.c:
            if column.name not in out and column.name in required:
                out[column.name] = _value(column, n)
        projected.append(out)
    if name == "passes" and "enforcement_key" in table.c:
        # Before 0016 a permit's plate key sat on the pass itself.
        keys = {k["pass_id"]: k["value"] for k in populated.rows.get("enforcement_keys", [])}
        for row in projected:
            row["enforcement_key"] = keys.get(row["id"])
    return projected


def _fill(connection: Connection, populated: Populated) -> dict[str, list[dict[str, Any]]]:
    """Write every table of this revision; returns what was written."""
    written: dict[str, list[dict[str, Any]]] = {}
    old = MetaData()
    old.reflect(connection)
    for table in old.sorted_tables:
        if table.name == "alembic_version":
            continue
        source = populated.rows.get(table.name) or []
        if source:
            rows = _project(connection, table.name, source, populated)
        else:
            rows = _generated_rows(connection, table.name, 1)  # singletons (plate_index) stay valid
        connection.execute(_writable(connection, table.name).insert(), rows)
        written[table.name] = rows
    if connection.dialect.name == "postgresql":  # as if the rows had been inserted one by one
        for table in old.sorted_tables:
            if "id" in table.c and isinstance(table.c.id.type, Integer) and written.get(table.name):
                sequence = f"pg_get_serial_sequence('{table.name}', 'id')"
                highest = f'SELECT max(id) FROM "{table.name}"'
                connection.execute(text(f"SELECT setval({sequence}, ({highest}))"))
    return written


def _key(table: Table, row: Mapping[str, Any] | RowMapping) -> tuple[object, ...]:
    return tuple(row[c.name] for c in table.primary_key.columns)


# -- the test -------------------------------------------------------------------------------


@pytest.mark.parametrize("revision", EARLIER)
def test_populated_database_upgrades_from_every_earlier_migration(
    revision: str, empty_url: str, populated: Populated, tmp_path: Path
) -> None:
    logging.getLogger("alembic").setLevel(logging.WARNING)
    engine = create_engine(database_url(empty_url))
    try:
        with engine.begin() as connection:
            command.upgrade(_config(connection), revision)
            written = _fill(connection, populated)
            old_columns = {
                name: {c["name"] for c in inspect(connection).get_columns(name)} for name in written
            }
    finally:
        engine.dispose()
    assert "passes" in written and "audit_log" in written

    wallet = Wallet(CliRunner(), populated.env(empty_url, tmp_path / "instance"))
    upgraded = wallet("db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    assert f"from {revision} to revision {REVISIONS[-1]}" in upgraded.stdout

    # Every row is still there, every value it had kept as it was.
    database = Database(empty_url)
    try:
        with database.engine.connect() as connection:
            for name, rows in written.items():
                model = Base.metadata.tables.get(name)
                if model is None:
                    continue  # a table a later migration retired: its data moved (checked below)
                kept = [c for c in model.columns if c.name in old_columns[name]]
                found = {
                    _key(model, row): {c.name: row[c.name] for c in kept}
                    for row in connection.execute(select(model)).mappings()
                }
                for row in rows:
                    expected = {c.name: row[c.name] for c in kept}
                    assert found.get(_key(model, row)) == expected, (name, _key(model, row))
            if "enforcement_key" in old_columns["passes"]:
                moved = connection.execute(
                    text("SELECT pass_id, value FROM enforcement_keys ORDER BY pass_id")
                ).all()
                before = sorted(
                    (k["pass_id"], k["value"]) for k in populated.rows["enforcement_keys"]
                )
                assert [tuple(row) for row in moved] == before
    finally:
        database.dispose()

    # The app works on it: old passes read and verify as before, with the published lists.
    for serial, (_, state, holder) in populated.passes.items():
        shown = json.loads(wallet.ok("passes", "show", serial, "--json").stdout)
        assert (shown["state"], shown["holder"]) == (state, holder), serial
    new = [
        _issue(wallet, "library", card_number="100200300499", name="Neu Ausgestellt"),
        _issue(wallet, "parking", plate="D-ZZ 1", zone="12"),
    ]
    out, root = tmp_path / "bundle.jwt", tmp_path / "root.pem"
    wallet.ok("bundle", "export", "--out", str(out), "--root-key", str(root), "--force")
    verifier = Verifier(
        verify_bundle(
            out.read_text().strip(), root_public_key(root.read_bytes()), now=datetime.now(UTC)
        )
    )
    for serial, (token, state, _) in populated.passes.items():
        assert verifier.check(token).state == state, serial
    database = Database(empty_url)
    try:
        with database.engine.connect() as connection:
            slots = connection.execute(text("SELECT status_list_id, status_idx FROM passes")).all()
            pairs = connection.execute(text("SELECT serial, token FROM passes"))
            tokens = {str(serial): str(token) for serial, token in pairs}
    finally:
        database.dispose()
    assert len(slots) == len(set(slots)) == len(written["passes"]) + len(new)
    assert {verifier.check(tokens[serial]).state for serial in new} == {"valid"}

    # The audit chain: entries of the keyed-chain era (0004 on) verify as they were sealed.
    if "mac" in old_columns["audit_log"]:
        verified = wallet.ok("audit", "verify")
        assert "the audit chain is intact" in verified.stdout, verified.output
