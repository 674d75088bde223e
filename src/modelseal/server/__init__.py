"""The registry's HTTP API (FastAPI) and the client the CLI uses with ``--server``."""
