"""Trusted signer keys managed through the registry (security engineers).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the trusted signer keys table."""
    op.create_table(
        "trusted_keys",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("pem", sa.Text, nullable=False),
        sa.Column("added_at", sa.String(32), nullable=False),
        sa.Column("added_by", sa.String(200), nullable=False),
    )


def downgrade() -> None:
    """Drop it."""
    op.drop_table("trusted_keys")
