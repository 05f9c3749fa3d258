"""Staff sign-in through the city's OpenID Connect provider (an account is the
provider's issuer and subject) and TOTP as a second factor for local accounts
(the secret sealed, the last time step used so a code works only once). Sign-ins
under way at the provider are held server-side, so a state works once on any app server.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 09:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import wallet.store.models

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_when = wallet.store.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "oidc_logins",
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("expires_at", _when, nullable=False),
        sa.PrimaryKeyConstraint("key_hash"),
    )
    with op.batch_alter_table("oidc_logins", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_oidc_logins_expires_at"), ["expires_at"], unique=False)
    # Plain ALTER TABLE ADD COLUMN and a unique index: SQLite keeps the table (a batch
    # copy would have to drop staff_users, which console sessions point at).
    op.add_column("staff_users", sa.Column("oidc_issuer", sa.String(length=255), nullable=True))
    op.add_column("staff_users", sa.Column("oidc_subject", sa.String(length=255), nullable=True))
    op.add_column("staff_users", sa.Column("totp_secret", sa.Text(), nullable=True))
    op.add_column("staff_users", sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
    op.create_index(
        "uq_staff_users_oidc_identity", "staff_users", ["oidc_issuer", "oidc_subject"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_staff_users_oidc_identity", table_name="staff_users")
    for column in ("totp_last_step", "totp_secret", "oidc_subject", "oidc_issuer"):
        op.drop_column("staff_users", column)
    with op.batch_alter_table("oidc_logins", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oidc_logins_expires_at"))
    op.drop_table("oidc_logins")
