"""Devices name the zones their officer works in; the plate index is kept per set of zones.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 07:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(
            sa.Column("zones", sa.String(length=400), nullable=False, server_default="")
        )
    with op.batch_alter_table("plate_index") as batch:
        batch.add_column(
            sa.Column("scope", sa.String(length=400), nullable=False, server_default="")
        )
        batch.create_unique_constraint("uq_plate_index_scope", ["scope"])


def downgrade() -> None:
    with op.batch_alter_table("plate_index") as batch:
        batch.drop_constraint("uq_plate_index_scope", type_="unique")
        batch.drop_column("scope")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("zones")
