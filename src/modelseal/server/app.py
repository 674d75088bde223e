"""The registry HTTP API. Every request is authenticated with a bearer token; every decision
is made and audited by :class:`modelseal.registry.service.Registry`; every error is a 4xx JSON
body ``{"error": {"type", "message", "hint", "reasons"}}`` (a 500 would be a bug)."""

from __future__ import annotations

import contextlib
import math
import queue
import re
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from modelseal.access.roles import Principal
from modelseal.errors import InputError, ModelsealError
from modelseal.registry.config import DEFAULT_AUTH_FAILURE_LIMIT, DEFAULT_SERVER_THREADS
from modelseal.registry.errors import AuthenticationError, http_status
from modelseal.registry.models import KeyChange, Lineage, SealedVersion, VersionRef
from modelseal.registry.service import Registry
from modelseal.server.ratelimit import FailureLimiter, RateLimitedError

_REQUEST_ID = re.compile(r"\A[A-Za-z0-9._-]{1,64}\Z")
HANDOFF = 1 << 20  # bytes handed to the hashing thread at a time


class UploadRequest(BaseModel):
    bundle: str = Field(description="The OMS signature bundle (JSON text).")
    public_key: str | None = Field(None, description="Signer's PEM public key (key bundles).")
    metadata: dict[str, Any] = Field(default_factory=dict)
    lineage: dict[str, Any] = Field(default_factory=dict)
    encrypted: bool = Field(
        False, description="The client sends ciphertext and publishes with a wrapped data key."
    )


class PublishRequest(BaseModel):
    encryption: dict[str, Any] | None = Field(
        None,
        description="Encrypted uploads: {version, envelope (envelope/v1), plaintext_sha256}.",
    )


class KeyRotationRequest(BaseModel):
    changes: list[dict[str, Any]] = Field(description="{model, version, old, new} envelopes.")
    new_kek_id: str = Field(max_length=512)
    retiring: list[str] = Field(default_factory=list)


class AliasRequest(BaseModel):
    version: int = Field(ge=1)


class DeleteRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=1000)


class GcRequest(BaseModel):
    grace_seconds: float = 3600.0


class UserRequest(BaseModel):
    name: str


class GrantRequest(BaseModel):
    role: str
    scope: str = "*"


class TrustedKeyRequest(BaseModel):
    pem: str = Field(max_length=20000)
    name: str = Field(min_length=1, max_length=200)


class TokenRequest(BaseModel):
    expires_in_seconds: int | None = Field(None, ge=1)
    description: str = Field("", max_length=200)


def error_body(exc: ModelsealError) -> dict[str, Any]:
    reasons = [r.to_dict() for r in getattr(exc, "reasons", ())]
    return {
        "error": {
            "type": type(exc).__name__,
            "message": exc.message,
            "hint": exc.hint,
            "reasons": reasons,
        }
    }


def principal(request: Request) -> Principal:
    """Authenticate the bearer token (every failure is an audited denial)."""
    registry: Registry = request.app.state.registry
    header = request.headers.get("x-request-id", "")
    request_id = header if _REQUEST_ID.match(header) else uuid.uuid4().hex
    source = request.client.host if request.client else ""
    anonymous = Principal("anonymous", request_id=request_id, source=source)
    limiter: FailureLimiter = request.app.state.auth_limiter
    try:
        limiter.check(source)
    except RateLimitedError as exc:
        registry.record_denial(anonymous, "authenticate", request.url.path, exc.message)
        raise
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    try:
        if scheme.lower() != "bearer" or not value.strip():
            registry.record_denial(anonymous, "authenticate", request.url.path, "missing token")
            raise AuthenticationError(
                "authentication required", hint="send 'Authorization: Bearer <token>'"
            )
        return registry.authenticate(value.strip(), request_id=request_id, source=source)
    except AuthenticationError:
        limiter.failed(source)
        raise


