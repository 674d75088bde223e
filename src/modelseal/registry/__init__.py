"""The model registry: versioned, content-addressed, signed model versions with aliases, kept in
SQL (SQLite or PostgreSQL through SQLAlchemy) and blob storage (a folder or S3 through fsspec)."""
