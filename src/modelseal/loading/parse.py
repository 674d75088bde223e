"""Parsing verified bytes into framework objects: tensors, pickles and native models.

Called by :func:`modelseal.loading.verified.load_verified` after verification and scanning, with
the very buffers that were hashed; nothing here opens a path.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelseal.errors import TensorFormatError, UnsupportedAlgorithmError, UsageError
from modelseal.hashing.engine import Buffer
from modelseal.hashing.tensors import ITEMSIZE, detect, read_tensors
from modelseal.loading.native import load_native, load_numpy, load_onnx, native_kind, require
from modelseal.loading.pickles import load_pickle, load_torch_module
from modelseal.scanning.allowlist import Allowlist

_NUMPY_DTYPES = {
    "float64": "<f8", "float32": "<f4", "float16": "<f2", "int64": "<i8", "int32": "<i4",
    "int16": "<i2", "int8": "i1", "uint64": "<u8", "uint32": "<u4", "uint16": "<u2",
    "uint8": "u1", "bool": "?", "complex64": "<c8", "complex128": "<c16",
}  # fmt: skip


def parse_buffers(
    root: Path,
    buffers: Mapping[str, Buffer],
    framework: str,
    tensor_type: str | None,
    allowlist: Allowlist,
) -> tuple[Any, str, int, int]:
    """Load ``buffers`` (one file named ``.``, or a directory's files) as ``framework``.

    Returns ``(object, kind, tensors, parameters)``; raises a one-line
    :class:`~modelseal.errors.UsageError` (wrong framework, missing extra),
    :class:`~modelseal.errors.TensorFormatError` (damaged file) or an allow-list refusal.
    """
    weights: dict[str, str] = {}
    for name, data in buffers.items():
        try:
            weights[name] = detect(name, memoryview(data))
        except (TensorFormatError, UnsupportedAlgorithmError):
            continue  # not a weights file (a config, a tokenizer, a pickle)
    if "." in buffers:  # a single-file model
        native = native_kind(buffers["."])
        if native is not None and framework in ("auto", native):
            return load_native(root.name, buffers["."], native)
        if framework in ("xgboost", "lightgbm", "keras", "torchscript"):
            raise UsageError(
                f"{root.name} is not a {framework} model", hint="check --framework (or use auto)"
            )
        kind = weights.get(".")
        return _parse_file(root.name, buffers["."], kind, framework, tensor_type, allowlist)
    if not weights:
        raise UsageError(
            f"no weights file in {str(root)!r} to load",
            hint="point at a model file, or a directory with safetensors/PyTorch weights",
        )
    merged: dict[str, Any] = {}
    params = 0
    for name in sorted(weights):
        if weights[name] not in ("safetensors", "torch", "npz"):
            continue
        obj, _, _, count = _parse_file(
            name, buffers[name], weights[name], framework, tensor_type, allowlist
        )
        if not isinstance(obj, dict):
            raise TensorFormatError(
                f"{name} holds a whole pickled model, not tensors",
                hint="load that file on its own",
            )
        for key, value in obj.items():
            if key in merged:
                raise TensorFormatError(
                    f"tensor {key!r} occurs in more than one file", hint="check the model files"
                )
            merged[key] = value
        params += count
    return merged, "directory", len(merged), params


def _parse_file(
    name: str,
    data: Buffer,
    kind: str | None,
    framework: str,
    tensor_type: str | None,
    allowlist: Allowlist,
) -> tuple[Any, str, int, int]:
    if framework == "pickle" and kind is not None:
        raise UsageError(
            f"{name} is a {_KIND_NAMES.get(kind, kind)} file, not a pickle",
            hint=f"use --framework auto (or {_FRAMEWORK_OF.get(kind, kind)})",
        )
    if framework == "pickle" or (framework == "auto" and kind is None):
        obj, loaded_as = load_pickle(name, data, allowlist)
        return obj, loaded_as, 0, 0
    if kind is None:
        raise UsageError(f"{name} is not a {framework} file", hint="check --framework")
    expected = {
        "safetensors": ("safetensors",),
        "torch": ("torch",),
        "numpy": ("npy", "npz"),
        "onnx": ("onnx",),
    }
    if framework in expected and kind not in expected[framework]:
        raise UsageError(
            f"{name} is a {_KIND_NAMES.get(kind, kind)} file, not {framework}",
            hint="check --framework (or use auto)",
        )
    if kind == "onnx":
        return load_onnx(name, data)
    if kind in ("npy", "npz"):
        return load_numpy(name, data, kind)
    default = "torch" if kind == "torch" else "numpy"
    try:
        tensors = read_tensors(name, data=memoryview(data))
    except TensorFormatError:
        if kind != "torch":
            raise
        # Not a plain state_dict: a whole model or a checkpoint dict, under the allow-list.
        return _load_torch_module(name, data, allowlist)
    as_torch = (tensor_type or default) == "torch"
    out = {t.name: (_to_torch(t) if as_torch else _to_numpy(t)) for t in tensors}
    return out, kind, len(tensors), sum(t.numel for t in tensors)


_KIND_NAMES = {"torch": "PyTorch checkpoint", "npy": "NumPy .npy", "npz": "NumPy .npz"}
_FRAMEWORK_OF = {"npy": "numpy", "npz": "numpy"}


def _load_torch_module(name: str, data: Buffer, allowlist: Allowlist) -> tuple[Any, str, int, int]:
    """A whole pickled object in a PyTorch checkpoint (``torch.save(model)``)."""
    obj = load_torch_module(name, data, allowlist)
    parameters = getattr(obj, "parameters", None)
    if callable(parameters):
        params = list(parameters())
        return obj, "torch-module", len(params), sum(int(p.numel()) for p in params)
    return obj, "torch-module", 0, 0


def _to_numpy(tensor: Any) -> Any:
    np = require("numpy", "numpy")
    dtype = _NUMPY_DTYPES.get(tensor.dtype)
    if dtype is None:
        raise UsageError(
            f"tensor {tensor.name!r} has dtype {tensor.dtype}, which NumPy cannot hold",
            hint="load with tensor_type='torch'",
        )
    return np.frombuffer(tensor.data, dtype=dtype).reshape(tensor.shape)


def _to_torch(tensor: Any) -> Any:
    torch = require("torch", "torch")
    dtype = getattr(torch, tensor.dtype)
    if not tensor.data or len(tensor.data) == 0:
        return torch.empty(tensor.shape, dtype=dtype)
    buffer = tensor.data
    if isinstance(buffer, bytes) or (isinstance(buffer, memoryview) and buffer.readonly):
        buffer = bytearray(buffer)  # torch tensors must own writable memory
    count = len(memoryview(buffer).cast("B")) // ITEMSIZE[tensor.dtype]
    return torch.frombuffer(buffer, dtype=dtype, count=count).reshape(tensor.shape)
