"""Apple and Google Wallet: update web service registrations, the push outbox.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 06:00:00
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

import wallet.store.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_when = wallet.store.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("passes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("apple_auth_token", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_passes_update_tag"), ["update_tag"], unique=False)
    # Passes issued before this revision get their own secret, then the column is required.
    passes = sa.table("passes", sa.column("id", sa.Integer), sa.column("apple_auth_token"))
    connection = op.get_bind()
    for (pass_id,) in connection.execute(sa.select(passes.c.id)).all():
        connection.execute(
            passes.update()
            .where(passes.c.id == pass_id)
            .values(apple_auth_token=secrets.token_urlsafe(24))
        )
    with op.batch_alter_table("passes", schema=None) as batch_op:
        batch_op.alter_column("apple_auth_token", existing_type=sa.String(64), nullable=False)

    op.create_table(
        "apple_registrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("push_token", sa.String(length=200), nullable=False),
        sa.Column("pass_id", sa.Integer(), nullable=False),
        sa.Column("created_at", _when, nullable=False),
        sa.ForeignKeyConstraint(["pass_id"], ["passes.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("device_id", "pass_id"),
    )
    with op.batch_alter_table("apple_registrations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_apple_registrations_device_id"), ["device_id"])
        batch_op.create_index(batch_op.f("ix_apple_registrations_pass_id"), ["pass_id"])

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("pass_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _when, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", _when, nullable=False),
        sa.Column("done_at", _when, nullable=True),
        sa.ForeignKeyConstraint(["pass_id"], ["passes.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_due", ["state", "next_attempt_at"])

    op.create_table(
        "apple_device_logs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", _when, nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("apple_device_logs")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_due")
    op.drop_table("outbox")
    with op.batch_alter_table("apple_registrations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_apple_registrations_pass_id"))
        batch_op.drop_index(batch_op.f("ix_apple_registrations_device_id"))
    op.drop_table("apple_registrations")
    with op.batch_alter_table("passes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_passes_update_tag"))
        batch_op.drop_column("apple_auth_token")
