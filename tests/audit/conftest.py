from tests.registry.fixtures import db_url, pg_url, registry, signed_model, sqlite_url  # noqa: F401
