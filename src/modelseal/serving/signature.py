"""A model's input signature: the tensors it takes (names, datatypes, shapes, allowed ranges or
categories) and what it returns. Every request is checked against it before the model is called.

A signature is declared (a JSON file, or the ``input_signature`` of the version's metadata,
recorded at push), inferred from the model where the model says what it takes (ONNX graph
inputs, a scikit-learn estimator's ``n_features_in_``, a booster's feature count), or inferred
from validation data (columns, their ranges). Shapes use ``-1`` for "any size"; the first
dimension of every input is the batch.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelseal.errors import InferenceInputError, InputError, RequestTooLargeError
from modelseal.serving.tensors import DATATYPES, MAX_DIMS


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One tensor of a signature. ``minimum``/``maximum`` are one bound for every value or one
    per feature (the last dimension); ``categories`` lists the only values allowed."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    minimum: float | tuple[float, ...] | None = None
    maximum: float | tuple[float, ...] | None = None
    categories: tuple[Any, ...] | None = None
    # Other datatypes accepted and converted to ``datatype`` (an inferred tabular input takes
    # FP32 or integers as well as FP64).
    also: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (also the protocol's tensor metadata, plus the bounds)."""
        out: dict[str, Any] = {"name": self.name, "datatype": self.datatype,
                               "shape": list(self.shape)}  # fmt: skip
        for key in ("minimum", "maximum"):
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value) if isinstance(value, tuple) else value
        if self.categories is not None:
            out["categories"] = [
                c.decode("utf-8", "replace") if isinstance(c, bytes) else c for c in self.categories
            ]
        return out

    def metadata(self) -> dict[str, Any]:
        """The protocol's tensor metadata (name, datatype, shape)."""
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    @functools.cached_property
    def plan(self) -> _Plan:
        """What every request's check needs, worked out once."""
        want = np.dtype(DATATYPES[self.datatype])
        return _Plan(
            want=want,
            also=frozenset(np.dtype(DATATYPES[a]) for a in self.also),
            fixed=tuple((i, w) for i, w in enumerate(self.shape) if w != -1),
            allowed=None if self.categories is None else np.array(
                self.categories, dtype=want if want.kind != "O" else object
            ),
            bounds=tuple(
                (np.asarray(bound, dtype=np.float64), below)
                for bound, below in ((self.minimum, True), (self.maximum, False))
                if bound is not None
            ),
        )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class _Plan:
    """A tensor spec's check, prepared: dtypes, fixed dimensions, categories and bounds."""

    want: np.dtype[Any]
    also: frozenset[np.dtype[Any]]
    fixed: tuple[tuple[int, int], ...]
    allowed: np.ndarray[Any, Any] | None
    bounds: tuple[tuple[np.ndarray[Any, Any], bool], ...]


@dataclasses.dataclass(frozen=True)
class InputSignature:
    """The inputs a model takes and the outputs it gives, checked on every request."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...] = ()
    source: str = "declared"
    # A model that takes one unnamed table accepts one input of any name (as MLServer does).
    any_name: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, as :func:`read_signature` reads it."""
        return {"inputs": [t.to_dict() for t in self.inputs],
                "outputs": [t.to_dict() for t in self.outputs]}  # fmt: skip

    def check(
        self, arrays: Mapping[str, np.ndarray[Any, Any]], *, max_batch: int
    ) -> dict[str, np.ndarray[Any, Any]]:
        """``arrays`` checked: exactly the inputs, each of its datatype (or one it converts
        from) and shape, within its bounds and categories, with a batch of at most
        ``max_batch`` rows. Returns them by the signature's names, converted."""
        if self.any_name and len(self.inputs) == 1 and len(arrays) == 1:
            (array,) = arrays.values()
            shape = self.inputs[0].shape
            if array.ndim == 1 and len(shape) == 2 and array.shape[0] == shape[1]:
                array = array.reshape(1, -1)  # one row of a table, as MLServer reads it
            arrays = {self.inputs[0].name: array}
        names = [t.name for t in self.inputs]
        for name in arrays:
            if name not in names:
                raise InferenceInputError(
                    f"unknown input {name!r}; the model takes {', '.join(names)}", tensor=name
                )
        checked: dict[str, np.ndarray[Any, Any]] = {}
        for spec in self.inputs:
            given = arrays.get(spec.name)
            if given is None:
                raise InferenceInputError(f"input {spec.name!r} is missing", tensor=spec.name)
            checked[spec.name] = _check_tensor(spec, given, max_batch)
        return checked


