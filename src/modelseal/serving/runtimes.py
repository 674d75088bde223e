"""Runtimes: the call into a loaded model's framework, and what the model says it takes.

Each runtime wraps an object that :mod:`modelseal.loading` produced from verified, scanned
bytes; nothing here reads a file. Inputs arrive already checked against the signature.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from modelseal.errors import InferenceInputError, UsageError
from modelseal.serving.signature import InputSignature, TensorSpec

_TABULAR_TYPES = ("FP32", "INT32", "INT64", "FP16")
_ONNX_TYPES = {
    "tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(float16)": "FP16",
    "tensor(int8)": "INT8", "tensor(int16)": "INT16", "tensor(int32)": "INT32",
    "tensor(int64)": "INT64", "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32", "tensor(uint64)": "UINT64", "tensor(bool)": "BOOL",
    "tensor(string)": "BYTES",
}  # fmt: skip


# A call that typically takes less than this, on a batch of at most INLINE_ROWS rows, runs on
# the event loop: handing it to a worker thread costs more than the call (and, with many
# connections, makes the threads fight over the GIL). Anything slower goes to a thread.
INLINE_SECONDS = 0.005
INLINE_ROWS = 256


class Runtime:
    """A framework call: ``predict`` maps checked inputs to named outputs."""

    framework = "unknown"
    platform = "unknown"
    # Seconds a call has typically taken (a moving average; None: never called yet).
    typical_seconds: float | None = None

    def timed_predict(
        self, inputs: Mapping[str, np.ndarray[Any, Any]], outputs: Sequence[str]
    ) -> dict[str, np.ndarray[Any, Any]]:
        """:meth:`predict`, keeping :attr:`typical_seconds` up to date."""
        started = time.perf_counter()
        results = self.predict(inputs, outputs)
        took = time.perf_counter() - started
        typical = self.typical_seconds
        self.typical_seconds = took if typical is None else 0.9 * typical + 0.1 * took
        return results

    def runs_inline(self, inputs: Mapping[str, np.ndarray[Any, Any]]) -> bool:
        """Whether a call on ``inputs`` is known to be quick enough for the event loop."""
        typical = self.typical_seconds
        if typical is None or typical >= INLINE_SECONDS:
            return False
        return all(a.ndim == 0 or a.shape[0] <= INLINE_ROWS for a in inputs.values())

    def default_signature(self) -> InputSignature | None:
        """What the model itself says it takes (``None``: it does not say)."""
        return None

    def output_names(self) -> tuple[str, ...]:
        """The outputs this runtime can give, the first one being the default."""
        return ("predict",)

    def predict(
        self, inputs: Mapping[str, np.ndarray[Any, Any]], outputs: Sequence[str]
    ) -> dict[str, np.ndarray[Any, Any]]:
        """Run the model on ``inputs``; return the requested ``outputs`` (default: all)."""
        raise NotImplementedError


def _tabular(n: int | None, name: str = "input-0") -> InputSignature | None:
    if n is None or n <= 0:
        return None
    spec = TensorSpec(name, "FP64", (-1, int(n)), also=_TABULAR_TYPES)
    return InputSignature((spec,), source="model", any_name=True)


def _only(inputs: Mapping[str, np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
    (array,) = inputs.values()
    return array


class SklearnRuntime(Runtime):
    """A scikit-learn estimator or pipeline: ``predict``, and ``predict_proba`` when the
    estimator has it and the request asks for it."""

    framework = "sklearn"
    platform = "sklearn"

    def __init__(self, model: Any) -> None:
        self.model = model

    def default_signature(self) -> InputSignature | None:
        """``[-1, n_features_in_]`` numbers."""
        return _tabular(getattr(self.model, "n_features_in_", None))

    def output_names(self) -> tuple[str, ...]:
        """``predict``, then ``predict_proba`` where the estimator has it."""
        extra = ("predict_proba",) if hasattr(self.model, "predict_proba") else ()
        return ("predict", *extra)

    def predict(
        self, inputs: Mapping[str, np.ndarray[Any, Any]], outputs: Sequence[str]
    ) -> dict[str, np.ndarray[Any, Any]]:
        """Call the estimator's methods the outputs name."""
        x = _only(inputs)
        return {name: np.asarray(getattr(self.model, name)(x)) for name in outputs or ("predict",)}


class XGBoostRuntime(Runtime):
    """An XGBoost ``Booster`` (its native JSON or UBJSON model)."""

    framework = "xgboost"
    platform = "xgboost"

    def __init__(self, booster: Any) -> None:
        self.booster = booster

    def default_signature(self) -> InputSignature | None:
        """``[-1, num_features]`` numbers."""
        return _tabular(int(self.booster.num_features()))

    def output_names(self) -> tuple[str, ...]:
        """``predict``, and ``predict_proba`` (the same values) for classifiers, as MLServer
        names them."""
        objective = str(_xgb_objective(self.booster))
        extra = ("predict_proba",) if objective.startswith(("binary:", "multi:")) else ()
        return ("predict", *extra)

    def predict(
        self, inputs: Mapping[str, np.ndarray[Any, Any]], outputs: Sequence[str]
    ) -> dict[str, np.ndarray[Any, Any]]:
        """``inplace_predict`` on the batch."""
        values = np.asarray(self.booster.inplace_predict(_only(inputs)))
        return {name: values for name in outputs or ("predict",)}


