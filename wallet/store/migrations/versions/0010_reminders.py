"""Renewal reminders: which pass got which reminder, so none goes out twice.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 02:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import wallet.store.models

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_when = wallet.store.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "reminders_sent",
        sa.Column("pass_id", sa.Integer(), nullable=False),
        sa.Column("days_before", sa.Integer(), nullable=False),
        sa.Column("sent_at", _when, nullable=False),
        sa.ForeignKeyConstraint(["pass_id"], ["passes.id"]),
        sa.PrimaryKeyConstraint("pass_id", "days_before"),
    )


def downgrade() -> None:
    op.drop_table("reminders_sent")
