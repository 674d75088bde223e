"""Scan reports of pushed versions, and quarantine.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add each version's scan status and report, and when it was quarantined."""
    op.add_column("versions", sa.Column("scan_status", sa.String(16), nullable=True))
    op.add_column("versions", sa.Column("scan_report", sa.Text, nullable=True))
    op.add_column("versions", sa.Column("quarantined_at", sa.String(32), nullable=True))


def downgrade() -> None:
    """Remove them."""
    for column in ("quarantined_at", "scan_report", "scan_status"):
        op.drop_column("versions", column)
