"""Alembic migrations build exactly the schema the code uses, on SQLite and PostgreSQL, and
migrating is idempotent and safe to race."""

from __future__ import annotations

import threading

from sqlalchemy import inspect

from modelseal.errors import DatabaseError
from modelseal.store import db
from modelseal.store.schema import metadata


def test_migrated_schema_matches_the_model(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = db.create_engine(db_url)
    try:
        assert db.current_revision(engine) is None
        errors: list[BaseException] = []

        def run() -> None:
            try:
                db.migrate(engine)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert db.current_revision(engine) == db.HEAD_REVISION
        db.migrate(engine)  # again: a no-op
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
            tables = set(inspect(conn).get_table_names())
        assert diff == [], diff
        assert {t.name for t in metadata.sorted_tables} <= tables
    finally:
        engine.dispose()


def test_bad_database_urls() -> None:
    import pytest

    with pytest.raises(DatabaseError, match="unsupported database"):
        db.create_engine("mysql://x@y/z")
    engine = db.create_engine("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(DatabaseError, match="cannot open the registry database"):
        db.migrate(engine)
    engine.dispose()
