"""The first thing every API request meets: the caller is authenticated before a byte of the
body is read, and a JSON body is read only up to its route's limit (HTTP 413 past it), so an
unauthenticated client cannot make the server hold or parse large bodies."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelseal.errors import ModelsealError, TooLargeError
from modelseal.operation import Operation
from modelseal.registry.catalogue import operations
from modelseal.server.auth import STATE_KEY, authenticate
from modelseal.server.errors import error_response


class RequestGuard:
    """ASGI middleware: authenticate, then cap the body, for every operation's route."""

    def __init__(self, app: ASGIApp, *, api: Any) -> None:
        self.app = app
        self.api = api
        # Each operation's method and path pattern, as the router compiles it.
        self._routes = [(o.route.method, compile_path(o.route.path)[0], o) for o in operations()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Authenticate and cap an HTTP request before its route reads anything."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        operation = self._operation(scope)
        if operation is None:  # health, docs, the OpenAPI document, unknown paths
            await self.app(scope, receive, send)
            return
        try:
            limit = operation.route.max_body if operation.route.body != "bytes" else None
            declared = _content_length(scope)
            if limit is not None and declared is not None and declared > limit:
                raise _too_large(limit)
            scope[STATE_KEY] = await anyio.to_thread.run_sync(self._authenticate, scope)
            if limit is not None:
                body = await _read(receive, limit)
                receive = _replay(body, receive)
        except ModelsealError as exc:
            await error_response(exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _operation(self, scope: Scope) -> type[Operation[Any]] | None:
        path, method = scope["path"], scope["method"]
        for wanted, pattern, operation in self._routes:
            if pattern.match(path) and wanted == method:
                return operation
        return None

    def _authenticate(self, scope: Scope) -> Any:
        state = self.api.state
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        client = scope.get("client")
        source = client[0] if client else ""
        return authenticate(state.registry, state.auth_limiter, headers, source, scope["path"])


def _content_length(scope: Scope) -> int | None:
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _too_large(limit: int) -> TooLargeError:
    return TooLargeError(
        f"the request body is larger than this route accepts ({limit} bytes)",
        hint="send a smaller request",
    )


async def _read(receive: Receive, limit: int) -> bytes:
    """The whole body, refused as soon as it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    held = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        held += len(chunk)
        if held > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the body already read, then whatever comes next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