def _xgb_objective(booster: Any) -> str:
    import json

    try:
        config = json.loads(booster.save_config())
        return str(config["learner"]["objective"]["name"])
    except (ValueError, KeyError, TypeError):
        return ""


class LightGBMRuntime(Runtime):
    """A LightGBM ``Booster`` (its text model)."""

    framework = "lightgbm"
    platform = "lightgbm"

    def __init__(self, booster: Any) -> None:
        self.booster = booster

    def default_signature(self) -> InputSignature | None:
        """``[-1, num_feature]`` numbers."""
        return _tabular(int(self.booster.num_feature()))

    def output_names(self) -> tuple[str, ...]:
        """``predict``, and ``predict_proba`` (the same values) for classifiers."""
        objective = str(self.booster.params.get("objective", ""))
        classifier = objective.startswith(("binary", "multiclass", "cross_entropy"))
        return ("predict", "predict_proba") if classifier else ("predict",)

    def predict(
        self, inputs: Mapping[str, np.ndarray[Any, Any]], outputs: Sequence[str]
    ) -> dict[str, np.ndarray[Any, Any]]:
        """``predict`` on the batch."""
        values = np.asarray(self.booster.predict(_only(inputs)))
        return {name: values for name in outputs or ("predict",)}


class OnnxRuntime(Runtime):
    """An ONNX Runtime inference session: inputs and outputs are the graph's."""

    framework = "onnx"
    platform = "onnxruntime_onnx"

    def __init__(self, session: Any) -> None:
        self.session = session
        self._inputs = list(session.get_inputs())
        self._outputs = [o.name for o in session.get_outputs()]

    def default_signature(self) -> InputSignature | None:
        """The graph's inputs and outputs (symbolic dimensions are ``-1``)."""

        def spec(arg: Any) -> TensorSpec | None:
            datatype = _ONNX_TYPES.get(arg.type)
            if datatype is None:
                return None
            shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in arg.shape or ())
            return TensorSpec(arg.name, datatype, shape)

        inputs = [spec(a) for a in self._inputs]
        outputs = [spec(a) for a in self.session.get_outputs()]
        if any(s is None for s in inputs):
            return None
        return InputSignature(
            tuple(s for s in inputs if s is not None),
            tuple(s for s in outputs if s is not None),
            source="model",
        )

    def output_names(self) -> tuple[str, ...]:
        """The graph's outputs."""
        return tuple(self._outputs)

    def predict(
        self, inputs: Mapping[str, np.ndarray[Any, Any]], outputs: Sequence[str]
    ) -> dict[str, np.ndarray[Any, Any]]:
        """``session.run`` with the named outputs."""
        names = list(outputs) or self._outputs
        feed = {k: (v.astype(str) if v.dtype == object else v) for k, v in inputs.items()}
        results = self.session.run(names, feed)
        return {n: np.asarray(r) for n, r in zip(names, results, strict=True)}


class TorchScriptRuntime(Runtime):
    """A TorchScript module, called with the inputs in signature order; its outputs are
    ``output-0``, ``output-1``, ... (a tensor, or a tuple or list of tensors)."""

    framework = "torchscript"
    platform = "pytorch_torchscript"

    def __init__(self, module: Any, signature: InputSignature | None) -> None:
        self.module = module
        self.order = [t.name for t in signature.inputs] if signature else []
        self.count = len(signature.outputs) if signature and signature.outputs else 1

    def output_names(self) -> tuple[str, ...]:
        """``output-0`` ... for each declared output."""
        return tuple(f"output-{i}" for i in range(self.count))

    def predict(
        self, inputs: Mapping[str, np.ndarray[Any, Any]], outputs: Sequence[str]
    ) -> dict[str, np.ndarray[Any, Any]]:
        """Call the module under ``torch.inference_mode``."""
        import torch

        args = [torch.from_numpy(np.ascontiguousarray(inputs[name])) for name in self.order]
        with torch.inference_mode():
            result = self.module(*args)
        items = result if isinstance(result, (tuple, list)) else (result,)
        out = {f"output-{i}": np.asarray(r.detach().cpu().numpy()) for i, r in enumerate(items)}
        return {k: v for k, v in out.items() if not outputs or k in outputs}


def runtime_for(obj: Any, framework: str, signature: InputSignature | None) -> Runtime:
    """The runtime for a loaded model object (by its type, or ``framework`` when given)."""
    kind = type(obj).__module__.split(".")[0]
    if framework == "torchscript" or kind == "torch":
        return TorchScriptRuntime(obj, signature)
    if kind == "xgboost":
        if type(obj).__name__ == "Booster":
            return XGBoostRuntime(obj)
        return SklearnRuntime(obj)  # the scikit-learn wrappers
    if kind == "lightgbm":
        if type(obj).__name__ == "Booster":
            return LightGBMRuntime(obj)
        return SklearnRuntime(obj)
    if kind == "onnxruntime":
        return OnnxRuntime(obj)
    if callable(getattr(obj, "predict", None)):
        return SklearnRuntime(obj)
    raise UsageError(
        f"cannot serve a {type(obj).__module__}.{type(obj).__qualname__} object",
        hint="serve a scikit-learn, XGBoost, LightGBM, ONNX or TorchScript model",
    )


def check_outputs(runtime: Runtime, requested: Sequence[str]) -> None:
    """Refuse outputs the model does not give."""
    known = runtime.output_names()
    for name in requested:
        if name not in known:
            raise InferenceInputError(
                f"unknown output {name!r}; the model gives {', '.join(known)}", tensor=name
            )
