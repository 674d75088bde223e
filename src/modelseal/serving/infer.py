"""The inference route, the server's hottest path, as a plain ASGI handler.

``POST /v2/models/{name}[/versions/{v}]/infer`` is answered here straight from the ASGI
connection: the caller is authenticated and authorized for the model before one byte of the
body is read, the body is capped, parsed and checked against the model's input signature
before the model is called, and every problem is a 4xx with the protocol's error body. No
framework object is built per request (no Request, no Response, no middleware, no dependency
solving): on a tabular model that answers in tens of microseconds, that plumbing would cost
more than the checks themselves. Payloads are never logged.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
import anyio.to_thread

from modelseal.errors import (
    ModelFailedError,
    ModelRefusedInputError,
    ModelsealError,
    RequestTooLargeError,
    first_line,
)
from modelseal.serving import protocol

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

PATH = re.compile(r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer")
# The request headers the route reads (ASGI gives them lower-cased, as bytes).
_AUTHORIZATION, _LENGTH, _HEADER_LENGTH = (
    b"authorization", b"content-length", b"inference-header-content-length"
)  # fmt: skip
_WANTED = frozenset((_AUTHORIZATION, _LENGTH, _HEADER_LENGTH))
log = logging.getLogger("modelseal.serve")


class Disconnected(Exception):
    """The client went away before its body arrived (nothing is answered)."""


class InferHandler:
    """Answers the inference route of one server (see the module's docstring).

    ``repository``, ``access`` and ``limits`` are the server's; ``error_body`` turns a
    :class:`ModelsealError` into ``(status, body, headers)``.
    """

    def __init__(
        self,
        repository: Any,
        access: Any,
        limits: Any,
        error_body: Callable[[ModelsealError], tuple[int, bytes, list[tuple[bytes, bytes]]]],
    ) -> None:
        self.repository, self.access, self.limits = repository, access, limits
        self._error_body = error_body

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, name: str, version: str | None
    ) -> None:
        """Answer one inference request on an ASGI ``http`` connection."""
        started = time.perf_counter()
        repository, limits = self.repository, self.limits
        # Label values come from what is served, never from the URL: unknown names and
        # versions share "-", so requests cannot grow the metrics without bound.
        served_version = "-"
        status = 200
        try:
            headers: dict[bytes, bytes] = {}
            for key, value in scope["headers"]:
                if key in _WANTED and key not in headers:  # the first one, as Starlette reads
                    headers[key] = value
            client = scope.get("client")
            await self.access.authorize_async(
                headers.get(_AUTHORIZATION, b"").decode("latin-1"),
                client[0] if client else "",
                name,
            )
            loaded = repository.get(name, version)
            served_version = loaded.version
            body = await _read_body(receive, headers.get(_LENGTH), limits.max_body)
            header_length = headers.get(_HEADER_LENGTH)
            parsed = protocol.parse_request(
                body, None if header_length is None else header_length.decode("latin-1"),
                limits.max_elements,
            )  # fmt: skip
            inputs = loaded.signature.check(parsed.inputs, max_batch=limits.max_batch)
            outputs = protocol.requested_outputs(parsed, loaded.runtime)
            runtime, names = loaded.runtime, [o.name for o in outputs]
            if runtime.runs_inline(inputs):  # known to take a few milliseconds at most
                results = call_model(runtime, inputs, names)
            else:
                with anyio.fail_after(limits.timeout):
                    results = await anyio.to_thread.run_sync(
                        call_model, runtime, inputs, names, abandon_on_cancel=True
                    )
            shadow = repository.shadow_of(name)
            if shadow is not None:  # after the answer is computed; never part of it
                shadow.submit(inputs, names, results)
            answer, content_type, extra = protocol.encode_response(
                name, loaded.version, parsed, outputs, results
            )
        except Disconnected:
            status = 499  # nginx's code for it: counted, never sent
            return
        except ModelsealError as exc:
            status, answer, error_headers = self._error_body(exc)
            await _send(send, status, answer, b"application/json", error_headers)
            return
        except TimeoutError:
            status = 503
            answer = protocol.encode_error(
                f"the model took longer than {limits.timeout:g} s", "timeout"
            )
            await _send(send, status, answer, b"application/json", [(b"retry-after", b"1")])
            return
        finally:
            label = name if name in repository.entries else "-"
            repository.metrics.observe(label, served_version, status,
                                       time.perf_counter() - started)  # fmt: skip
        await _send(send, 200, answer, content_type, extra)


# What a framework raises when the input itself is the problem (an unseen category, a value
# its preprocessing cannot take): the caller's to fix (400). Anything else is the model's (500).
_INPUT_PROBLEMS = (ValueError, TypeError, KeyError, IndexError)


def call_model(runtime: Any, inputs: Any, outputs: list[str]) -> Any:
    """``runtime.timed_predict`` with the framework's own errors as protocol errors. The
    caller gets the framework's message (about their own input); the log gets only its type,
    since such messages may quote input values, and payloads are never logged."""
    try:
        return runtime.timed_predict(inputs, outputs)
    except _INPUT_PROBLEMS as exc:
        log.info("the model refused an input (%s)", type(exc).__name__)
        raise ModelRefusedInputError(
            f"the model refused this input ({type(exc).__name__}: {first_line(exc)})",
            hint="check the values against what the model was trained on",
        ) from None
    except Exception as exc:
        log.warning("the model failed while answering (%s)", type(exc).__name__)
        raise ModelFailedError(
            f"the model failed while answering ({type(exc).__name__})",
            hint="the server's operators can reproduce it with the model and this input",
        ) from None


async def _read_body(receive: Receive, declared: bytes | None, cap: int) -> bytes:
    """The whole request body, refused as soon as it is over ``cap`` bytes."""
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise RequestTooLargeError(f"the request body is over {cap} bytes", hint="send less")
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise Disconnected
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > cap:
            raise RequestTooLargeError(f"the request body is over {cap} bytes", hint="send less")
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _send(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    extra: list[tuple[bytes, bytes]],
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
               *extra]  # fmt: skip
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
