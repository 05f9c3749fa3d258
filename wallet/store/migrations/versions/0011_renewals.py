"""Renewals: a successor pass lives under its predecessor's wallet serial, and the
predecessor's token is retired when the successor is claimed or its grace period ends.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 04:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import wallet.store.models

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_when = wallet.store.models.UTCDateTime(timezone=True)
_pending = sa.text("retire_at IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("passes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("wallet_serial", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("retire_at", _when, nullable=True))
        batch_op.create_index("ix_passes_wallet_serial", ["wallet_serial"], unique=False)
        batch_op.create_index(
            "ix_passes_retire_at",
            ["retire_at"],
            unique=False,
            postgresql_where=_pending,
            sqlite_where=_pending,
        )


def downgrade() -> None:
    with op.batch_alter_table("passes", schema=None) as batch_op:
        batch_op.drop_index("ix_passes_retire_at")
        batch_op.drop_index("ix_passes_wallet_serial")
        batch_op.drop_column("retire_at")
        batch_op.drop_column("wallet_serial")