Actor = Annotated[Principal, Depends(principal)]


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

    app = FastAPI(
        title="modelseal registry",
        version="1",
        description="Versioned, signed models with a tamper-evident audit trail.",
        lifespan=lifespan,
    )
    app.state.registry = registry
    app.state.auth_limiter = FailureLimiter(auth_failure_limit, 60.0)

    @app.exception_handler(ModelsealError)
    async def _modelseal_error(_request: Request, exc: ModelsealError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthenticationError) else None
        if isinstance(exc, RateLimitedError):
            headers = {"Retry-After": str(math.ceil(exc.retry_after))}
        return JSONResponse(error_body(exc), status_code=http_status(exc), headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "NotFoundError" if exc.status_code == 404 else "HTTPError"
        body = {
            "error": {
                "type": kind,
                "message": str(exc.detail).lower().rstrip("."),
                "hint": "see /docs for the API",
                "reasons": [],
            }
        }
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        body = {
            "error": {
                "type": "InputError",
                "message": f"invalid request: {where}: {first.get('msg')}",
                "hint": "see /docs for the request format",
                "reasons": [],
            }
        }
        return JSONResponse(body, status_code=400)

    @app.get("/v1/health", tags=["meta"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    # ------------------------------------------------------------------------- models
    @app.get("/v1/models", tags=["models"])
    def list_models(actor: Actor) -> list[dict[str, Any]]:
        return [m.to_dict() for m in registry.list_models(actor)]

    @app.get("/v1/models/{name}/versions", tags=["models"])
    def list_versions(actor: Actor, name: str) -> list[dict[str, Any]]:
        return [v.to_dict() for v in registry.list_versions(actor, name)]

    def ref_of(name: str, version: int | None, alias: str | None) -> VersionRef:
        text = f"{name}@{alias}" if alias else f"{name}:{version}" if version else name
        return VersionRef.parse(text)

    @app.get("/v1/models/{name}/resolve", tags=["models"])
    def resolve(
        actor: Actor,
        name: str,
        version: Annotated[int | None, Query(ge=1)] = None,
        alias: str | None = None,
    ) -> dict[str, Any]:
        """One version (by number, alias, or the latest), with its signature bundle."""
        return registry.get_version(actor, ref_of(name, version, alias)).to_dict(with_bundle=True)

    @app.get("/v1/models/{name}/download", tags=["models"])
    def download(
        actor: Actor,
        name: str,
        version: Annotated[int | None, Query(ge=1)] = None,
        alias: str | None = None,
    ) -> dict[str, Any]:
        """Like resolve, but checks the download permission and that the version is live; an
        encrypted version comes with its wrapped data key (the client unwraps it)."""
        info = registry.download(actor, ref_of(name, version, alias))
        return info.to_dict(with_bundle=True, with_key=True)

    @app.get("/v1/models/{name}/versions/{number}/files/{path:path}", tags=["models"])
    def file(actor: Actor, name: str, number: int, path: str) -> StreamingResponse:
        info = registry.download(actor, VersionRef(name, number=number))
        chunks = registry.read_file(info, path)
        size = next((f.transfer_size for f in info.files if f.path == path), 0)
        return StreamingResponse(
            chunks,
            media_type="application/octet-stream",
            headers={"Content-Length": str(size)},
        )

    @app.put("/v1/models/{name}/aliases/{alias}", tags=["models"])
    def set_alias(actor: Actor, name: str, alias: str, body: AliasRequest) -> dict[str, Any]:
        return registry.set_alias(actor, name, alias, body.version).to_dict()

    @app.post("/v1/models/{name}/versions/{number}/delete", tags=["models"])
    def delete_version(actor: Actor, name: str, number: int, body: DeleteRequest) -> dict[str, Any]:
        return registry.delete_version(actor, name, number, reason=body.reason).to_dict()

    # ------------------------------------------------------------------------ uploads
    @app.post("/v1/models/{name}/uploads", tags=["uploads"])
    def begin_upload(actor: Actor, name: str, body: UploadRequest) -> dict[str, Any]:
        info = registry.begin_upload(
            actor,
            name,
            bundle=body.bundle.encode("utf-8"),
            public_key=body.public_key.encode("utf-8") if body.public_key else None,
            metadata=body.metadata,
            lineage=Lineage.from_dict(body.lineage),
            encrypted=body.encrypted,
        )
        return info.to_dict()

    @app.get("/v1/uploads/{upload_id}", tags=["uploads"])
    def upload_state(actor: Actor, upload_id: str) -> dict[str, Any]:
        """The version number publishing would give now (encrypted pushes wrap for it)."""
        return {"next_version": registry.next_version(actor, upload_id)}

    @app.put("/v1/uploads/{upload_id}/files/{path:path}", tags=["uploads"])
    async def upload_file(
        actor: Actor, upload_id: str, path: str, request: Request
    ) -> dict[str, Any]:
        """Stream one file (the raw request body); it is hashed as it arrives."""
        import anyio

        handoff: queue.Queue[list[bytes] | BaseException | None] = queue.Queue(maxsize=8)
        stop = threading.Event()

        def chunks() -> Iterator[bytes]:
            while True:
                item = handoff.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                # Joined here, not on the event loop: the loop goes back to the socket sooner.
                yield item[0] if len(item) == 1 else b"".join(item)

        def work() -> dict[str, Any]:
            try:
                return registry.receive_file(actor, upload_id, path, chunks()).to_dict()
            finally:
                stop.set()

        async def feed() -> None:
            pieces: list[bytes] = []
            held = 0
            try:
                async for piece in request.stream():
                    if stop.is_set():
                        return
                    pieces.append(piece)
                    held += len(piece)
                    if held >= HANDOFF:
                        await _hand_off(handoff, pieces, stop)
                        pieces = []
                        held = 0
                if pieces:
                    await _hand_off(handoff, pieces, stop)
                await _hand_off(handoff, None, stop)
            except BaseException as exc:  # client went away: fail the hashing thread
                interrupted = InputError(f"upload of {path!r} was interrupted", hint="push again")
                _put(handoff, interrupted, stop)
                if not isinstance(exc, Exception):
                    raise

        result: dict[str, Any] = {}

        async def run_work() -> None:
            result.update(await anyio.to_thread.run_sync(work))

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(run_work)
                await feed()
        except BaseExceptionGroup as group_error:
            raise _first_error(group_error) from None
        return result

    @app.post("/v1/uploads/{upload_id}/publish", tags=["uploads"])
    def publish(actor: Actor, upload_id: str, body: PublishRequest | None = None) -> dict[str, Any]:
        sealed = None
        if body is not None and body.encryption is not None:
            sealed = SealedVersion.from_dict(body.encryption)
        return registry.publish(actor, upload_id, sealed=sealed).to_dict()

    @app.delete("/v1/uploads/{upload_id}", tags=["uploads"])
    def abort(actor: Actor, upload_id: str) -> dict[str, str]:
        registry.abort_upload(actor, upload_id)
        return {"status": "aborted"}

    @app.post("/v1/gc", tags=["maintenance"])
    def gc(actor: Actor, body: GcRequest) -> dict[str, Any]:
        return registry.gc(actor, grace_seconds=body.grace_seconds).to_dict()

    # ---------------------------------------------------------------------- access
    @app.get("/v1/users", tags=["access"])
    def list_users(actor: Actor) -> list[dict[str, Any]]:
        return registry.list_users(actor)

    @app.post("/v1/users", tags=["access"])
    def create_user(actor: Actor, body: UserRequest) -> dict[str, str]:
        registry.create_user(actor, body.name)
        return {"name": body.name}

    @app.post("/v1/users/{name}/disable", tags=["access"])
    def disable_user(actor: Actor, name: str) -> dict[str, str]:
        registry.disable_user(actor, name)
        return {"name": name, "status": "disabled"}

    @app.post("/v1/users/{name}/roles", tags=["access"])
    def grant(actor: Actor, name: str, body: GrantRequest) -> dict[str, str]:
        registry.grant_role(actor, name, body.role, body.scope)
        return {"user": name, "role": body.role, "scope": body.scope}

    @app.post("/v1/users/{name}/roles/revoke", tags=["access"])
    def revoke(actor: Actor, name: str, body: GrantRequest) -> dict[str, str]:
        registry.revoke_role(actor, name, body.role, body.scope)
        return {"user": name, "role": body.role, "scope": body.scope}

    @app.post("/v1/users/{name}/tokens", tags=["access"])
    def create_token(actor: Actor, name: str, body: TokenRequest) -> dict[str, str]:
        import datetime as dt

        lifetime = (
            dt.timedelta(seconds=body.expires_in_seconds) if body.expires_in_seconds else None
        )
        new = registry.create_token(actor, name, expires_in=lifetime, description=body.description)
        return {"id": new.id, "token": new.value}

    @app.post("/v1/tokens/{token_id}/revoke", tags=["access"])
    def revoke_token(actor: Actor, token_id: str) -> dict[str, str]:
        registry.revoke_token(actor, token_id)
        return {"id": token_id, "status": "revoked"}

    # ----------------------------------------------------------------------- trust
    @app.get("/v1/trust/keys", tags=["trust"])
    def trusted_keys(actor: Actor) -> list[dict[str, str]]:
        return registry.list_trusted_keys(actor)

    @app.post("/v1/trust/keys", tags=["trust"])
    def add_trusted_key(actor: Actor, body: TrustedKeyRequest) -> dict[str, str]:
        return registry.add_trusted_key(actor, body.pem.encode("utf-8"), name=body.name)

    @app.post("/v1/trust/keys/{key_id}/remove", tags=["trust"])
    def remove_trusted_key(actor: Actor, key_id: str) -> dict[str, str]:
        registry.remove_trusted_key(actor, key_id)
        return {"id": key_id, "status": "removed"}

    # -------------------------------------------------------------------------- keys
    @app.get("/v1/keys", tags=["keys"])
    def version_keys(actor: Actor, provider: str | None = None) -> list[dict[str, Any]]:
        """Wrapped data keys of encrypted versions (key rotation; security engineers)."""
        return [k.to_dict() for k in registry.version_keys(actor, provider=provider)]

    @app.post("/v1/keys/rotate", tags=["keys"])
    def rotate_keys(actor: Actor, body: KeyRotationRequest) -> dict[str, int]:
        """Replace wrapped data keys (compare-and-swap), atomically and audited."""
        changes = [KeyChange.from_dict(c) for c in body.changes]
        count = registry.replace_version_keys(
            actor, changes, new_kek_id=body.new_kek_id, retiring=body.retiring
        )
        return {"replaced": count}

    # ----------------------------------------------------------------------- audit
    @app.get("/v1/audit/checkpoint", tags=["audit"], response_class=PlainTextResponse)
    def checkpoint(actor: Actor) -> str:
        return registry.audit_checkpoint(actor)

    @app.get("/v1/audit/records", tags=["audit"])
    def records(
        actor: Actor,
        start: Annotated[int, Query(ge=0)] = 0,
        end: Annotated[int | None, Query(ge=0)] = None,
        export: bool = False,
    ) -> StreamingResponse:
        """Records as JSON lines (``export=true`` needs the export permission)."""
        import json

        found = registry.audit_records(actor, start=start, end=end, export=export)
        lines = (json.dumps(r.to_dict(), sort_keys=True) + "\n" for r in found)
        return StreamingResponse(lines, media_type="application/x-ndjson")

    @app.get("/v1/audit/proofs/inclusion", tags=["audit"])
    def inclusion(
        actor: Actor,
        index: Annotated[int, Query(ge=0)],
        size: Annotated[int | None, Query(ge=1)] = None,
    ) -> dict[str, Any]:
        return registry.audit_inclusion(actor, index, size)

    @app.get("/v1/audit/proofs/consistency", tags=["audit"])
    def consistency(
        actor: Actor,
        old: Annotated[int, Query(ge=0)],
        new: Annotated[int | None, Query(ge=0)] = None,
    ) -> dict[str, Any]:
        return registry.audit_consistency(actor, old, new)

    return app


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to report from a task group: a modelseal error if there is one."""
    flat: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        current = stack.pop()
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        else:
            flat.append(current)
    for error in flat:
        if isinstance(error, ModelsealError):
            return error
    return flat[0] if flat else group


async def _hand_off(
    handoff: queue.Queue[list[bytes] | BaseException | None],
    item: list[bytes] | None,
    stop: threading.Event,
) -> None:
    """Give ``item`` to the hashing thread: at once while its queue has room (the event loop
    goes straight back to reading the socket), else from a worker thread that waits."""
    try:
        handoff.put_nowait(item)
    except queue.Full:
        import anyio

        await anyio.to_thread.run_sync(_put, handoff, item, stop)


def _put(
    handoff: queue.Queue[list[bytes] | BaseException | None],
    item: list[bytes] | BaseException | None,
    stop: threading.Event,
) -> None:
    """Block until the hashing thread takes ``item``, unless it has already finished."""
    while not stop.is_set():
        try:
            handoff.put(item, timeout=0.2)
            return
        except queue.Full:
            continue
