from tests.registry.fixtures import (  # noqa: F401
    db_url,
    pg_url,
    registry,
    signed_model,
    sqlite_url,
)