# Up to this many values, finiteness is checked value by value in Python (no NumPy call).
_SMALL = 64


def _check_tensor(
    spec: TensorSpec, array: np.ndarray[Any, Any], max_batch: int
) -> np.ndarray[Any, Any]:
    name, plan = spec.name, spec.plan
    want = plan.want
    if array.dtype != want:
        if array.dtype in plan.also:
            array = array.astype(want)
        elif want.kind != "O" or array.dtype.kind != "O":
            got = "BYTES" if array.dtype.kind == "O" else _name_of(array.dtype)
            raise InferenceInputError(
                f"input {name!r} must be {spec.datatype}, got {got}", tensor=name
            )
    shape = array.shape
    if len(shape) != len(spec.shape) or any(shape[i] != w for i, w in plan.fixed):
        raise InferenceInputError(
            f"input {name!r} must have shape {list(spec.shape)} (-1: any), got {list(shape)}",
            tensor=name,
        )
    if shape and shape[0] > max_batch:
        raise RequestTooLargeError(
            f"input {name!r} has a batch of {shape[0]}; this server takes at most {max_batch}",
            hint="send smaller batches",
        )
    size = array.size
    if not size:
        return array
    if want.kind == "f" and not (
        all(map(math.isfinite, array.ravel().tolist()))
        if size <= _SMALL
        else np.isfinite(array).all()
    ):
        raise InferenceInputError(f"input {name!r} holds NaN or infinite values", tensor=name)
    if plan.allowed is not None:
        outside = ~np.isin(array, plan.allowed)
        if outside.any():
            bad = array[outside].reshape(-1)[0]
            raise InferenceInputError(
                f"input {name!r}: value {_show(bad)} is not one of the allowed categories",
                tensor=name,
            )
    for limit, below in plan.bounds:
        _check_bound(name, array, limit, below)
    return array


def _check_bound(
    name: str, array: np.ndarray[Any, Any], limit: np.ndarray[Any, Any], below: bool
) -> None:
    if limit.ndim == 1 and array.ndim >= 1 and limit.shape[0] != array.shape[-1]:
        raise InferenceInputError(
            f"input {name!r} has {array.shape[-1]} features, the signature bounds {limit.shape[0]}",
            tensor=name,
        )
    outside = array < limit if below else array > limit
    if outside.any():
        where = np.argwhere(outside)[0]
        feature = f" (feature {int(where[-1])})" if limit.ndim == 1 else ""
        word = "below the minimum" if below else "above the maximum"
        value = array[tuple(where)]
        edge = limit[int(where[-1])] if limit.ndim == 1 else limit
        raise InferenceInputError(
            f"input {name!r}: value {_show(value)}{feature} is {word} {_show(edge)}",
            tensor=name,
        )


def _name_of(dtype: np.dtype[Any]) -> str:
    for key, value in DATATYPES.items():
        if key != "BYTES" and np.dtype(value) == dtype:
            return key
    return str(dtype)


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return repr(value[:40])
    return repr(value.item() if hasattr(value, "item") else value)


# ------------------------------------------------------------------------------- reading


def read_signature(data: Any, where: str) -> InputSignature:
    """A signature from its JSON form (``{"inputs": [...], "outputs": [...]}``); an
    :class:`InputError` naming ``where`` and the bad field otherwise."""
    if not isinstance(data, Mapping) or not isinstance(data.get("inputs"), list):
        raise InputError(
            f"{where}: an input signature needs an 'inputs' list",
            hint='write {"inputs": [{"name": ..., "datatype": ..., "shape": [...]}]}',
        )
    inputs = tuple(_spec(item, f"{where}: inputs[{i}]") for i, item in enumerate(data["inputs"]))
    if not inputs:
        raise InputError(f"{where}: the signature has no inputs", hint="declare every input")
    outputs_raw = data.get("outputs", [])
    if not isinstance(outputs_raw, list):
        raise InputError(f"{where}: 'outputs' must be a list", hint="or leave it out")
    outputs = tuple(_spec(item, f"{where}: outputs[{i}]") for i, item in enumerate(outputs_raw))
    names = [t.name for t in inputs]
    if len(set(names)) != len(names):
        raise InputError(f"{where}: two inputs have the same name", hint="name each once")
    return InputSignature(inputs, outputs)


