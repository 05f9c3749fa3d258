"""A permit may hold several plates: its plate-and-zone keys move to a table of their own.

One column with a partial unique index allowed one plate per permit. A row per plate
in ``enforcement_keys``, present exactly while its permit is live, gives one live
permit per plate and zone with a plain unique constraint, for every plate of every
permit. The keys of live permits (not revoked, not a renewed pass waiting to retire)
are copied; revoked and renewed passes had no say in uniqueness and get no rows.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 08:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# As 0012 defined it: suspended permits count, a renewed pass waiting to retire does not.
_live = sa.text("enforcement_key IS NOT NULL AND state <> 'revoked' AND retire_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "enforcement_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pass_id", sa.Integer(), nullable=False),
        sa.Column(
            "value",
            sa.String(length=64).with_variant(sa.String(length=64, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["pass_id"], ["passes.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("value", name="uq_enforcement_keys_value"),
    )
    op.create_index("ix_enforcement_keys_pass_id", "enforcement_keys", ["pass_id"])
    # Each live permit held one plate until now: its key moves over as it is.
    op.execute(
        "INSERT INTO enforcement_keys (pass_id, value) SELECT id, enforcement_key FROM passes "
        "WHERE enforcement_key IS NOT NULL AND state <> 'revoked' AND retire_at IS NULL "
        "ORDER BY id"
    )
    op.drop_index("uq_passes_enforcement_key", table_name="passes")
    with op.batch_alter_table("passes") as batch:
        batch.drop_column("enforcement_key")


def downgrade() -> None:
    with op.batch_alter_table("passes") as batch:
        batch.add_column(sa.Column("enforcement_key", sa.String(length=64), nullable=True))
    # The old column holds one plate: a live permit keeps its first. Revoked and renewed
    # passes stay NULL, which the old code never asked about (its queries want live ones).
    op.execute(
        "UPDATE passes SET enforcement_key = (SELECT k.value FROM enforcement_keys k "
        "WHERE k.pass_id = passes.id ORDER BY k.id LIMIT 1)"
    )
    op.create_index(
        "uq_passes_enforcement_key",
        "passes",
        ["pass_type", "enforcement_key"],
        unique=True,
        postgresql_where=_live,
        sqlite_where=_live,
    )
    op.drop_index("ix_enforcement_keys_pass_id", table_name="enforcement_keys")
    op.drop_table("enforcement_keys")
