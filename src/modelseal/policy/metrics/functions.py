"""Classification and regression metrics in NumPy, with scikit-learn's definitions.

Each function returns what the scikit-learn function of the same name returns (its defaults:
``zero_division`` gives 0, ``r2_score`` is finite, ``log_loss`` clips probabilities to
``[eps, 1 - eps]`` of their dtype); the tests compare them on generated data. They skip
scikit-learn's input validation (the evaluator already knows the shapes), which is most of
scikit-learn's time on large arrays. A metric that is undefined for the data raises
:class:`MetricError` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from modelseal.policy.document import METRICS_BY_TASK

CLASSIFICATION = METRICS_BY_TASK["classification"]
REGRESSION = METRICS_BY_TASK["regression"]
# Whether a larger value is better, by metric (MetricThreshold's greater_is_better default).
GREATER_IS_BETTER = {
    "accuracy_score": True,
    "precision_score": True,
    "recall_score": True,
    "f1_score": True,
    "roc_auc": True,
    "log_loss": False,
    "mean_squared_error": False,
    "root_mean_squared_error": False,
    "mean_absolute_error": False,
    "r2_score": True,
    "max_error": False,
    "mean_absolute_percentage_error": False,
}
# Metrics computed from class probabilities rather than predicted labels.
NEEDS_SCORES = frozenset({"roc_auc", "log_loss"})


class MetricError(ValueError):
    """A metric that is not defined for these labels or predictions (the message says why)."""


def accuracy_score(y_true: Any, y_pred: Any) -> float:
    """The fraction of predictions equal to the true label."""
    _same_kind(y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def precision_recall_f1(
    y_true: Any, y_pred: Any, *, average: str = "binary", pos_label: Any = 1
) -> tuple[float, float, float]:
    """Precision, recall and F1 (``average``: binary, micro, macro or weighted)."""
    _same_kind(y_true, y_pred)
    if average == "binary":
        labels = np.unique(np.concatenate([y_true, y_pred]))
        if len(labels) > 2:
            raise MetricError(
                f"average 'binary' needs two classes, the data has {len(labels)}"
                " (set metrics.average)"
            )
        if len(labels) == 2 and not np.any(labels == pos_label):
            raise MetricError(
                f"the positive label {pos_label!r} is not one of the classes "
                f"{labels.tolist()!r} (set metrics.positive_label)"
            )
        truth, guess = y_true == pos_label, y_pred == pos_label
        tp = np.array([np.count_nonzero(truth & guess)])
        predicted, actual = np.array([np.count_nonzero(guess)]), np.array([np.count_nonzero(truth)])
    else:
        labels, codes = np.unique(np.concatenate([y_true, y_pred]), return_inverse=True)
        t, p = codes[: len(y_true)], codes[len(y_true) :]
        k = len(labels)
        tp = np.bincount(t[t == p], minlength=k)
        predicted, actual = np.bincount(p, minlength=k), np.bincount(t, minlength=k)
        if average == "micro":
            tp, predicted, actual = (
                tp.sum(keepdims=True),
                predicted.sum(keepdims=True),
                actual.sum(keepdims=True),
            )
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, actual)
    f1 = _ratio(2 * tp, predicted + actual)
    if average == "weighted":
        if actual.sum() == 0:
            return 0.0, 0.0, 0.0
        w = actual / actual.sum()
        return float(precision @ w), float(recall @ w), float(f1 @ w)
    return float(np.mean(precision)), float(np.mean(recall)), float(np.mean(f1))


def roc_auc(
    y_true: Any, scores: Any, classes: Any, *, pos_label: Any = 1, average: str = "macro"
) -> float:
    """Area under the ROC curve: binary (the positive class's column of ``scores``) or
    one-vs-rest over every class (``average`` macro or weighted), like scikit-learn's
    ``roc_auc_score(..., multi_class="ovr")``."""
    columns = _columns(y_true, classes)
    if scores.shape[1] == 2:
        positive = _positive_column(classes, pos_label)
        return _binary_auc(columns == positive, scores[:, positive])
    aucs, weights = [], []
    for k in range(scores.shape[1]):
        truth = columns == k
        aucs.append(_binary_auc(truth, scores[:, k]))
        weights.append(np.count_nonzero(truth))
    if average == "weighted":
        return float(np.average(aucs, weights=weights))
    return float(np.mean(aucs))


def log_loss(y_true: Any, scores: Any, classes: Any) -> float:
    """Mean negative log-likelihood of the true class (probabilities clipped like scikit-learn)."""
    columns = _columns(y_true, classes)
    eps = np.finfo(scores.dtype).eps if scores.dtype.kind == "f" else np.finfo(np.float64).eps
    picked = np.clip(scores[np.arange(len(columns)), columns], eps, 1 - eps)
    return float(-np.mean(np.log(picked)))


def mean_squared_error(y_true: Any, y_pred: Any) -> float:
    """Mean of the squared errors."""
    d = _diff(y_true, y_pred)
    return float(np.mean(d * d))


def root_mean_squared_error(y_true: Any, y_pred: Any) -> float:
    """Square root of the mean squared error."""
    return float(np.sqrt(mean_squared_error(y_true, y_pred)))


def mean_absolute_error(y_true: Any, y_pred: Any) -> float:
    """Mean of the absolute errors."""
    return float(np.mean(np.abs(_diff(y_true, y_pred))))


def max_error(y_true: Any, y_pred: Any) -> float:
    """The largest absolute error."""
    return float(np.max(np.abs(_diff(y_true, y_pred))))


def mean_absolute_percentage_error(y_true: Any, y_pred: Any) -> float:
    """Mean of ``|error| / max(|truth|, eps)`` (a fraction, not a percentage)."""
    truth = np.asarray(y_true, dtype=np.float64)
    eps = np.finfo(np.float64).eps
    return float(np.mean(np.abs(_diff(y_true, y_pred)) / np.maximum(np.abs(truth), eps)))


def r2_score(y_true: Any, y_pred: Any) -> float:
    """Coefficient of determination (1.0 for a perfect fit of constant data, 0.0 otherwise)."""
    truth = np.asarray(y_true, dtype=np.float64)
    if len(truth) < 2:
        raise MetricError("r2_score is not defined on fewer than two rows")
    d = _diff(y_true, y_pred)
    numerator = float(np.sum(d * d))
    centred = truth - np.mean(truth)
    denominator = float(np.sum(centred * centred))
    if denominator == 0.0:
        return 1.0 if numerator == 0.0 else 0.0
    return 1.0 - numerator / denominator


REGRESSION_FUNCTIONS: dict[str, Callable[[Any, Any], float]] = {
    "mean_squared_error": mean_squared_error,
    "root_mean_squared_error": root_mean_squared_error,
    "mean_absolute_error": mean_absolute_error,
    "r2_score": r2_score,
    "max_error": max_error,
    "mean_absolute_percentage_error": mean_absolute_percentage_error,
}


def _ratio(numerator: Any, denominator: Any) -> Any:
    """``numerator / denominator``, 0 where the denominator is 0 (zero_division's default)."""
    out = np.zeros(len(numerator), dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _diff(y_true: Any, y_pred: Any) -> Any:
    return np.asarray(y_true, dtype=np.float64) - np.asarray(y_pred, dtype=np.float64)


def _same_kind(y_true: Any, y_pred: Any) -> None:
    text = (y_true.dtype.kind in "USO", y_pred.dtype.kind in "USO")
    if text[0] != text[1]:
        raise MetricError(
            "the labels are "
            + (
                "text and the model predicts numbers"
                if text[0]
                else "numbers and the model predicts text"
            )
        )


def _columns(y_true: Any, classes: Any) -> Any:
    """Each true label's column in the model's class list."""
    classes = np.asarray(classes)
    _same_kind(y_true, classes)
    order = np.argsort(classes, kind="stable")
    ranked = classes[order]
    at = np.clip(np.searchsorted(ranked, y_true), 0, len(ranked) - 1)
    unknown = ranked[at] != y_true
    if np.any(unknown):
        raise MetricError(
            f"label {y_true[np.argmax(unknown)].item()!r} is not one of the model's classes "
            f"{classes.tolist()!r}"
        )
    return order[at]


def _positive_column(classes: Any, pos_label: Any) -> int:
    hits = np.flatnonzero(np.asarray(classes) == pos_label)
    if len(hits) == 0:
        raise MetricError(
            f"the positive label {pos_label!r} is not one of the model's classes "
            f"{np.asarray(classes).tolist()!r} (set metrics.positive_label)"
        )
    return int(hits[0])


def _binary_auc(truth: Any, score: Any) -> float:
    """The Mann-Whitney statistic (ties count one half): the trapezoidal ROC area."""
    positives = int(np.count_nonzero(truth))
    negatives = len(truth) - positives
    if positives == 0 or negatives == 0:
        raise MetricError("only one class is present in the labels, so ROC AUC is undefined")
    order = np.argsort(score, kind="mergesort")
    ranked = score[order]
    # Average ranks (1-based) over runs of tied scores.
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    ends = np.r_[starts[1:], len(ranked)]
    average_rank = (starts + ends + 1) / 2.0
    ranks = np.repeat(average_rank, ends - starts)
    rank_sum = float(np.sum(ranks[truth[order]]))
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)
