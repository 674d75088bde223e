"""The registry HTTP API. Every request is authenticated with a bearer token; every decision is
made and audited by the operation it runs (see :mod:`modelseal.registry.catalogue`); every error
is a 4xx JSON body ``{"error": {"type", "code", "message", "hint", "reasons"}}`` (a 500 would be
a bug). Swagger UI (``/docs``) and ReDoc (``/redoc``) are served from the package: no network."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from modelseal.errors import ModelsealError
from modelseal.registry.catalogue import operations
from modelseal.registry.config import DEFAULT_AUTH_FAILURE_LIMIT, DEFAULT_SERVER_THREADS
from modelseal.registry.core import Registry
from modelseal.server import docs
from modelseal.server.errors import error_response, plain_error
from modelseal.server.guard import RequestGuard
from modelseal.server.ratelimit import FailureLimiter
from modelseal.server.routes import routers

TITLE = "modelseal registry"
API_VERSION = "1"


def create_app(
    registry: Registry,
    *,
    auth_failure_limit: int = DEFAULT_AUTH_FAILURE_LIMIT,
    threads: int = DEFAULT_SERVER_THREADS,
) -> FastAPI:
    """The HTTP API over ``registry``; ``auth_failure_limit`` failed authentications per source
    address per minute before it is refused for a while (0: no limit); ``threads`` requests
    handled at once in worker threads."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Synchronous endpoints run in AnyIO's worker threads; the limit is per event loop.
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        yield

    app = _application(lifespan)
    app.state.registry = registry
    app.state.auth_limiter = FailureLimiter(auth_failure_limit, 60.0)
    return app


def openapi_document() -> dict[str, Any]:
    """The API's OpenAPI document (published as ``docs/openapi.json``)."""
    return _application(None).openapi()


def _application(lifespan: Any) -> FastAPI:
    app = FastAPI(
        title=TITLE,
        version=API_VERSION,
        description="Versioned, signed models with a tamper-evident audit trail.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )

    @app.exception_handler(ModelsealError)
    async def _modelseal_error(_request: Request, exc: ModelsealError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind, code = ("NotFoundError", "not-found") if exc.status_code == 404 else (
            "HTTPError", "http")  # fmt: skip
        message = str(exc.detail).lower().rstrip(".")
        body = plain_error(kind, code, message, "see /docs for the API")
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = f"invalid request: {where}: {first.get('msg')}"
        body = plain_error("InputError", "input", message, "see /docs for the request format")
        return JSONResponse(body, status_code=400)

    @app.get("/v1/health", tags=["meta"], summary="Whether the server is up")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    for router in routers(operations()):
        app.include_router(router)
    docs.install(app)
    app.add_middleware(RequestGuard, api=app)
    return app
