"""Database fixtures shared by the Keep test packages: a fresh SQLite file, or a fresh schema in
the real PostgreSQL on 127.0.0.1:5432 (required under CI=true; skipped with a reason outside)."""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PG_BASE = os.environ.get("MODELSEAL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_available() -> str | None:
    import psycopg

    try:
        with psycopg.connect(PG_BASE, connect_timeout=3):
            return None
    except Exception as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def new_pg_schema() -> tuple[str, str]:
    """Create a unique schema; return (schema, URL whose search_path is that schema)."""
    import psycopg

    problem = _pg_available()
    if problem is not None:
        message = f"PostgreSQL at {PG_BASE} is not reachable: {problem}"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI requires it: run scripts/services.sh)")
        pytest.skip(message)
    schema = f"ms_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return schema, f"{PG_BASE}?options=-csearch_path%3D{schema}"


def drop_pg_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '20s'")
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty registry database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    schema, url = new_pg_schema()
    try:
        yield url
    finally:
        drop_pg_schema(schema)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'registry.db'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    schema, url = new_pg_schema()
    try:
        yield url
    finally:
        drop_pg_schema(schema)


@dataclasses.dataclass
class SignedModel:
    path: Path
    signature: Path
    public_key: Path
    private_key: Path

    def resign(self) -> None:
        import modelseal

        modelseal.sign(self.path, private_key=self.private_key, signature=self.signature)


def make_signed_model(
    root: Path, key_pair: tuple[Path, Path], *, seed: int = 0, shard_size: int | None = None
) -> SignedModel:
    import modelseal
    from tests.conftest import build_model

    model = build_model(root / "model", seed=seed)
    sig = root / "model.sig"
    modelseal.sign(model, private_key=key_pair[0], signature=sig, shard_size=shard_size)
    return SignedModel(model, sig, key_pair[1], key_pair[0])


@pytest.fixture
def signed_model(tmp_path: Path, key_pair: tuple[Path, Path]) -> SignedModel:
    return make_signed_model(tmp_path, key_pair)


@dataclasses.dataclass
class Env:
    """An open registry with its configuration, and the local administrator."""

    config: Any
    registry: Any
    admin: Any

    def engine(self) -> Any:
        return self.registry.engine


def open_env(home: Path, db_url: str, blob_url: str | None = None) -> Env:
    from modelseal.access.roles import Principal
    from modelseal.registry.config import RegistryConfig
    from modelseal.registry.core import Registry

    config = RegistryConfig.resolve(
        home=home, db_url=db_url, blob_url=blob_url or str(home / "blobs")
    )
    return Env(
        config, Registry.open(config), Principal("local:test", superuser=True, source="local")
    )


@pytest.fixture
def registry(db_url: str, tmp_path: Path) -> Iterator[Env]:
    env = open_env(tmp_path / "home", db_url)
    try:
        yield env
    finally:
        env.registry.close()
