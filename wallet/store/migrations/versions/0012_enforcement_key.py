"""One permit per plate and zone at a time: an enforcement key, unique among live passes.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 05:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# Live: not revoked, and not a renewed pass waiting to retire (its successor has
# the key now). Suspended permits still count: they are the plate's permit.
_live = sa.text("enforcement_key IS NOT NULL AND state <> 'revoked' AND retire_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("passes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("enforcement_key", sa.String(length=64), nullable=True))
    op.create_index(
        "uq_passes_enforcement_key",
        "passes",
        ["pass_type", "enforcement_key"],
        unique=True,
        postgresql_where=_live,
        sqlite_where=_live,
    )


def downgrade() -> None:
    op.drop_index("uq_passes_enforcement_key", table_name="passes")
    with op.batch_alter_table("passes", schema=None) as batch_op:
        batch_op.drop_column("enforcement_key")
