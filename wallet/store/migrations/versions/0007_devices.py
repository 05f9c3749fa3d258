"""Staff devices: phones running the scanner, paired once from the console.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 01:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import wallet.store.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_when = wallet.store.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("created_at", _when, nullable=False),
        sa.Column("pairing_hash", sa.String(length=64), nullable=True),
        sa.Column("pairing_expires_at", _when, nullable=True),
        sa.Column("credential_hash", sa.String(length=64), nullable=True),
        sa.Column("paired_at", _when, nullable=True),
        sa.Column("last_sync_at", _when, nullable=True),
        sa.Column("revoked_at", _when, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("device_id"),
        sa.UniqueConstraint("pairing_hash"),
        sa.UniqueConstraint("credential_hash"),
    )


def downgrade() -> None:
    op.drop_table("devices")
