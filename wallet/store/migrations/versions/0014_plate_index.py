"""The signed offline plate index devices download, with its HMAC key sealed.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 06:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import wallet.store.models

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_when = wallet.store.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "plate_index",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("sealed_key", sa.Text(), nullable=False),
        sa.Column("issued_at", _when, nullable=False),
        sa.Column("expires_at", _when, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("plate_index")
