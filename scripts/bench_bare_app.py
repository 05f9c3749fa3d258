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

db = Database(os.environ["WALLET_DATABASE_URL"])
metadata.create_all(db.engine)
app = Flask(__name__)


@app.get("/ping")
def ping() -> str:
    return "ok"


@app.post("/bare")
def insert() -> tuple[Response, int]:
    body = request.get_data(as_text=True)
    with db.transaction(write=True) as session:
        session.execute(bare.insert().values(body=body, created_at=datetime.now(UTC)))
    return jsonify({"ok": True}), 201
