"""Encrypted versions: ciphertext blobs beside plaintext digests, and wrapped data keys.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add wrapped data keys and stored ciphertext columns."""
    op.add_column(
        "uploads",
        sa.Column("encrypted", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    for table in ("upload_files", "version_files"):
        op.add_column(table, sa.Column("stored", sa.String(64), nullable=True))
        op.add_column(table, sa.Column("stored_size", sa.BigInteger, nullable=True))
        op.create_index(f"ix_{table}_stored", table, ["stored"])
    op.create_table(
        "version_keys",
        sa.Column(
            "version_id",
            sa.Integer,
            sa.ForeignKey("versions.id"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("kek_id", sa.String(512), nullable=False),
        sa.Column("wrapped", sa.Text, nullable=False),
        sa.Column("ad_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("rotated_at", sa.String(32), nullable=True),
    )
    op.create_index("ix_version_keys_kek_id", "version_keys", ["kek_id"])


def downgrade() -> None:
    """Remove them."""
    op.drop_index("ix_version_keys_kek_id", "version_keys")
    op.drop_table("version_keys")
    for table in ("upload_files", "version_files"):
        op.drop_index(f"ix_{table}_stored", table)
        op.drop_column(table, "stored_size")
        op.drop_column(table, "stored")
    op.drop_column("uploads", "encrypted")
