"""Measure a loaded model on a dataset: the policy's metrics overall and per slice.

The model predicts once (in batches); every metric, overall and in each slice, is computed from
those predictions. A metric that is undefined (ROC AUC on a slice with one class, say) is
recorded with the reason instead of a value; the threshold on it then fails.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from modelseal.errors import first_line
from modelseal.policy.document import MetricsPolicy
from modelseal.policy.metrics import functions as fn
from modelseal.policy.metrics.dataset import Dataset
from modelseal.policy.metrics.predictors import Predictions, predict


@dataclasses.dataclass(frozen=True)
class Measured:
    """Metric values on some rows (all of them, or one slice), and why any are missing."""

    rows: int
    metrics: dict[str, float]
    errors: dict[str, str]
    column: str | None = None
    value: str | None = None

    @property
    def label(self) -> str | None:
        """``column=value`` for a slice; ``None`` for the whole dataset."""
        return None if self.column is None else f"{self.column}={self.value}"

    def to_dict(self) -> dict[str, Any]:
        """As recorded in the evidence (the ML-BOM reads ``metrics`` and slices' ``column``)."""
        out: dict[str, Any] = {"rows": self.rows, "metrics": dict(self.metrics)}
        if self.column is not None:
            out = {"column": self.column, "value": self.value, **out}
        if self.errors:
            out["unmeasured"] = dict(self.errors)
        return out


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """One model on one dataset: overall, and per slice column its slices."""

    overall: Measured
    slices: dict[str, list[Measured]]

    def to_dict(self) -> dict[str, Any]:
        """Overall metrics plus every slice, for the evidence."""
        parts = [m.to_dict() for ms in self.slices.values() for m in ms]
        return {**self.overall.to_dict(), "slices": parts}


def wanted(policy: MetricsPolicy) -> tuple[list[str], dict[str, list[str]]]:
    """The metrics to measure overall, and per slice column."""
    overall = _unique([*policy.thresholds, *policy.report])
    per_column: dict[str, list[str]] = {}
    for rule in policy.slices:
        per_column.setdefault(rule.column, [])
        per_column[rule.column] = _unique(
            [*per_column[rule.column], *rule.thresholds, *rule.max_gap]
        )
    return overall, per_column


def features_of(policy: MetricsPolicy, dataset: Dataset) -> Any:
    """The feature matrix the policy names (default: every column but the label and slices)."""
    exclude = [policy.label, *(rule.column for rule in policy.slices)]
    return dataset.features(policy.features, exclude)


def evaluate(model: Any, policy: MetricsPolicy, dataset: Dataset, features: Any) -> Evaluation:
    """Predict with ``model`` on ``features`` and measure what ``policy`` asks for."""
    overall_names, per_column = wanted(policy)
    every = {*overall_names, *(n for names in per_column.values() for n in names)}
    truth = dataset.column(policy.label, "label")
    needs_scores = policy.task == "classification" and bool(every & fn.NEEDS_SCORES)
    try:
        predictions = predict(model, features, task=policy.task, scores=needs_scores)
    except Exception as exc:  # the model's own code failing on the data: a reason, not a crash
        first = first_line(exc, None)
        reason = (
            first if isinstance(exc, fn.MetricError) else f"the model could not predict: {first}"
        )
        missing = Measured(dataset.rows, {}, dict.fromkeys(every, reason))
        unmeasured = {c: [dataclasses.replace(missing, column=c, value="*")] for c in per_column}
        return Evaluation(missing, unmeasured)
    if policy.task == "classification":
        truth = _as_label_type(truth, predictions.labels)
    average = policy.average or _default_average(truth, predictions.labels)
    pos_label = 1 if policy.positive_label is None else policy.positive_label
    measure = _Measure(policy.task, average, pos_label)
    overall = measure(overall_names, truth, predictions)
    overall = dataclasses.replace(overall, rows=dataset.rows)
    slices: dict[str, list[Measured]] = {}
    for column, names in per_column.items():
        values = dataset.column(column, "slice")
        slices[column] = []
        for value in np.unique(values):
            mask = values == value
            part = measure(names, truth[mask], _subset(predictions, mask))
            slices[column].append(dataclasses.replace(part, column=column, value=_text(value)))
    return Evaluation(overall, slices)


@dataclasses.dataclass(frozen=True)
class _Measure:
    task: str
    average: str
    pos_label: Any

    def __call__(self, names: Sequence[str], truth: Any, predicted: Predictions) -> Measured:
        values: dict[str, float] = {}
        errors: dict[str, str] = {}
        prf: tuple[float, float, float] | None = None
        for name in names:
            try:
                if name in ("precision_score", "recall_score", "f1_score"):
                    if prf is None:
                        prf = fn.precision_recall_f1(
                            truth, predicted.labels, average=self.average, pos_label=self.pos_label
                        )
                    value = prf[("precision_score", "recall_score", "f1_score").index(name)]
                elif name == "accuracy_score":
                    value = fn.accuracy_score(truth, predicted.labels)
                elif name == "roc_auc":
                    avg = "weighted" if self.average == "weighted" else "macro"
                    value = fn.roc_auc(
                        truth,
                        predicted.scores,
                        predicted.classes,
                        pos_label=self.pos_label,
                        average=avg,
                    )
                elif name == "log_loss":
                    value = fn.log_loss(truth, predicted.scores, predicted.classes)
                else:
                    value = fn.REGRESSION_FUNCTIONS[name](truth, predicted.labels)
            except fn.MetricError as exc:
                errors[name] = str(exc)
                continue
            if not np.isfinite(value):
                errors[name] = f"the value is {value}"
                continue
            values[name] = value
        return Measured(len(truth), values, errors)


def _default_average(truth: Any, labels: Any) -> str:
    """MLflow's choice: binary for two classes, weighted for more."""
    try:
        classes = len(np.unique(np.concatenate([truth, labels])))
    except (TypeError, ValueError):
        return "weighted"
    return "binary" if classes <= 2 else "weighted"


def _as_label_type(truth: Any, labels: Any) -> Any:
    """Text labels read from CSV compared with numeric predictions (or the reverse): numbers
    written as text ("1") are compared as numbers."""
    if truth.dtype.kind in "US" and labels.dtype.kind in "biuf":
        try:
            return truth.astype(np.float64)
        except ValueError:
            return truth
    return truth


def _subset(p: Predictions, mask: Any) -> Predictions:
    return Predictions(p.labels[mask], None if p.scores is None else p.scores[mask], p.classes)


def _text(value: Any) -> str:
    if isinstance(value, np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))
