"""Claim links can be replaced by staff (lost message): the old one then says so.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 01:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import wallet.store.models

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_when = wallet.store.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("claim_links", schema=None) as batch_op:
        batch_op.add_column(sa.Column("replaced_at", _when, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("claim_links", schema=None) as batch_op:
        batch_op.drop_column("replaced_at")
