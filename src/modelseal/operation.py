"""An operation: one thing a caller may ask of the registry, declared once.

An operation is a pydantic model whose fields are its inputs. Its class says how it travels over
HTTP (:class:`Route`) and, through its type parameter, what it answers::

    class SetAlias(Operation[VersionOut]):
        route: ClassVar[Route] = Route("PUT", "/v1/models/{name}/aliases/{alias}", tag="models")
        name: str
        alias: str
        version: int

The server builds one route per operation and the client one request per operation from the
same class (:func:`output_type`, :meth:`Route.path_params`), so what runs in process and what
runs over HTTP cannot drift apart. Where the operation runs is up to the layer that defines it:
each operation class has a ``run`` method that takes that layer's session.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Generic, Literal, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelseal.errors import InputError

OutT = TypeVar("OutT")

Method = Literal["GET", "POST", "PUT", "DELETE"]
# How an operation's answer travels: a JSON document, plain text, JSON lines (a stream of
# records) or raw bytes (a file's content).
Answer = Literal["json", "text", "ndjson", "bytes"]
# How its input travels besides the path: query parameters / a JSON body (chosen by the method),
# or a raw byte stream (an upload) with the remaining fields in the query.
Body = Literal["auto", "bytes"]

_PARAM = re.compile(r"\{(\w+)(?::path)?\}")
# Every route can answer these besides its own: no or a bad token, a malformed request, too many
# failed authentications from the caller's address.
COMMON_ERRORS = (400, 401, 413, 429)
# The largest JSON body a route reads unless it says otherwise.
DEFAULT_MAX_BODY = 1 << 20


@dataclasses.dataclass(frozen=True)
class Route:
    """Where an operation lives over HTTP and how its input and answer travel."""

    method: Method
    path: str
    tag: str
    errors: tuple[int, ...] = ()
    answer: Answer = "json"
    body: Body = "auto"
    # The largest request body read (JSON bodies are read whole; a byte stream is not capped
    # here: the operation bounds what it stores).
    max_body: int = DEFAULT_MAX_BODY

    @property
    def path_params(self) -> tuple[str, ...]:
        """The names of the fields that travel in the path, in order."""
        return tuple(_PARAM.findall(self.path))

    @property
    def statuses(self) -> tuple[int, ...]:
        """Every error status this route can answer, sorted."""
        return tuple(sorted(set(COMMON_ERRORS) | set(self.errors)))

    @property
    def fields_in_query(self) -> bool:
        """Whether the fields outside the path travel as query parameters (else a JSON body)."""
        return self.method in ("GET", "DELETE") or self.body == "bytes"


class Operation(BaseModel, Generic[OutT]):
    """Base of every operation: frozen inputs, unknown fields refused.

    An input that does not fit the operation is an :class:`~modelseal.errors.InputError` naming
    the field, in process as over HTTP.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    route: ClassVar[Route]

    def __init__(self, /, **data: Any) -> None:
        for name, value in data.items():
            check_value(value, name)
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise InputError(describe(exc), hint="see the operation's fields") from None


# Deeper documents are refused: nothing the registry stores needs more, and parsers and
# serializers recurse.
MAX_DEPTH = 32


def check_value(value: Any, where: str, depth: int = 0) -> None:
    """Refuse what the registry could store but not give back intact: text that is not valid
    Unicode (a lone surrogate) or holds a NUL character, numbers that are not finite, and
    documents nested deeper than :data:`MAX_DEPTH`. Checked for every input of every operation,
    in process as over HTTP, before anything is written."""
    if isinstance(value, str):
        if "\x00" in value:
            raise InputError(f"invalid {where}: text holds a NUL character", hint="remove it")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(
                f"invalid {where}: text is not valid Unicode (a lone surrogate)",
                hint="send UTF-8 text",
            ) from None
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise InputError(
                f"invalid {where}: {value} is not a finite number", hint="send a finite number"
            )
    elif isinstance(value, dict | list | tuple):
        if depth >= MAX_DEPTH:
            field = where.split(".")[0].split("[")[0]
            raise InputError(
                f"invalid {field}: nested deeper than {MAX_DEPTH} levels", hint="flatten it"
            )
        if isinstance(value, dict):
            for key, item in value.items():
                check_value(key, f"{where} key", depth + 1)
                check_value(item, f"{where}.{key}" if isinstance(key, str) else where, depth + 1)
        else:
            for index, item in enumerate(value):
                check_value(item, f"{where}[{index}]", depth + 1)


def describe(error: ValidationError) -> str:
    """One line naming the first invalid field of a validation error and what is wrong."""
    problems = error.errors()
    if not problems:
        return "invalid request"
    first = problems[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "request"
    return f"invalid {where}: {first.get('msg', 'invalid value')}"


def runner(operation: Operation[OutT]) -> Callable[..., OutT]:
    """The operation's ``run`` method: defined by the layer that serves the operation, taking
    that layer's session (and, for uploads, the byte stream)."""
    run = getattr(operation, "run", None)
    if run is None:
        raise TypeError(f"{type(operation).__name__} cannot run: it has no run method")
    return cast("Callable[..., OutT]", run)


def output_type(operation: type[Operation[Any]]) -> Any:
    """The type an operation answers with (its type parameter)."""
    for cls in operation.__mro__:
        meta = getattr(cls, "__pydantic_generic_metadata__", None)
        if meta and meta.get("origin") is Operation and meta.get("args"):
            return meta["args"][0]
    raise TypeError(f"{operation.__name__} does not say what it answers: use Operation[T]")


def item_type(operation: type[Operation[Any]]) -> Any:
    """The type of each item an ``ndjson`` operation streams (``Iterator[T]`` -> ``T``)."""
    out = output_type(operation)
    if typing.get_origin(out) is not Iterator:
        raise TypeError(f"{operation.__name__} streams records: declare Operation[Iterator[T]]")
    return typing.get_args(out)[0]


@dataclasses.dataclass(frozen=True)
class Download:
    """A file's content as it streams, and how long it is."""

    size: int
    chunks: Iterator[bytes]


class ErrorDetail(BaseModel):
    """What went wrong, for people and for programs."""

    type: str = Field(description="The error's class, e.g. NotFoundError.")
    code: str = Field("", description="A stable, machine-readable code.")
    message: str = Field(description="What is wrong.")
    hint: str = Field("", description="What to do about it.")
    topic: str = Field("", description="What it is about (e.g. users, versions:NAME).")
    reasons: list[dict[str, str]] = Field(
        default_factory=list, description="Each difference found by a verification."
    )


class ErrorBody(BaseModel):
    """The body of every error answer (4xx)."""

    error: ErrorDetail


class Status(BaseModel):
    """The answer of an operation that only reports what it did."""

    status: str
