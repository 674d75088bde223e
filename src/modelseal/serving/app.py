"""The inference server's HTTP API: the Open Inference Protocol v2 REST API (KServe v2, Triton,
MLServer) over the models of a :class:`~modelseal.serving.repository.Repository`.

Every inference request is authenticated and authorized for its model before its body is
read, the body is capped, parsed and checked against the model's input signature before the
model is called, and every problem is a 4xx with the protocol's error body ``{"error": ...}``
(plus ``code`` and, when one tensor is at fault, ``tensor``). Payloads are never logged.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from modelseal.errors import ModelsealError, RateLimitedError
from modelseal.serving import protocol
from modelseal.serving.access import ServeAccess
from modelseal.serving.infer import PATH, InferHandler
from modelseal.serving.metrics import CONTENT_TYPE
from modelseal.serving.repository import Repository

SERVER_NAME = "modelseal"
EXTENSIONS = ["binary_tensor_data", "model_repository"]
HEADER_LENGTH = "inference-header-content-length"


class Limits(BaseModel):
    """What one request may cost."""

    max_body: int = Field(64 << 20, description="Largest request body, in bytes.")
    max_elements: int = Field(16 << 20, description="Most elements in one input tensor.")
    max_batch: int = Field(65_536, description="Most rows (first dimension) in one input.")
    timeout: float = Field(30.0, description="Seconds one inference may take.")


def create_app(
    repository: Repository,
    *,
    access: ServeAccess | None = None,
    limits: Limits | None = None,
    version: str = "",
    background: Callable[[], contextlib.AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    """The HTTP API over ``repository`` (``access``: tokens and audit; ``background``: an async
    context run for the app's lifetime, e.g. the alias poller)."""
    limits = limits or Limits()
    access = access or ServeAccess(None, required=False)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if background is None:
            yield
            return
        async with background():
            yield

    app = ServingApp(
        title="modelseal inference server",
        version=version or "1",
        description="The Open Inference Protocol v2 over verified, scanned, gated models.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.repository, app.state.access, app.state.limits = repository, access, limits

    @app.exception_handler(ModelsealError)
    async def _error(_request: Request, exc: ModelsealError) -> Response:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = {"error": str(exc.detail).lower().rstrip("."), "code": "http"}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    _health_routes(app, repository, version)
    _model_routes(app, repository, access)
    _infer_routes(app, repository, access, limits)
    _repository_routes(app, repository, access)
    _shadow_routes(app, repository, access)

    @app.get("/metrics", tags=["metrics"], summary="Prometheus metrics", response_class=Response)
    def metrics() -> Response:
        return Response(repository.metrics.exposition(), media_type=CONTENT_TYPE)

    return app


class ServingApp(FastAPI):
    """The FastAPI app, with the inference routes answered first.

    ``POST .../infer`` goes straight to :class:`~modelseal.serving.infer.InferHandler`, which
    authenticates, reads, checks and answers on the ASGI connection itself; the middleware
    stack (FastAPI's telemetry, body-limit and exception layers, routing and dependency
    solving) would only add time to the hottest path. The documented routes stay in the app
    for the OpenAPI document and answer everything else.
    """

    infer: InferHandler | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Serve one ASGI connection or lifespan."""
        infer = self.infer
        if infer is not None and scope["type"] == "http" and scope["method"] == "POST":
            match = PATH.fullmatch(scope["path"])
            if match is not None:
                await infer(scope, receive, send, match["name"], match["version"])
                return
        await super().__call__(scope, receive, send)


def error_parts(exc: ModelsealError) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """The protocol's error body for ``exc``: ``(status, body, extra headers)``."""
    more = {"tensor": tensor} if (tensor := getattr(exc, "tensor", None)) else {}
    if exc.hint:
        more["hint"] = exc.hint
    headers: list[tuple[bytes, bytes]] = []
    if exc.http_status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    if isinstance(exc, RateLimitedError):
        headers.append((b"retry-after", str(max(1, int(exc.retry_after + 0.999))).encode()))
    return exc.http_status, protocol.encode_error(exc.message, exc.code, **more), headers


def error_response(exc: ModelsealError) -> Response:
    """The protocol's error body for ``exc``, with its status."""
    status, body, headers = error_parts(exc)
    return Response(body, status_code=status, media_type="application/json",
                    headers={k.decode(): v.decode() for k, v in headers})  # fmt: skip


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": protocol.ErrorBody, "description": text}
    for code, text in (
        (400, "Bad request: the body, a tensor or the model's state is wrong."),
        (401, "Missing or invalid bearer token."),
        (403, "The token may not run this model."),
        (404, "No such model or version."),
        (413, "The body or a tensor is over the server's limit."),
        (429, "Rate limit reached."),
        (500, "The model failed while answering (not because of its input)."),
        (503, "The model took longer than the server's time limit."),
    )
}


def _health_routes(app: FastAPI, repository: Repository, version: str) -> None:
    @app.get("/v2", tags=["health"], response_model=protocol.ServerMetadata,
             summary="Server metadata")  # fmt: skip
    def server_metadata() -> protocol.ServerMetadata:
        return protocol.ServerMetadata(name=SERVER_NAME, version=version, extensions=EXTENSIONS)

    @app.get("/v2/health/live", tags=["health"], response_model=protocol.Live,
             summary="Whether the server is live")  # fmt: skip
    def live() -> protocol.Live:
        return protocol.Live(live=True)

    @app.get("/v2/health/ready", tags=["health"], response_model=protocol.Ready,
             responses={400: {"model": protocol.Ready, "description": "Not ready, and why."}},
             summary="Whether every model is served")  # fmt: skip
    def ready() -> JSONResponse:
        ok = repository.ready()
        body = protocol.Ready(ready=ok, models=repository.problems())
        return JSONResponse(body.model_dump(), status_code=200 if ok else 400)


def _caller(request: Request, access: ServeAccess, name: str) -> None:
    """A model's routes answer only callers that may run it (when tokens are on)."""
    access.authorize(request.headers, request.client.host if request.client else "", name)


def _model_routes(app: FastAPI, repository: Repository, access: ServeAccess) -> None:
    def metadata(request: Request, name: str, version: str | None = None) -> protocol.ModelMetadata:
        _caller(request, access, name)
        loaded = repository.get(name, version)
        signature = loaded.signature
        outputs = (
            [t.metadata() for t in signature.outputs]
            or loaded.outputs
            or [
                {"name": n, "datatype": "FP64", "shape": [-1]}
                for n in loaded.runtime.output_names()
            ]
        )  # declared, else as the warm-up call returned them, else a guess
        return protocol.ModelMetadata(
            name=name,
            versions=[loaded.version],
            platform=loaded.runtime.platform,
            inputs=[protocol.TensorMetadata(**t.metadata()) for t in signature.inputs],
            outputs=[protocol.TensorMetadata(**o) for o in outputs],
            parameters={
                "digest": f"sha256:{loaded.digest}",
                "signer": loaded.signer,
                "input_signature": signature.to_dict(),
            },
        )

    def ready(request: Request, name: str, version: str | None = None) -> Response:
        _caller(request, access, name)
        entry = repository.entries.get(name)
        if entry is None:
            return error_response(repository_error(name))
        ok = entry.current is not None and (version is None or entry.current.version == version)
        body = protocol.ModelReady(name=name, ready=ok, reason=entry.reason or None)
        return JSONResponse(body.model_dump(exclude_none=True), status_code=200 if ok else 400)

    guarded = {k: _ERRORS[k] for k in (400, 401, 403, 404, 429)}
    kw: dict[str, Any] = {"tags": ["models"], "responses": guarded}
    app.get("/v2/models/{name}", response_model=protocol.ModelMetadata,
            summary="Model metadata", **kw)(metadata)  # fmt: skip
    app.get("/v2/models/{name}/versions/{version}", response_model=protocol.ModelMetadata,
            summary="Model version metadata", **kw)(metadata)  # fmt: skip
    not_ready = {"model": protocol.ModelReady, "description": "Not ready."}
    ready_kw: dict[str, Any] = {**kw, "responses": {**guarded, 400: not_ready}}
    app.get("/v2/models/{name}/ready", response_model=protocol.ModelReady,
            summary="Whether the model is ready", **ready_kw)(ready)  # fmt: skip
    app.get("/v2/models/{name}/versions/{version}/ready", response_model=protocol.ModelReady,
            summary="Whether the model version is ready", **ready_kw)(ready)  # fmt: skip


def _shadow_routes(app: FastAPI, repository: Repository, access: ServeAccess) -> None:
    @app.get("/v2/models/{name}/shadow", tags=["models"], response_model=protocol.ShadowSummary,
             summary="How a shadow candidate's outputs compare (modelseal extension)",
             responses={k: _ERRORS[k] for k in (401, 403, 404, 429)})  # fmt: skip
    def shadow(request: Request, name: str) -> protocol.ShadowSummary:
        _caller(request, access, name)
        entry = repository.entries.get(name)
        if entry is None or entry.shadow_source is None:
            from modelseal.errors import ModelNotServedError

            raise ModelNotServedError(f"model {name!r} has no shadow", hint="serve with --shadow")
        found = entry.shadow
        if found is None:
            return protocol.ShadowSummary(loaded=False, reason=entry.shadow_reason or "loading")
        return protocol.ShadowSummary(loaded=True, **found.summary())


def repository_error(name: str) -> ModelsealError:
    """The error for a model name the server does not know."""
    from modelseal.errors import ModelNotServedError

    return ModelNotServedError(f"unknown model {name!r}", hint="see /v2/repository/index")


def _infer_routes(
    app: FastAPI, repository: Repository, access: ServeAccess, limits: Limits
) -> None:
    handler = InferHandler(repository, access, limits, error_parts)

    async def infer(request: Request) -> Response:
        # Documented here; answered by the handler (ServingApp hands it the connection first).
        return _Handled(handler, request.path_params)

    doc: dict[str, Any] = {
        "tags": ["inference"],
        "responses": {
            200: {"model": protocol.InferenceResponse, "description": "Outputs."},
            **_ERRORS,
        },
        "openapi_extra": {
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": protocol.InferenceRequest.model_json_schema()},
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                },
            }
        },
    }
    app.post("/v2/models/{name}/infer", summary="Run the model", **doc)(infer)
    app.post("/v2/models/{name}/versions/{version}/infer", summary="Run the model version",
             **doc)(infer)  # fmt: skip
    if isinstance(app, ServingApp):
        app.infer = handler


