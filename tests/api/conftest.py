from tests.registry.fixtures import db_url  # noqa: F401
