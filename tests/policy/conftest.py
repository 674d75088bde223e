from tests.registry.fixtures import (  # noqa: F401
    db_url,
    registry,
    signed_model,
)
