"""The registry's routes, one router per resource, built from the catalogue of operations.

For each operation the endpoint takes the fields named in its path from the path, the others
from the query (GET, DELETE, uploads) or from a JSON body, builds the operation (the same
validation as in process) and runs it in the caller's session. Its answer is the operation's
response model; every error status it can answer is documented with the one error body.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel, create_model
from pydantic.fields import FieldInfo

from modelseal.operation import Download, ErrorBody, Operation, item_type, output_type, runner
from modelseal.server.auth import SessionDep
from modelseal.server.upload import receive_upload

_DESCRIPTIONS = {
    400: "The request is malformed or names something invalid.",
    401: "No token, or a token that is unknown, expired or revoked.",
    403: "The caller's roles do not allow it (the attempt is audited).",
    404: "The model, version, alias, upload, user, token or key does not exist.",
    409: "It conflicts with the current state (e.g. the version was deleted).",
    413: "A file larger than the registry accepts.",
    422: "Content or a signature that does not verify (the attempt is audited).",
    429: "Too many failed authentications from this address; retry after Retry-After seconds.",
}


def routers(operations: tuple[type[Operation[Any]], ...]) -> list[APIRouter]:
    """One router per resource (an operation's tag), each with its operations' routes."""
    by_tag: dict[str, APIRouter] = {}
    for operation in operations:
        tag = operation.route.tag
        router = by_tag.setdefault(tag, APIRouter(tags=[tag]))
        add_route(router, operation)
    return list(by_tag.values())


def add_route(router: APIRouter, operation: type[Operation[Any]]) -> None:
    """Serve ``operation`` on ``router`` at its route."""
    route = operation.route
    responses: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorBody, "description": _DESCRIPTIONS.get(status, "An error.")}
        for status in route.statuses
    }
    extra: dict[str, Any] = {}
    if route.answer == "json":
        extra["response_model"] = output_type(operation)
    elif route.answer == "text":
        extra["response_class"] = PlainTextResponse
        responses[200] = {"content": {"text/plain": {"schema": {"type": "string"}}},
                          "description": "Plain text."}  # fmt: skip
    elif route.answer == "ndjson":
        schema = {"$ref": f"#/components/schemas/{item_type(operation).__name__}"}
        responses[200] = {"content": {"application/x-ndjson": {"schema": schema}},
                          "description": "One JSON document per line."}  # fmt: skip
        extra["response_class"] = StreamingResponse
    else:
        responses[200] = {
            "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                "format": "binary"}}},
            "description": "The file's bytes.",
        }  # fmt: skip
        extra["response_class"] = StreamingResponse
    summary, _, description = (operation.__doc__ or operation.__name__).strip().partition("\n")
    router.add_api_route(
        route.path,
        _endpoint(operation),
        methods=[route.method],
        name=operation.__name__,
        operation_id=operation.__name__,
        summary=summary.strip().rstrip("."),
        description=" ".join(description.split()) or None,
        responses=responses,
        **extra,
    )


def _endpoint(operation: type[Operation[Any]]) -> Callable[..., Any]:
    """An endpoint function whose signature tells FastAPI where each input comes from."""
    route = operation.route
    in_path = route.path_params
    fields = operation.model_fields
    params: list[inspect.Parameter] = [
        inspect.Parameter("session", inspect.Parameter.KEYWORD_ONLY, annotation=SessionDep),
        inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY, annotation=Request),
    ]
    for name in in_path:
        annotation = _annotated(fields[name], Path(description=fields[name].description))
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                                        annotation=annotation))  # fmt: skip
    rest = {name: field for name, field in fields.items() if name not in in_path}
    body_model: type[BaseModel] | None = None
    if route.fields_in_query:
        for name, field in rest.items():
            annotation = _annotated(field, Query(description=field.description))
            default = (
                field.get_default(call_default_factory=True)
                if not field.is_required()
                else (inspect.Parameter.empty)
            )
            params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                                            annotation=annotation, default=default))  # fmt: skip
    elif rest:
        body_model = create_model(  # type: ignore[call-overload]
            f"{operation.__name__}Request",
            __config__={"extra": "forbid"},
            __doc__=f"The body of {operation.__name__}.",
            **{name: (field.annotation, _copy(field)) for name, field in rest.items()},
        )
        optional = all(not field.is_required() for field in rest.values())
        annotation = Annotated[body_model, Body()]
        if optional:  # e.g. publishing a plaintext upload: no body at all
            annotation, default = annotation | None, None
        else:
            default = inspect.Parameter.empty
        params.append(
            inspect.Parameter(
                "body", inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default
            )
        )

    def build(values: dict[str, Any]) -> Operation[Any]:
        body = values.pop("body", None)
        if body is not None:
            values.update(dict(body))
        return operation(**values)

    if route.body == "bytes":

        async def upload(**values: Any) -> Any:
            session, request = values.pop("session"), values.pop("request")
            return await receive_upload(session, build(values), request)

        endpoint: Callable[..., Any] = upload
    else:

        def call(**values: Any) -> Any:
            session = values.pop("session")
            values.pop("request")
            return _answer(operation, runner(build(values))(session))

        endpoint = call
    endpoint.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    endpoint.__name__ = operation.__name__
    endpoint.__doc__ = operation.__doc__
    return endpoint


def _answer(operation: type[Operation[Any]], result: Any) -> Any:
    answer = operation.route.answer
    if answer == "text":
        return PlainTextResponse(result)
    if answer == "ndjson":
        return StreamingResponse(_lines(result), media_type="application/x-ndjson")
    if answer == "bytes":
        assert isinstance(result, Download)
        return StreamingResponse(result.chunks, media_type="application/octet-stream",
                                 headers={"Content-Length": str(result.size)})  # fmt: skip
    return result


def _lines(items: Iterator[BaseModel]) -> Iterator[str]:
    for item in items:
        yield json.dumps(item.model_dump(mode="json"), sort_keys=True) + "\n"


def _annotated(field: FieldInfo, where: Any) -> Any:
    """A parameter's type with the field's constraints and validators (so the same values are
    refused, with the same message, as in process) and where it comes from."""
    return Annotated[(field.annotation, *field.metadata, where)]


def _copy(field: FieldInfo) -> FieldInfo:
    return FieldInfo.merge_field_infos(field)
