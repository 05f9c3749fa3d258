"""The benchmark's baseline: a bare Flask endpoint doing one insert, nothing else.

It uses the service's own Database class (same engine settings, same BEGIN
IMMEDIATE on SQLite, same pool on PostgreSQL), so the difference to the real
issuance endpoint is the work of issuing a pass.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from flask import Flask, Response, jsonify, request
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, Text

from wallet.store.db import Database

metadata = MetaData()
bare = Table(
    "bench_bare",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("body", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


def create_table(url: str) -> None:
    """Called once before the workers start (two workers racing on DDL would lock)."""
    database = Database(url)
    metadata.create_all(database.engine)
    database.dispose()


app = Flask(__name__)
_databases: list[Database] = []


def database() -> Database:
    """One engine per worker, made on first use (workers are forked after import)."""
    if not _databases:
        _databases.append(Database(os.environ["WALLET_DATABASE_URL"]))
    return _databases[0]


@app.get("/ping")
def ping() -> str:
    return "ok"


@app.post("/bare")
def insert() -> tuple[Response, int]:
    body = request.get_data(as_text=True)
    with database().transaction(write=True) as session:
        session.execute(bare.insert().values(body=body, created_at=datetime.now(UTC)))
    return jsonify({"ok": True}), 201