class _Handled(Response):
    """A route's answer that is the inference handler's own, on the same connection."""

    def __init__(self, handler: InferHandler, params: dict[str, str]) -> None:
        super().__init__()
        self.handler, self.params = handler, params

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Let the handler read the request and answer."""
        await self.handler(scope, receive, send, self.params["name"], self.params.get("version"))


def _repository_routes(app: FastAPI, repository: Repository, access: ServeAccess) -> None:
    @app.post("/v2/repository/index", tags=["repository"],
              response_model=list[protocol.IndexEntry], summary="The models and their state",
              responses={401: _ERRORS[401], 403: _ERRORS[403]})  # fmt: skip
    def index(request: Request) -> list[protocol.IndexEntry]:
        _admin(request, access, "*")
        return [protocol.IndexEntry(**item) for item in repository.index()]

    @app.post("/v2/repository/models/{name}/load", tags=["repository"],
              summary="Load the model (again): verify, scan, gate, swap in",
              response_model=protocol.ModelReady,
              responses={k: _ERRORS[k] for k in (400, 401, 403, 404)})  # fmt: skip
    async def load(request: Request, name: str) -> JSONResponse:
        _admin(request, access, name)
        entry = await anyio.to_thread.run_sync(repository.load, name)
        ok = entry.current is not None
        body = protocol.ModelReady(name=name, ready=ok, reason=entry.reason or None)
        if not ok:
            return JSONResponse({"error": entry.reason, "code": "load-failed"}, status_code=400)
        return JSONResponse(body.model_dump(exclude_none=True))

    @app.post("/v2/repository/models/{name}/unload", tags=["repository"],
              summary="Stop serving the model", response_model=protocol.ModelReady,
              responses={k: _ERRORS[k] for k in (401, 403, 404)})  # fmt: skip
    def unload(request: Request, name: str) -> protocol.ModelReady:
        _admin(request, access, name)
        repository.unload(name)
        return protocol.ModelReady(name=name, ready=False, reason="unloaded")


def _admin(request: Request, access: ServeAccess, model: str) -> None:
    """Repository changes need the production alias permission on the model (an operator)."""
    if not access.required:
        return
    from modelseal.access import roles
    from modelseal.errors import PermissionDeniedError

    source = request.client.host if request.client else ""
    who = access.authorize_admin(request.headers, source)
    decision = roles.decide(who, roles.ALIAS_PRODUCTION, None if model == "*" else model)
    if not decision.allowed and not who.superuser:
        raise PermissionDeniedError(
            f"{who.name} may not manage served models: {decision.reason}",
            hint="repository changes need the devops role",
        )
