"""Build and run the inference server: the repository, its access checks, the background
work (alias polling for hot swap, scheduled re-verification) and uvicorn."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import anyio.to_thread

from modelseal.serving.access import ServeAccess
from modelseal.serving.app import Limits, create_app
from modelseal.serving.repository import Repository
from modelseal.serving.source import ModelSource

log = logging.getLogger("modelseal.serve")


@dataclasses.dataclass(frozen=True)
class ServeSettings:
    """How the server runs: checks, schedules and limits."""

    auth: bool = True
    rate: float = 0.0
    burst: int = 20
    poll_interval: float = 5.0
    reverify_interval: float = 300.0
    limits: Limits = dataclasses.field(default_factory=Limits)


def build(
    sources: Sequence[ModelSource],
    settings: ServeSettings,
    *,
    shadows: Sequence[ModelSource] = (),
    registry: Any | None = None,
    backend: Any | None = None,
    version: str = "",
) -> Any:
    """The app: every model loaded (a failure stays on its ready route), polling started."""
    access = ServeAccess(registry, required=settings.auth, rate=settings.rate,
                         burst=settings.burst)  # fmt: skip
    repository = Repository(
        sources,
        shadows=shadows,
        backend=(lambda: backend) if backend is not None else None,
        record=access.record,
    )
    repository.load_all()
    for name, why in repository.problems().items():
        log.warning("model %s is not served: %s", name, why)

    @contextlib.asynccontextmanager
    async def background() -> AsyncIterator[None]:
        async with anyio.create_task_group() as tasks:
            if backend is not None and settings.poll_interval > 0:
                tasks.start_soon(_every, settings.poll_interval, repository.refresh)
            if settings.reverify_interval > 0:
                tasks.start_soon(_every, settings.reverify_interval, repository.reverify)
            yield
            tasks.cancel_scope.cancel()

    return create_app(
        repository, access=access, limits=settings.limits, version=version,
        background=background,
    )  # fmt: skip


async def _every(seconds: float, work: Any) -> None:
    while True:
        await anyio.sleep(seconds)
        try:
            await anyio.to_thread.run_sync(work)
        except Exception:  # a failed round is retried next time; the server keeps serving
            log.exception("background check failed")


def run(
    app: Any,
    *,
    host: str,
    port: int,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    client_ca: str | None = None,
    forwarded_allow_ips: str | None = None,
) -> None:
    """Serve ``app`` until interrupted (HTTPS with a certificate; client certificates required
    when ``client_ca`` is given)."""
    import ssl

    import uvicorn

    uvicorn.run(
        app,
        host=host,
        port=port,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
        ssl_ca_certs=client_ca,
        ssl_cert_reqs=ssl.CERT_REQUIRED if client_ca else ssl.CERT_NONE,
        log_level="info",
        access_log=False,  # request lines would carry model names only, but keep logs lean
        server_header=False,
        proxy_headers=bool(forwarded_allow_ips),
        forwarded_allow_ips=forwarded_allow_ips or "",
    )
