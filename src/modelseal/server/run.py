"""Run the registry server with uvicorn (HTTPS when given a certificate and key)."""

from __future__ import annotations

from typing import Any

from modelseal.registry.config import RegistryConfig


def build(config: RegistryConfig) -> Any:
    """The HTTP app over the registry ``config`` describes."""
    from modelseal.registry.core import Registry
    from modelseal.server.app import create_app

    return create_app(
        Registry.open(config),
        auth_failure_limit=config.auth_failure_limit,
        threads=config.server_threads,
    )


def serve(
    config: RegistryConfig,
    *,
    host: str,
    port: int,
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> None:
    """Serve the registry until interrupted (HTTPS with a certificate and key)."""
    import uvicorn

    app = build(config)
    uvicorn.run(
        app,
        host=host,
        port=port,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
        log_level="info",
        access_log=True,
        server_header=False,
        **proxy_options(config),
    )


def proxy_options(config: RegistryConfig) -> dict[str, Any]:
    """uvicorn's forwarded-header settings: believed only from the configured proxies (uvicorn
    alone would believe any peer on 127.0.0.1, letting a local client forge its address)."""
    allowed = config.forwarded_allow_ips
    return {"proxy_headers": bool(allowed), "forwarded_allow_ips": allowed or ""}
