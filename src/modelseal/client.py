"""A typed Python client for the registry server.

Every registry operation is a typed request (:mod:`modelseal.registry.catalogue` lists them);
:meth:`Client.call` sends it and returns the operation's typed answer, exactly what the same
operation returns in process::

    from modelseal.client import Client
    from modelseal.registry.versions import ListVersions, SetAlias

    with Client("https://registry.example:8470", token=os.environ["MODELSEAL_TOKEN"]) as client:
        for version in client.call(ListVersions(name="fraud")):
            print(version.version, version.root_digest.sha256)
        client.call(SetAlias(name="fraud", alias="staging", version=3))
        client.push("./model", name="fraud", signature="model.sig")
        client.pull("fraud@staging", "./deployed")

Errors the server reports come back as the same exception types the registry raises in process
(:mod:`modelseal.errors`), with the same message and hint. The token is sent only in the
``Authorization`` header and never printed.
"""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter, ValidationError

from modelseal import errors
from modelseal.errors import InputError, ModelsealError, Reason, ServerError
from modelseal.operation import Download, Operation, item_type, output_type
from modelseal.registry.backend import pull, push
from modelseal.registry.models import Lineage, VersionRef
from modelseal.registry.receive import UploadFile
from modelseal.registry.views import ReceivedFile, VersionView

if TYPE_CHECKING:
    from modelseal.crypto.providers import KeyProvider

__all__ = ["Client", "ServerError"]

OutT = TypeVar("OutT")
CHUNK = 1 << 20


class Client:
    """A connection to one registry server, authenticated with one API token.

    ``ca_bundle`` (default ``$MODELSEAL_CA_BUNDLE``) is a PEM file of CA certificates to trust
    for HTTPS instead of the system's. Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None,
        timeout: float = 60.0,
        ca_bundle: str | os.PathLike[str] | None = None,
    ) -> None:
        if not token:
            raise errors.AuthenticationError(
                "no API token for the registry server",
                hint="give the token the server issued",
                topic="server-token",
            )
        verify: ssl.SSLContext | bool = True
        bundle = ca_bundle if ca_bundle is not None else os.environ.get("MODELSEAL_CA_BUNDLE")
        if bundle:
            source = "the CA bundle" if ca_bundle is not None else "MODELSEAL_CA_BUNDLE"
            try:
                verify = ssl.create_default_context(cafile=os.fspath(bundle))
            except (OSError, ssl.SSLError) as exc:
                raise InputError(
                    f"cannot use {source} {os.fspath(bundle)!r}: {exc}",
                    hint="point it at a PEM file of CA certificates",
                ) from None
        self.url = _check_url(url)
        self.http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout, connect=10.0),
            verify=verify,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    # ------------------------------------------------------------------------ operations

    def call(self, operation: Operation[OutT]) -> OutT:
        """Send ``operation``; its typed answer (a stream for records and file contents)."""
        route = type(operation).route
        url, rest = _split(operation)
        if route.body == "bytes":
            raise InputError(f"{type(operation).__name__} sends a body", hint="use send()")
        params = rest if route.fields_in_query else None
        body = None if route.fields_in_query else rest
        if route.answer == "ndjson":
            return self._lines(operation, url, params)  # type: ignore[return-value]
        if route.answer == "bytes":
            return self._download(url, params)  # type: ignore[return-value]
        response = self._request(route.method, url, params=params, json=body)
        if route.answer == "text":
            return response.text  # type: ignore[return-value]
        return self._parse(type(operation), response)

    def send(
        self, operation: UploadFile, chunks: Iterable[bytes], size: int | None = None
    ) -> ReceivedFile:
        """Send ``operation`` with ``chunks`` as its body (one file of an upload, streamed)."""
        url, params = _split(operation)
        headers = {"Content-Type": "application/octet-stream"}
        if size is not None:  # a plain body streams faster than chunked encoding
            headers["Content-Length"] = str(size)
        response = self._request("PUT", url, params=params or None, content=chunks,
                                 headers=headers)  # fmt: skip
        return self._parse(UploadFile, response)

    # ------------------------------------------------------------------------ workflows

    def push(
        self,
        model_path: str | os.PathLike[str],
        *,
        name: str,
        signature: str | os.PathLike[str],
        public_key: str | os.PathLike[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        lineage: Lineage | None = None,
        kek: KeyProvider | None = None,
    ) -> VersionView:
        """Publish the signed model at ``model_path`` as the next version of ``name`` (see
        :func:`modelseal.registry.backend.push`; ``kek`` encrypts it on this side)."""
        return push(self, model_path, name=name, signature=signature, public_key=public_key,
                    metadata=metadata, lineage=lineage, kek=kek)  # fmt: skip

    def pull(
        self,
        ref: str | VersionRef,
        dest: str | os.PathLike[str],
        *,
        public_key: str | os.PathLike[str] | None = None,
        trust_anchors: Sequence[str | os.PathLike[str]] = (),
        kek: KeyProvider | None = None,
        overwrite: bool = False,
    ) -> VersionView:
        """Download ``ref`` (``NAME[:VERSION|@ALIAS]``) into ``dest``, verified (see
        :func:`modelseal.registry.backend.pull`)."""
        parsed = VersionRef.parse(ref) if isinstance(ref, str) else ref
        return pull(self, parsed, dest, public_key=public_key, trust_anchors=trust_anchors,
                    kek=kek, overwrite=overwrite)  # fmt: skip

    # ------------------------------------------------------------------------ plumbing

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise ServerError(
                f"cannot reach the registry at {self.url}: {type(exc).__name__}",
                hint="check the server's URL and that it is running",
                topic="server-url",
            ) from None
        if response.status_code >= 400:
            _raise(response)
        return response

    def _parse(self, operation: type[Operation[OutT]], response: httpx.Response) -> OutT:
        try:
            return _adapter(operation).validate_json(response.content)  # type: ignore[no-any-return]
        except ValidationError:
            raise ServerError(
                f"the registry answered {operation.__name__} with an unexpected document",
                hint="check that the server runs the same modelseal version",
            ) from None

    def _lines(
        self, operation: Operation[Any], url: str, params: dict[str, Any] | None
    ) -> Iterator[Any]:
        adapter = _item_adapter(type(operation))
        try:
            with self.http.stream("GET", url, params=params) as response:
                if response.status_code >= 400:
                    response.read()
                    _raise(response)
                for line in response.iter_lines():
                    if line.strip():
                        try:
                            yield adapter.validate_json(line)
                        except ValidationError:
                            raise ServerError(
                                "the registry sent a malformed record", hint="check the server"
                            ) from None
        except httpx.HTTPError as exc:
            raise ServerError(
                f"cannot reach the registry at {self.url}: {type(exc).__name__}",
                hint="check the server's URL and that it is running",
                topic="server-url",
            ) from None

    def _download(self, url: str, params: dict[str, Any] | None) -> Download:
        request = self.http.build_request("GET", url, params=params)
        try:
            response = self.http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise ServerError(
                f"cannot reach the registry at {self.url}: {type(exc).__name__}",
                hint="check the server's URL and that it is running",
            ) from None
        if response.status_code >= 400:
            response.read()
            response.close()
            _raise(response)
        size = int(response.headers.get("content-length", "0") or 0)

        def chunks() -> Iterator[bytes]:
            try:
                yield from response.iter_bytes(CHUNK)
            except httpx.HTTPError as exc:
                raise ServerError(
                    f"the download was cut off: {type(exc).__name__}", hint="try again"
                ) from None
            finally:
                response.close()

        return Download(size, chunks())


def _check_url(url: str) -> str:
    """``url`` without a trailing slash, if it is an http(s) URL with a host."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        valid = False
    if not valid:
        raise InputError(
            f"invalid registry server URL {url!r}",
            hint="give an http:// or https:// URL, e.g. https://registry.example:8470",
            topic="server-url",
        )
    return url.strip().rstrip("/")


