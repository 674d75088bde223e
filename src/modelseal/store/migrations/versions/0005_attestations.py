"""Gate keys and the attestations stored with versions.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add what a trusted key is for (signer or gate), and the attestations table."""
    op.add_column(
        "trusted_keys",
        sa.Column("purpose", sa.String(16), nullable=False, server_default="signer"),
    )
    op.create_table(
        "attestations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("bundle", sa.Text, nullable=False),
        sa.Column("bundle_sha256", sa.String(64), nullable=False),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("policy_digest", sa.String(64), nullable=False),
        sa.Column("keyid", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
    )
    op.create_index("ix_attestations_version_id", "attestations", ["version_id"])


def downgrade() -> None:
    """Remove them."""
    op.drop_index("ix_attestations_version_id", "attestations")
    op.drop_table("attestations")
    op.drop_column("trusted_keys", "purpose")
