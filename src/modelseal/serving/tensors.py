"""Tensors of the Open Inference Protocol v2: request inputs to NumPy arrays, arrays to response
outputs, in JSON or in the binary tensor data extension.

Nothing here trusts the request: every name, shape, datatype, element count and byte length is
checked before an array exists, and a mismatch is an :class:`InferenceInputError` naming the
tensor (an HTTP 400), never an exception from NumPy.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from modelseal.errors import InferenceInputError, RequestTooLargeError

# Protocol datatype -> NumPy dtype (little-endian on the wire, as the protocol fixes).
DATATYPES: dict[str, str] = {
    "BOOL": "?", "UINT8": "u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
    "INT8": "i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8",
    "FP16": "<f2", "FP32": "<f4", "FP64": "<f8", "BYTES": "O",
}  # fmt: skip
_BY_KIND = {np.dtype(v).str: k for k, v in DATATYPES.items() if k != "BYTES"}
# The same by dtype, native byte order included (looked up first: no new dtype per answer).
_BY_DTYPE = {np.dtype(v).newbyteorder("="): k for k, v in DATATYPES.items() if k != "BYTES"}
MAX_DIMS = 16
MAX_NAME = 256


def datatype_of(array: np.ndarray[Any, Any]) -> str:
    """The protocol datatype of ``array`` (object and string arrays are ``BYTES``)."""
    found = _BY_DTYPE.get(array.dtype)
    if found is not None:
        return found
    if array.dtype.kind in "OSU":
        return "BYTES"
    found = _BY_KIND.get(array.dtype.newbyteorder("<").str)
    if found is None:
        raise InferenceInputError(f"the model produced an unsupported dtype {array.dtype}")
    return found


def check_shape(name: str, shape: Any, max_elements: int) -> tuple[int, ...]:
    """``shape`` as a tuple of non-negative ints, with its element count under the limit."""
    if not isinstance(shape, list) or len(shape) > MAX_DIMS:
        raise InferenceInputError(
            f"input {name!r}: shape must be a list of at most {MAX_DIMS} integers", tensor=name
        )
    dims: list[int] = []
    for dim in shape:
        if type(dim) is not int or dim < 0:
            raise InferenceInputError(
                f"input {name!r}: shape {shape!r} has a dimension that is not a "
                "non-negative integer",
                tensor=name,
            )
        dims.append(dim)
    count = math.prod(dims)
    if count > max_elements:
        raise RequestTooLargeError(
            f"input {name!r} has {count} elements; this server takes at most {max_elements}",
            hint="send a smaller batch",
        )
    return tuple(dims)


def decode_input(
    spec: Any, binary: memoryview | None, *, max_elements: int
) -> tuple[str, np.ndarray[Any, Any]]:
    """One request input (a JSON object, and its binary data when it has ``binary_data_size``)
    as ``(name, array)``."""
    if not isinstance(spec, dict):
        raise InferenceInputError("each input must be a JSON object")
    name = spec.get("name")
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        raise InferenceInputError(f"an input has no valid name (a string of 1-{MAX_NAME} chars)")
    datatype = spec.get("datatype")
    if datatype not in DATATYPES:
        raise InferenceInputError(
            f"input {name!r}: unknown datatype {datatype!r}",
            tensor=name,
            hint=f"use one of {', '.join(DATATYPES)}",
        )
    shape = check_shape(name, spec.get("shape"), max_elements)
    count = math.prod(shape)
    if binary is not None:
        if "data" in spec:
            raise InferenceInputError(
                f"input {name!r} has both JSON data and binary data", tensor=name
            )
        array = _from_binary(name, datatype, binary, count)
    else:
        if "data" not in spec:
            raise InferenceInputError(f"input {name!r} has no data", tensor=name)
        array = _from_json(name, datatype, spec["data"], count)
    return name, array.reshape(shape)


def _from_binary(name: str, datatype: str, data: memoryview, count: int) -> np.ndarray[Any, Any]:
    if datatype == "BYTES":
        items: list[bytes] = []
        pos = 0
        while pos < len(data):
            if pos + 4 > len(data):
                break
            (length,) = struct.unpack_from("<I", data, pos)
            if pos + 4 + length > len(data):
                raise InferenceInputError(
                    f"input {name!r}: a BYTES element runs past its binary data", tensor=name
                )
            items.append(bytes(data[pos + 4 : pos + 4 + length]))
            pos += 4 + length
        if pos != len(data) or len(items) != count:
            raise InferenceInputError(
                f"input {name!r}: binary data holds {len(items)} BYTES elements, "
                f"the shape needs {count}",
                tensor=name,
            )
        return np.array(items, dtype=object)
    dtype = np.dtype(DATATYPES[datatype])
    if len(data) != count * dtype.itemsize:
        raise InferenceInputError(
            f"input {name!r}: binary data is {len(data)} bytes, the shape and datatype need "
            f"{count * dtype.itemsize}",
            tensor=name,
        )
    return np.frombuffer(data, dtype=dtype).copy()


def _from_json(name: str, datatype: str, data: Any, count: int) -> np.ndarray[Any, Any]:
    if not isinstance(data, list):
        data = [data]
    if datatype == "BYTES":
        flat = _flatten(name, data, count)
        if not all(isinstance(x, str) for x in flat):
            raise InferenceInputError(f"input {name!r}: BYTES data must be strings", tensor=name)
        return np.array([x.encode("utf-8") for x in flat], dtype=object)
    try:
        raw = np.array(data)
    except (ValueError, TypeError):
        raise InferenceInputError(
            f"input {name!r}: data is not a regular array of numbers", tensor=name
        ) from None
    if raw.dtype == object or raw.size != count:
        if raw.dtype != object and raw.size != count:
            raise InferenceInputError(
                f"input {name!r}: {raw.size} values, the shape needs {count}", tensor=name
            )
        raise InferenceInputError(
            f"input {name!r}: data is not a regular array of numbers", tensor=name
        )
    dtype = np.dtype(DATATYPES[datatype])
    kind = raw.dtype.kind if raw.size else dtype.kind
    if dtype.kind == "b":
        ok = kind == "b"
    elif dtype.kind in "iu":
        ok = kind in "iu" and (
            raw.size == 0
            or (int(raw.min()) >= np.iinfo(dtype).min and int(raw.max()) <= np.iinfo(dtype).max)
        )
    else:
        ok = kind in "iuf"
    if not ok:
        raise InferenceInputError(
            f"input {name!r}: values do not fit datatype {datatype}", tensor=name
        )
    return raw.astype(dtype, copy=False).reshape(-1)


def _flatten(name: str, data: list[Any], count: int) -> list[Any]:
    out: list[Any] = []
    stack: list[Any] = [iter(data)]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, list):
            if len(stack) > MAX_DIMS:
                raise InferenceInputError(f"input {name!r}: data nested too deeply", tensor=name)
            stack.append(iter(item))
        else:
            out.append(item)
            if len(out) > count:
                break
    if len(out) != count:
        raise InferenceInputError(
            f"input {name!r}: {len(out)} values, the shape needs {count}", tensor=name
        )
    return out


_END = object()


def encode_output(
    name: str, array: np.ndarray[Any, Any], *, binary: bool
) -> tuple[dict[str, Any], bytes | None]:
    """One response output: its JSON object, and its bytes when sent as binary data."""
    array = np.asarray(array)
    datatype = datatype_of(array)
    out: dict[str, Any] = {"name": name, "shape": list(array.shape), "datatype": datatype}
    if binary:
        if datatype == "BYTES":
            raw = b"".join(
                struct.pack("<I", len(b)) + b for b in (_as_bytes(x) for x in array.reshape(-1))
            )
        else:
            raw = np.ascontiguousarray(array, dtype=np.dtype(DATATYPES[datatype])).tobytes()
        out["parameters"] = {"binary_data_size": len(raw)}
        return out, raw
    if datatype == "BYTES":
        out["data"] = [_as_text(x) for x in array.reshape(-1)]
    elif array.dtype.kind == "f" and not np.isfinite(array).all():
        # JSON has no NaN or infinity: those values are null.
        out["data"] = [x if math.isfinite(x) else None for x in array.reshape(-1).tolist()]
    else:
        out["data"] = array.reshape(-1).tolist()
    return out, None


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def _as_text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def split_binary(inputs: Sequence[Any], body: memoryview, offset: int) -> list[memoryview | None]:
    """Each input's slice of the binary data after the JSON header (``None`` for JSON data)."""
    slices: list[memoryview | None] = []
    pos = offset
    for spec in inputs:
        params = spec.get("parameters") if isinstance(spec, dict) else None
        size = params.get("binary_data_size") if isinstance(params, Mapping) else None
        if size is None:
            slices.append(None)
            continue
        if type(size) is not int or size < 0 or pos + size > len(body):
            name = spec.get("name") if isinstance(spec, dict) else None
            raise InferenceInputError(
                f"input {name!r}: binary_data_size {size!r} does not fit the request body",
                tensor=name if isinstance(name, str) else None,
            )
        slices.append(body[pos : pos + size])
        pos += size
    if pos != len(body):
        raise InferenceInputError(
            f"the request has {len(body) - pos} bytes of binary data no input claims"
        )
    return slices