def _split(operation: Operation[Any]) -> tuple[str, dict[str, Any]]:
    """The request path of ``operation`` and its fields that do not travel in the path."""
    route = type(operation).route
    values = operation.model_dump(mode="json", exclude_none=route.fields_in_query)
    path = route.path
    for name in route.path_params:
        value = str(values.pop(name))
        if f"{{{name}:path}}" in path:
            path = path.replace(f"{{{name}:path}}", "/".join(_segment(p) for p in value.split("/")))
        else:
            path = path.replace(f"{{{name}}}", _segment(value))
    return path, values


def _segment(text: str) -> str:
    """One path segment, percent-encoded; ``.`` and ``..`` too, so no client or proxy
    normalizes them away (a single-file model's file is called ``.``)."""
    encoded = quote(text, safe="")
    return encoded.replace(".", "%2E") if set(text) <= {"."} else encoded


@functools.cache
def _adapter(operation: type[Operation[Any]]) -> TypeAdapter[Any]:
    return TypeAdapter(output_type(operation))


@functools.cache
def _item_adapter(operation: type[Operation[Any]]) -> TypeAdapter[Any]:
    return TypeAdapter(item_type(operation))


def _error_classes() -> dict[str, type[ModelsealError]]:
    found: dict[str, type[ModelsealError]] = {}
    stack: list[type[ModelsealError]] = [ModelsealError]
    while stack:
        cls = stack.pop()
        if cls.__module__ == errors.__name__:
            found.setdefault(cls.code, cls)
        stack.extend(cls.__subclasses__())
    return found


_BY_STATUS: dict[int, type[ModelsealError]] = {
    401: errors.AuthenticationError,
    403: errors.PermissionDeniedError,
    404: errors.NotFoundError,
    409: errors.ConflictError,
    413: errors.TooLargeError,
    422: errors.VerificationError,
    429: errors.RateLimitedError,
}


def _raise(response: httpx.Response) -> NoReturn:
    """Raise the error a 4xx answer reports, as the class the registry raised."""
    try:
        error = response.json()["error"]
        message, hint = str(error["message"]), str(error.get("hint", ""))
        code, topic = str(error.get("code", "")), str(error.get("topic", ""))
        reasons = [
            Reason(r["code"], r["message"], r.get("path"), r.get("expected"), r.get("actual"))
            for r in error.get("reasons", [])
            if isinstance(r, dict) and "code" in r and "message" in r
        ]
    except (ValueError, KeyError, TypeError):
        raise ServerError(
            f"the registry answered HTTP {response.status_code} without an error body",
            hint="check that the URL is the registry's",
        ) from None
    cls = _error_classes().get(code) or _BY_STATUS.get(response.status_code, InputError)
    if issubclass(cls, errors.VerificationError):
        raise cls(message, reasons=reasons, hint=hint, topic=topic)
    if issubclass(cls, errors.RateLimitedError):
        retry = response.headers.get("retry-after", "0")
        seconds = float(retry) if retry.isdigit() else 0.0
        raise cls(message, hint=hint, topic=topic, retry_after=seconds)
    raise cls(message, hint=hint, topic=topic)
