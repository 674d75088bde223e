"""The Open Inference Protocol v2 messages: typed models for the documented bodies, and the
request parser and response writer of the inference route (hand-written for speed, and so each
error names what is wrong).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from modelseal.errors import InferenceInputError, first_line
from modelseal.serving.runtimes import Runtime, check_outputs
from modelseal.serving.tensors import MAX_NAME, decode_input, encode_output, split_binary

MAX_INPUTS = 64
MAX_ID = 256


class ErrorBody(BaseModel):
    """Every error answer: the protocol's ``error`` string, and modelseal's code and hint."""

    error: str
    code: str = ""
    tensor: str | None = None
    hint: str | None = None


class ServerMetadata(BaseModel):
    """``GET /v2``."""

    name: str
    version: str
    extensions: list[str]


class Live(BaseModel):
    """``GET /v2/health/live``."""

    live: bool


class Ready(BaseModel):
    """``GET /v2/health/ready``: ready when every model is served; else why not, per model."""

    ready: bool
    models: dict[str, str] = Field(default_factory=dict)


class ModelReady(BaseModel):
    """A model's ready route."""

    name: str
    ready: bool
    reason: str | None = None


class TensorMetadata(BaseModel):
    """One input or output in model metadata."""

    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    """``GET /v2/models/{name}``: the model, its version, platform and tensors."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any] = Field(default_factory=dict)


class IndexEntry(BaseModel):
    """One model of the repository index."""

    name: str
    version: str | None = None
    state: str
    reason: str = ""


class ShadowCandidate(BaseModel):
    """The version a shadow mirrors traffic to."""

    version: str
    digest: str


class ShadowSummary(BaseModel):
    """What mirroring a model's traffic to its candidate found (counts, never payloads)."""

    loaded: bool
    reason: str = ""
    candidate: ShadowCandidate | None = None
    same: int = 0
    different: int = 0
    error: int = 0
    dropped: int = 0
    max_difference: float | None = 0.0


class RequestInput(BaseModel):
    """One input tensor of an inference request."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=MAX_NAME)
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: Any = None


class RequestOutput(BaseModel):
    """One output an inference request asks for."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=MAX_NAME)
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    """``POST /v2/models/{name}/infer``."""

    id: str | None = Field(None, max_length=MAX_ID)
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1, max_length=MAX_INPUTS)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    """One output tensor of an inference response."""

    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferenceResponse(BaseModel):
    """The answer to an inference request."""

    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


@dataclasses.dataclass
class Parsed:
    """A checked inference request: its inputs as arrays and what it asks for."""

    id: str | None
    parameters: dict[str, Any]
    inputs: dict[str, np.ndarray[Any, Any]]
    outputs: list[dict[str, Any]] | None


@dataclasses.dataclass(frozen=True)
class Wanted:
    """One output to return, and whether as binary data."""

    name: str
    binary: bool


def parse_request(body: bytes, header_length: str | None, max_elements: int) -> Parsed:
    """Parse a request body (JSON, or a JSON header followed by binary tensor data)."""
    view = memoryview(body)
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise InferenceInputError(
                "Inference-Header-Content-Length is not a length within the body"
            )
        split = int(header_length)
    else:
        split = len(body)
    try:
        text = body if split == len(body) else bytes(view[:split])  # no copy for plain JSON
        document = _DECODER.decode(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise InferenceInputError("the request is not valid JSON: it is not UTF-8 text") from None
    except (ValueError, RecursionError) as exc:
        raise InferenceInputError(
            f"the request is not valid JSON: {first_line(exc, 200)}"
        ) from None
    if not isinstance(document, dict):
        raise InferenceInputError("the request must be a JSON object")
    unknown = set(document) - {"id", "parameters", "inputs", "outputs"}
    if unknown:
        raise InferenceInputError(f"unknown request field {sorted(unknown)[0]!r}")
    ident = document.get("id")
    if ident is not None and (not isinstance(ident, str) or len(ident) > MAX_ID):
        raise InferenceInputError(f"'id' must be a string of at most {MAX_ID} characters")
    parameters = document.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InferenceInputError("'parameters' must be an object")
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or not inputs or len(inputs) > MAX_INPUTS:
        raise InferenceInputError(f"'inputs' must be a list of 1 to {MAX_INPUTS} tensors")
    binaries = split_binary(inputs, view, split)
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    for spec, binary in zip(inputs, binaries, strict=True):
        name, array = decode_input(spec, binary, max_elements=max_elements)
        if name in arrays:
            raise InferenceInputError(f"input {name!r} is given twice", tensor=name)
        arrays[name] = array
    outputs = document.get("outputs")
    if outputs is not None and (
        not isinstance(outputs, list)
        or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs)
    ):
        raise InferenceInputError("'outputs' must be a list of objects with a 'name'")
    return Parsed(ident, parameters, arrays, outputs)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (send finite numbers)")


# Made once: json.loads and json.dumps build a new decoder or encoder on every call that
# passes an option.
_DECODER = json.JSONDecoder(parse_constant=_no_constant)
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_ERROR_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def requested_outputs(parsed: Parsed, runtime: Runtime) -> list[Wanted]:
    """The outputs to return: those asked for (checked), else the model's default ones."""
    all_binary = parsed.parameters.get("binary_data_output") is True
    if parsed.outputs is None:
        names = runtime.output_names()
        default = names if runtime.framework in ("onnx", "torchscript") else names[:1]
        return [Wanted(n, all_binary) for n in default]
    check_outputs(runtime, [o["name"] for o in parsed.outputs])
    wanted: list[Wanted] = []
    for item in parsed.outputs:
        params = item.get("parameters")
        binary = all_binary or (isinstance(params, Mapping) and params.get("binary_data") is True)
        wanted.append(Wanted(item["name"], binary))
    return wanted


def encode_response(
    model: str,
    version: str,
    parsed: Parsed,
    outputs: list[Wanted],
    results: Mapping[str, np.ndarray[Any, Any]],
) -> tuple[bytes, bytes, list[tuple[bytes, bytes]]]:
    """The inference answer as ``(body, content type, extra headers)``: JSON, or a JSON header
    and binary tensor data."""
    items: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for want in outputs:
        item, raw = encode_output(want.name, results[want.name], binary=want.binary)
        items.append(item)
        if raw is not None:
            blobs.append(raw)
    document: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": items}
    if parsed.id is not None:
        document["id"] = parsed.id
    header = _ENCODER.encode(document).encode()
    if not blobs:
        return header, b"application/json", []
    length = str(len(header)).encode()
    return (header + b"".join(blobs), b"application/octet-stream",
            [(b"inference-header-content-length", length)])  # fmt: skip


def encode_error(message: str, code: str, **more: str) -> bytes:
    """The protocol's error body ``{"error": ..., "code": ...}`` (plus ``tensor``/``hint``)."""
    return _ERROR_ENCODER.encode({"error": message, "code": code, **more}).encode()
