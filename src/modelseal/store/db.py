"""Database engines and migrations.

SQLite runs in WAL mode and starts every transaction with ``BEGIN IMMEDIATE``, so writers queue
on the database lock instead of failing half-way; PostgreSQL serializes the writes that must be
ordered (version numbers, audit appends) with row locks. ``postgresql://`` URLs use psycopg 3.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.engine import make_url

from modelseal.errors import DatabaseError

HEAD_REVISION = "0005"
WRITE_OPTION = "modelseal_write"
_MIGRATIONS = Path(__file__).parent / "migrations"


def normalize_url(url: str) -> str:
    """Accept ``postgresql://``/``postgres://`` for psycopg 3 and plain paths for SQLite."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    return url


def create_engine(url: str, *, pool_size: int = 5) -> Engine:
    """An engine for ``url`` with the connection settings the registry relies on."""
    import sqlalchemy

    url = normalize_url(url)
    try:
        parsed = make_url(url)
    except Exception:
        raise DatabaseError(
            f"invalid database URL {url!r}",
            hint="use sqlite:///PATH or postgresql://USER@HOST/DB",
        ) from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            folder = Path(parsed.database).parent
            try:  # the registry's own folder may be made; a path that leads nowhere is an error
                folder.mkdir(exist_ok=True)
            except OSError as exc:
                raise DatabaseError(
                    f"cannot use database {str(parsed.database)!r}: folder {str(folder)!r} "
                    f"cannot be made ({exc.strerror})",
                    hint="check the database URL; its folder's parent must exist",
                ) from None
        engine = sqlalchemy.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 60}
        )
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return sqlalchemy.create_engine(
            url, pool_size=pool_size, max_overflow=10, pool_pre_ping=True
        )
    raise DatabaseError(
        f"unsupported database {parsed.get_backend_name()!r}",
        hint="use SQLite or PostgreSQL",
    )


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        write = connection.get_execution_options().get(WRITE_OPTION, False)
        # On the driver's cursor: SQLAlchemy's statement path costs more than the BEGIN itself,
        # and every transaction pays it.
        cursor = connection.connection.dbapi_connection.cursor()
        try:
            cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        finally:
            cursor.close()


@contextlib.contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """One write transaction: committed if the block succeeds, rolled back if it raises.
    On SQLite it holds the write lock from its first statement."""
    with engine.connect().execution_options(**{WRITE_OPTION: True}) as conn, conn.begin():
        yield conn


@contextlib.contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """One read-only transaction (a consistent snapshot)."""
    with engine.connect() as conn, conn.begin():
        yield conn


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at (``None`` before the first migration)."""
    from sqlalchemy import inspect

    with engine.connect() as conn:
        if "alembic_version" not in inspect(conn).get_table_names():
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: Engine) -> None:
    """Bring the schema to the head revision (no-op when already there; safe to race)."""
    try:
        if current_revision(engine) == HEAD_REVISION:
            return
    except Exception as exc:
        raise DatabaseError(
            f"cannot open the registry database: {_describe(exc)}",
            hint="check the database URL and that the server is running",
        ) from None
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with writing(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7294812345)"))
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    revision = current_revision(engine)
    if revision != HEAD_REVISION:
        raise DatabaseError(
            f"registry database is at schema revision {revision!r}, expected {HEAD_REVISION!r}",
            hint="upgrade modelseal",
        )


def _describe(exc: BaseException) -> str:
    message = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return message[0] if message else type(exc).__name__
