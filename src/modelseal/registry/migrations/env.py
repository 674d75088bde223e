"""Alembic environment: runs on the connection :func:`modelseal.registry.db.migrate` passes."""

from __future__ import annotations

from alembic import context

from modelseal.registry.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only through modelseal.registry.db.migrate
    raise RuntimeError("run migrations through modelseal.registry.db.migrate")
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
