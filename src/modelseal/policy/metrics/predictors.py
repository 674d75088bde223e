"""Predictions from an already-loaded model object, in batches, per framework.

* scikit-learn (and any estimator with its API): ``predict``; ``predict_proba`` (with
  ``classes_``) when a metric needs probabilities;
* XGBoost ``Booster``: ``inplace_predict``; its objective says what the output is
  (``binary:logistic`` a probability, ``multi:softprob`` one per class, ``multi:softmax`` a class);
* LightGBM ``Booster``: ``predict`` (a probability for binary, one per class for multiclass);
* ONNX (an ``onnxruntime`` session) and TorchScript modules: the first input gets the features;
  a label output is used as the prediction when there is one, a probability output as scores;
  a single float output is probabilities if its rows are (else logits: softmax, or a sigmoid
  for one column), its argmax the class (classes are then ``0..k-1``).

For regression the prediction is the model's single output, flattened.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import numpy as np

from modelseal.policy.metrics.functions import MetricError

BATCH_ROWS = 65_536
FRAMEWORKS = ("sklearn", "xgboost", "lightgbm", "onnx", "torchscript")


@dataclasses.dataclass(frozen=True)
class Predictions:
    """What a model predicted: labels (or values), and class probabilities when asked for."""

    labels: Any
    scores: Any = None
    classes: Any = None


def framework_of(model: Any) -> str:
    """The framework a loaded model object belongs to; :class:`MetricError` if it cannot predict."""
    kind = type(model)
    module = kind.__module__
    if module.startswith("xgboost") and kind.__name__ == "Booster":
        return "xgboost"
    if module.startswith("lightgbm") and kind.__name__ == "Booster":
        return "lightgbm"
    if module.startswith("onnxruntime"):
        return "onnx"
    if module.startswith("onnx"):
        raise MetricError('running an ONNX model needs onnxruntime (pip install "modelseal[onnx]")')
    if module.startswith("torch"):
        return "torchscript"
    if callable(getattr(model, "predict", None)):
        return "sklearn"
    what = "tensors (weights without a program)" if isinstance(model, dict) else kind.__name__
    raise MetricError(
        f"the model loaded as {what}, which cannot predict: give a scikit-learn, XGBoost, "
        "LightGBM, ONNX or TorchScript model"
    )


def predict(
    model: Any, features: Any, *, task: str, scores: bool, batch_rows: int = BATCH_ROWS
) -> Predictions:
    """Run ``model`` over ``features`` in batches of ``batch_rows`` rows; ``scores``: also
    class probabilities (classification only)."""
    framework = framework_of(model)
    run: Callable[[Any], Predictions] = {
        "sklearn": lambda x: _sklearn(model, x, task, scores),
        "xgboost": lambda x: _xgboost(model, x, task),
        "lightgbm": lambda x: _shaped(np.asarray(model.predict(x)), task, probabilities=True),
        "onnx": lambda x: _onnx(model, x, task),
        "torchscript": lambda x: _torchscript(model, x, task),
    }[framework]
    parts = [run(features[i : i + batch_rows]) for i in range(0, len(features), batch_rows)]
    first = parts[0]
    out = Predictions(
        labels=np.concatenate([p.labels for p in parts]),
        scores=None if first.scores is None else np.concatenate([p.scores for p in parts]),
        classes=first.classes,
    )
    if out.scores is not None and out.classes is None:
        out = dataclasses.replace(out, classes=_classes(out))
    if task == "classification" and scores and out.scores is None:
        raise MetricError(f"this {framework} model gives no class probabilities")
    return out


def _sklearn(model: Any, x: Any, task: str, scores: bool) -> Predictions:
    labels = np.asarray(model.predict(x))
    if task != "classification" or not scores:
        return Predictions(labels.ravel() if task != "classification" else labels)
    if not callable(getattr(model, "predict_proba", None)):
        raise MetricError("the model has no predict_proba: roc_auc and log_loss need probabilities")
    return Predictions(labels, np.asarray(model.predict_proba(x)), np.asarray(model.classes_))


def _xgboost(booster: Any, x: Any, task: str) -> Predictions:
    out = np.asarray(booster.inplace_predict(x))
    if task != "classification":
        return Predictions(out.ravel())
    objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    if objective in ("multi:softmax", "binary:hinge"):
        return Predictions(out.astype(np.int64))
    if objective == "binary:logitraw":
        return _shaped(out, task, probabilities=False)
    return _shaped(out, task, probabilities=True)


def _shaped(out: Any, task: str, *, probabilities: bool | None) -> Predictions:
    """One float output: values (regression), or probabilities / logits (classification).
    ``probabilities=None``: decide from the values."""
    if task != "classification":
        return Predictions(out.ravel())
    if out.ndim == 1 or out.shape[1] == 1:
        p = out.reshape(-1).astype(np.float64)
        if probabilities is False or (probabilities is None and not _unit(p)):
            p = 1.0 / (1.0 + np.exp(-p))
        proba = np.column_stack([1.0 - p, p])
        return Predictions((p > 0.5).astype(np.int64), proba, np.arange(2))
    proba = out.astype(np.float64)
    if probabilities is False or (probabilities is None and not _rows_are_probabilities(proba)):
        shifted = np.exp(proba - proba.max(axis=1, keepdims=True))
        proba = shifted / shifted.sum(axis=1, keepdims=True)
    return Predictions(np.argmax(proba, axis=1), proba, np.arange(proba.shape[1]))


def _classes(out: Predictions) -> Any:
    """The class of each probability column, from the labels a model predicted next to them."""
    seen = np.unique(out.labels)
    width = out.scores.shape[1]
    if len(seen) == width:
        return seen
    if seen.dtype.kind in "iu" and (len(seen) == 0 or (seen.min() >= 0 and seen.max() < width)):
        return np.arange(width)
    raise MetricError(
        "cannot tell which class each probability column is: export the model with class "
        "labels 0..k-1 or a ZipMap output"
    )


def _unit(p: Any) -> bool:
    return bool(p.size == 0 or (p.min() >= 0.0 and p.max() <= 1.0))


def _rows_are_probabilities(p: Any) -> bool:
    return _unit(p) and bool(np.allclose(p.sum(axis=1), 1.0, atol=1e-4))


def _onnx(session: Any, x: Any, task: str) -> Predictions:
    feed = session.get_inputs()[0]
    dtype = {"tensor(double)": np.float64, "tensor(int64)": np.int64}.get(feed.type, np.float32)
    outputs = session.get_outputs()
    values = session.run(None, {feed.name: x.astype(dtype, copy=False)})
    if task != "classification":
        floats = [v for v in values if isinstance(v, np.ndarray) and v.dtype.kind == "f"]
        return Predictions(np.asarray(floats[0] if floats else values[0]).ravel())
    labels = scores = classes = None
    for meta, value in zip(outputs, values, strict=True):
        if meta.type.startswith("seq(map"):  # skl2onnx's ZipMap: one {class: probability} per row
            if value:
                classes = np.array(sorted(value[0]))
                scores = np.array([[row[c] for c in classes] for row in value])
        elif isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "iuUSb":
            labels = value
        elif isinstance(value, np.ndarray) and value.dtype.kind == "f" and scores is None:
            scores = value
    if labels is not None:  # classes of bare probabilities: worked out over every batch
        return Predictions(labels, scores, classes)
    if scores is None:
        raise MetricError("the ONNX model has no numeric output to classify with")
    return _shaped(np.asarray(scores), task, probabilities=None)


def _torchscript(module: Any, x: Any, task: str) -> Predictions:
    import torch

    with torch.no_grad():
        out = module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    if isinstance(out, tuple | list):
        out = out[0]
    return _shaped(out.detach().cpu().numpy(), task, probabilities=None)
