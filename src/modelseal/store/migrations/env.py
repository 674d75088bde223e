"""Alembic environment: runs on the connection :func:`modelseal.store.db.migrate` passes."""

from __future__ import annotations

from alembic import context

from modelseal.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only through modelseal.store.db.migrate
    raise RuntimeError("run migrations through modelseal.store.db.migrate")
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
