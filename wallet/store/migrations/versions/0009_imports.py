"""Imported holders: the key a pass has in the city's own system, and holder contacts.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import wallet.store.models

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_when = wallet.store.models.UTCDateTime(timezone=True)
_KEYED = sa.text("external_key IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("passes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("external_key", sa.String(length=200), nullable=True))
    op.create_index(
        "uq_passes_external_key",
        "passes",
        ["pass_type", "external_key"],
        unique=True,
        postgresql_where=_KEYED,
        sqlite_where=_KEYED,
    )
    op.create_table(
        "holder_contacts",
        sa.Column("pass_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("street", sa.String(length=200), nullable=True),
        sa.Column("postcode", sa.String(length=16), nullable=True),
        sa.Column("city", sa.String(length=100), nullable=True),
        sa.Column("lang", sa.String(length=2), nullable=False),
        sa.Column("reminders", sa.Boolean(), nullable=False),
        sa.Column("created_at", _when, nullable=False),
        sa.ForeignKeyConstraint(["pass_id"], ["passes.id"]),
        sa.PrimaryKeyConstraint("pass_id"),
    )


def downgrade() -> None:
    op.drop_table("holder_contacts")
    op.drop_index("uq_passes_external_key", table_name="passes")
    with op.batch_alter_table("passes", schema=None) as batch_op:
        batch_op.drop_column("external_key")
