"""Initial schema: models, versions, files, aliases, uploads, principals, grants, tokens, and the
audit log (records, Merkle nodes, head). Written out in full (not imported from schema.py) so
later changes to the model go into later revisions.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TIME = sa.String(32)
NAME = sa.String(200)
DIGEST = sa.String(64)


def upgrade() -> None:
    """Create the tables."""
    op.create_table(
        "models",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", NAME, nullable=False, unique=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by", NAME, nullable=False),
        sa.Column("last_version", sa.Integer, nullable=False),
    )
    op.create_table(
        "versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("root_digest", DIGEST, nullable=False),
        sa.Column("manifest", sa.Text, nullable=False),
        sa.Column("bundle", sa.Text, nullable=False),
        sa.Column("signer", sa.Text, nullable=False),
        sa.Column("public_key", sa.Text, nullable=True),
        sa.Column("meta", sa.Text, nullable=False),
        sa.Column("lineage", sa.Text, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by", NAME, nullable=False),
        sa.Column("deleted_at", TIME, nullable=True),
        sa.Column("deleted_by", NAME, nullable=True),
        sa.Column("delete_reason", sa.Text, nullable=True),
        sa.UniqueConstraint("model_id", "number", name="uq_versions_model_number"),
    )
    op.create_table(
        "version_files",
        sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("blob", DIGEST, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("version_id", "path"),
    )
    op.create_index("ix_version_files_blob", "version_files", ["blob"])
    op.create_table(
        "aliases",
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("updated_by", NAME, nullable=False),
        sa.PrimaryKeyConstraint("model_id", "name"),
    )
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("model_name", NAME, nullable=False),
        sa.Column("actor", NAME, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("bundle", sa.Text, nullable=False),
        sa.Column("public_key", sa.Text, nullable=True),
        sa.Column("signer", sa.Text, nullable=False),
        sa.Column("meta", sa.Text, nullable=False),
        sa.Column("lineage", sa.Text, nullable=False),
    )
    op.create_table(
        "upload_files",
        sa.Column("upload_id", sa.String(64), sa.ForeignKey("uploads.id"), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("blob", DIGEST, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("upload_id", "path"),
    )
    op.create_index("ix_upload_files_blob", "upload_files", ["blob"])
    op.create_table(
        "principals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", NAME, nullable=False, unique=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by", NAME, nullable=False),
        sa.Column("disabled_at", TIME, nullable=True),
    )
    op.create_table(
        "grants",
        sa.Column("principal_id", sa.Integer, sa.ForeignKey("principals.id"), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("scope", NAME, nullable=False),
        sa.Column("granted_at", TIME, nullable=False),
        sa.Column("granted_by", NAME, nullable=False),
        sa.PrimaryKeyConstraint("principal_id", "role", "scope"),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("principal_id", sa.Integer, sa.ForeignKey("principals.id"), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=True),
        sa.Column("revoked_at", TIME, nullable=True),
    )
    op.create_table(
        "audit_records",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("time", TIME, nullable=False),
        sa.Column("actor", NAME, nullable=False),
        sa.Column("roles", sa.Text, nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("resource", sa.Text, nullable=False),
        sa.Column("digest", sa.Text, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
    )
    op.create_table(
        "audit_nodes",
        sa.Column("level", sa.SmallInteger, nullable=False),
        sa.Column("idx", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx"),
    )
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("peaks", sa.LargeBinary, nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "size": 0, "peaks": b""}])


def downgrade() -> None:
    """Drop the tables."""
    for table in (
        "audit_head", "audit_nodes", "audit_records", "tokens", "grants", "principals",
        "upload_files", "uploads", "aliases", "version_files", "versions", "models",
    ):  # fmt: skip
        op.drop_table(table)
