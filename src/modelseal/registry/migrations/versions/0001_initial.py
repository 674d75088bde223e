"""Initial schema: models, versions, files, aliases, uploads, principals, grants, tokens, and the
audit log (records, Merkle nodes, head).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import inspect

from modelseal.registry import schema

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ORDER = [
    schema.models,
    schema.versions,
    schema.version_files,
    schema.aliases,
    schema.uploads,
    schema.upload_files,
    schema.principals,
    schema.grants,
    schema.tokens,
    schema.audit_records,
    schema.audit_nodes,
    schema.audit_head,
]


def upgrade() -> None:
    bind = op.get_bind()
    existing = set(inspect(bind).get_table_names())
    for table in ORDER:
        if table.name not in existing:
            table.create(bind)
    op.bulk_insert(schema.audit_head, [{"id": 1, "size": 0, "peaks": b""}])


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(ORDER):
        table.drop(bind, checkfirst=True)
