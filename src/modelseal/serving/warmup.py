"""Warming a model before it serves: one call on a request its input signature accepts.

A new version is called once before it is swapped in, so the first real request pays none of
the framework's first-call costs, the server knows whether the call is quick enough to run on
the event loop, and the model metadata can state what each output really is (datatype and
shape) rather than a guess.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from modelseal.errors import first_line
from modelseal.serving.runtimes import Runtime
from modelseal.serving.signature import InputSignature, TensorSpec
from modelseal.serving.tensors import DATATYPES, datatype_of

log = logging.getLogger("modelseal.serve")


def sample(spec: TensorSpec) -> np.ndarray[Any, Any]:
    """One row the spec accepts: its first category, else its lower bound (or 0 within the
    bounds), with every free dimension 1."""
    shape = tuple(1 if d == -1 else d for d in spec.shape)
    if spec.datatype == "BYTES":
        first = spec.categories[0] if spec.categories else b""
        value = first if isinstance(first, bytes) else str(first).encode()
        return np.full(shape, value, dtype=object)
    dtype = np.dtype(DATATYPES[spec.datatype])
    if spec.categories:
        return np.full(shape, spec.categories[0], dtype=dtype)
    low = None if spec.minimum is None else np.asarray(spec.minimum, dtype=np.float64)
    high = None if spec.maximum is None else np.asarray(spec.maximum, dtype=np.float64)
    values = np.zeros(shape[-1:] if shape else (), dtype=np.float64)
    if low is not None:
        values = np.maximum(values, low)
    if high is not None:
        values = np.minimum(values, high)
    if dtype.kind in "iub":
        values = np.ceil(values)
    return np.broadcast_to(values.astype(dtype), shape).copy()


def warm(runtime: Runtime, signature: InputSignature) -> tuple[list[dict[str, Any]], str]:
    """Call ``runtime`` once with every output on a sample of ``signature``: each output's
    metadata (name, datatype, shape with a free batch), and ``""`` or why the call failed."""
    try:
        inputs = {spec.name: sample(spec) for spec in signature.inputs}
        checked = signature.check(inputs, max_batch=1 << 30)
        names = list(runtime.output_names())
        results = runtime.timed_predict(checked, names)
        outputs = []
        for name in names:
            array = np.asarray(results[name])
            shape = [-1, *array.shape[1:]] if array.ndim else []
            outputs.append({"name": name, "datatype": datatype_of(array), "shape": shape})
        return outputs, ""
    except Exception as exc:  # a model that cannot answer its own sample still serves
        why = first_line(exc)
        log.warning("warming the model up failed (it is served anyway): %s", why)
        return [], why