def load_signature_file(path: str | Path) -> InputSignature:
    """A signature from a JSON file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InputError(
            f"cannot read input signature {str(path)!r}: {exc}",
            hint="give a JSON file with an 'inputs' list",
        ) from None
    return read_signature(data, str(path))


def _spec(item: Any, where: str) -> TensorSpec:
    if not isinstance(item, Mapping):
        raise InputError(f"{where} must be an object", hint="give name, datatype and shape")
    name, datatype, shape = item.get("name"), item.get("datatype"), item.get("shape")
    if not isinstance(name, str) or not name:
        raise InputError(f"{where}.name must be a non-empty string", hint="name the tensor")
    if datatype not in DATATYPES:
        raise InputError(
            f"{where}.datatype {datatype!r} is not a protocol datatype",
            hint=f"use one of {', '.join(DATATYPES)}",
        )
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_DIMS
        or not all(type(d) is int and d >= -1 for d in shape)
    ):
        raise InputError(f"{where}.shape must be a list of integers >= -1", hint="-1: any size")
    bounds = {key: _bound(item.get(key), f"{where}.{key}") for key in ("minimum", "maximum")}
    categories = item.get("categories")
    if categories is not None and (
        not isinstance(categories, list)
        or not categories
        or not all(isinstance(c, (int, float, str)) and not isinstance(c, bool) for c in categories)
    ):
        raise InputError(
            f"{where}.categories must be a non-empty list of numbers or strings",
            hint="list the allowed values",
        )
    if categories is not None and datatype == "BYTES":
        categories = [str(c).encode("utf-8") for c in categories]
    return TensorSpec(
        name,
        str(datatype),
        tuple(shape),
        bounds["minimum"],
        bounds["maximum"],
        tuple(categories) if categories is not None else None,
    )


def _bound(value: Any, where: str) -> float | tuple[float, ...] | None:
    if value is None:
        return None
    values = value if isinstance(value, list) else [value]
    if not values or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
    ):
        raise InputError(f"{where} must be a finite number or a list of them", hint="fix it")
    return tuple(float(v) for v in values) if isinstance(value, list) else float(value)


# ------------------------------------------------------------------------------- inference


def from_columns(
    columns: Sequence[np.ndarray[Any, Any]], *, name: str = "input-0", datatype: str = "FP64"
) -> InputSignature:
    """A one-input signature for a table of numeric ``columns`` (validation data): shape
    ``[-1, n]`` and each feature's observed range as its bounds."""
    if not columns:
        raise InputError("the validation data has no feature columns", hint="check the data")
    lows = tuple(float(np.min(c)) for c in columns)
    highs = tuple(float(np.max(c)) for c in columns)
    spec = TensorSpec(name, datatype, (-1, len(columns)), lows, highs, also=("FP32", "INT64"))
    return InputSignature((spec,), source="validation data", any_name=True)


def from_data_file(path: str | Path, *, label: str | None = None) -> InputSignature:
    """A signature inferred from validation data: a ``.npz`` (its ``X`` array, else its first)
    or a CSV of numbers with a header (``label``, when given, is left out)."""
    path = Path(path)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                key = "X" if "X" in data.files else data.files[0]
                table = np.asarray(data[key], dtype=np.float64)
            if table.ndim != 2:
                raise InputError(f"{path}: {key} is not a 2-D table", hint="give rows x features")
            return from_columns([table[:, i] for i in range(table.shape[1])])
        header, *rows = [line.split(",") for line in path.read_text("utf-8").splitlines() if line]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, IndexError) as exc:
        raise InputError(
            f"cannot read validation data {str(path)!r}: {exc}",
            hint="give a CSV with a header or an .npz file",
        ) from None
    keep = [i for i, column in enumerate(header) if column.strip() != label]
    try:
        table = np.array([[float(row[i]) for i in keep] for row in rows], dtype=np.float64)
    except (ValueError, IndexError):
        raise InputError(
            f"{path}: the feature columns must all be numbers", hint="leave out the label column"
        ) from None
    if not len(table):
        raise InputError(f"{path}: no rows", hint="give the validation data")
    return from_columns([table[:, i] for i in range(table.shape[1])])
