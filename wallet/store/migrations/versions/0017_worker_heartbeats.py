"""Outbox workers leave a heartbeat: /readyz tells a load balancer and monitoring
whether one is alive.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 08:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import wallet.store.models

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_when = wallet.store.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "worker_heartbeats",
        sa.Column("worker", sa.String(length=120), nullable=False),
        sa.Column("beat_at", _when, nullable=False),
        sa.PrimaryKeyConstraint("worker"),
    )


def downgrade() -> None:
    op.drop_table("worker_heartbeats")
