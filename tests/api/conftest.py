from tests.registry.fixtures import db_url, registry, signed_model  # noqa: F401
