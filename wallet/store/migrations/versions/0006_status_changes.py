"""Status lists published from their changes: the last published bits, and when
each pass's status last changed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_CHANGED = sa.text("status_version IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("status_lists", schema=None) as batch_op:
        batch_op.add_column(sa.Column("published_bits", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("passes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status_version", sa.BigInteger(), nullable=True))
    # Passes changed before this revision count as changed at version 0, so the
    # first publication (no stored bits yet) finds them through the index.
    op.execute("UPDATE passes SET status_version = 0 WHERE state != 'valid'")
    op.create_index(
        "ix_passes_status_changes",
        "passes",
        ["status_list_id", "status_version"],
        unique=False,
        postgresql_where=_CHANGED,
        sqlite_where=_CHANGED,
    )


def downgrade() -> None:
    op.drop_index("ix_passes_status_changes", table_name="passes")
    with op.batch_alter_table("passes", schema=None) as batch_op:
        batch_op.drop_column("status_version")
    with op.batch_alter_table("status_lists", schema=None) as batch_op:
        batch_op.drop_column("published_bits")
