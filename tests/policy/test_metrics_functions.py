"""Every metric the gate computes equals scikit-learn's on generated data (labels of every
kind, ties, missing classes, constant targets), and undefined metrics say why."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from modelseal.policy.metrics import functions as fn

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def labelled(draw: Any, *, classes: int | None = None) -> tuple[Any, Any]:
    """True and predicted labels over 2..5 classes (not every class need appear)."""
    k = classes or draw(st.integers(2, 5))
    n = draw(st.integers(1, 60))
    values = st.integers(0, k - 1)
    truth = np.array(draw(st.lists(values, min_size=n, max_size=n)))
    guess = np.array(draw(st.lists(values, min_size=n, max_size=n)))
    return truth, guess


@st.composite
def scored(draw: Any, *, classes: int) -> tuple[Any, Any]:
    """Labels where every class appears, and probability rows (with ties)."""
    n = draw(st.integers(classes, 50))
    truth = np.array(
        list(range(classes))
        + draw(st.lists(st.integers(0, classes - 1), min_size=n - classes, max_size=n - classes))
    )
    raw = np.array(
        draw(st.lists(st.integers(1, 6), min_size=n * classes, max_size=n * classes)),
        dtype=np.float64,
    ).reshape(n, classes)
    return truth, raw / raw.sum(axis=1, keepdims=True)


@st.composite
def regression(draw: Any) -> tuple[Any, Any]:
    n = draw(st.integers(1, 60))
    floats = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
    truth = np.array(draw(st.lists(floats, min_size=n, max_size=n)))
    if draw(st.booleans()):
        truth = np.full(n, truth[0])  # constant targets: r2's special cases
    guess = np.array(draw(st.lists(floats, min_size=n, max_size=n)))
    if draw(st.booleans()):
        guess = truth.copy()
    return truth, guess


@SETTINGS
@given(labelled())
def test_accuracy_matches_sklearn(data: tuple[Any, Any]) -> None:
    truth, guess = data
    assert fn.accuracy_score(truth, guess) == pytest.approx(skm.accuracy_score(truth, guess))


@SETTINGS
@given(labelled(), st.sampled_from(["micro", "macro", "weighted"]))
def test_precision_recall_f1_match_sklearn(data: tuple[Any, Any], average: str) -> None:
    truth, guess = data
    ours = fn.precision_recall_f1(truth, guess, average=average)
    theirs = (
        skm.precision_score(truth, guess, average=average, zero_division=0),
        skm.recall_score(truth, guess, average=average, zero_division=0),
        skm.f1_score(truth, guess, average=average, zero_division=0),
    )
    assert ours == pytest.approx(theirs, abs=1e-12)


@SETTINGS
@given(labelled(classes=2), st.sampled_from([0, 1]))
def test_binary_precision_recall_f1_match_sklearn(data: tuple[Any, Any], positive: int) -> None:
    truth, guess = data
    ours = fn.precision_recall_f1(truth, guess, average="binary", pos_label=positive)
    kw: dict[str, Any] = {"pos_label": positive, "zero_division": 0}
    if len(np.unique(np.concatenate([truth, guess]))) < 2:
        kw["labels"] = [0, 1]  # sklearn needs to be told the classes a one-class sample has
    theirs = (
        skm.precision_score(truth, guess, **kw),
        skm.recall_score(truth, guess, **kw),
        skm.f1_score(truth, guess, **kw),
    )
    assert ours == pytest.approx(theirs, abs=1e-12)


@SETTINGS
@given(scored(classes=2))
def test_binary_roc_auc_and_log_loss_match_sklearn(data: tuple[Any, Any]) -> None:
    truth, proba = data
    classes = np.arange(2)
    assert fn.roc_auc(truth, proba, classes) == pytest.approx(
        skm.roc_auc_score(truth, proba[:, 1]), abs=1e-12
    )
    assert fn.log_loss(truth, proba, classes) == pytest.approx(
        skm.log_loss(truth, proba, labels=classes), rel=1e-12
    )


@SETTINGS
@given(scored(classes=3), st.sampled_from(["macro", "weighted"]))
def test_multiclass_roc_auc_and_log_loss_match_sklearn(data: tuple[Any, Any], average: str) -> None:
    truth, proba = data
    classes = np.arange(3)
    ours = fn.roc_auc(truth, proba, classes, average=average)
    theirs = skm.roc_auc_score(truth, proba, multi_class="ovr", average=average)
    assert ours == pytest.approx(theirs, abs=1e-12)
    assert fn.log_loss(truth, proba, classes) == pytest.approx(
        skm.log_loss(truth, proba, labels=classes), rel=1e-12
    )


@SETTINGS
@given(regression())
def test_regression_metrics_match_sklearn(data: tuple[Any, Any]) -> None:
    truth, guess = data
    peers = {
        "mean_squared_error": skm.mean_squared_error,
        "root_mean_squared_error": skm.root_mean_squared_error,
        "mean_absolute_error": skm.mean_absolute_error,
        "r2_score": skm.r2_score,
        "max_error": skm.max_error,
        "mean_absolute_percentage_error": skm.mean_absolute_percentage_error,
    }
    assert set(peers) == set(fn.REGRESSION)
    for name, peer in peers.items():
        if name == "r2_score" and len(truth) < 2:  # sklearn: nan and a warning
            with pytest.raises(fn.MetricError, match="fewer than two rows"):
                fn.r2_score(truth, guess)
            continue
        expected = peer(truth, guess)
        assert fn.REGRESSION_FUNCTIONS[name](truth, guess) == pytest.approx(
            expected, rel=1e-9, abs=1e-9
        ), name


def test_text_labels_and_a_named_positive_class() -> None:
    truth = np.array(["ham", "spam", "spam", "ham"])
    guess = np.array(["spam", "spam", "ham", "ham"])
    ours = fn.precision_recall_f1(truth, guess, average="binary", pos_label="spam")
    assert ours == pytest.approx(
        (
            skm.precision_score(truth, guess, pos_label="spam"),
            skm.recall_score(truth, guess, pos_label="spam"),
            skm.f1_score(truth, guess, pos_label="spam"),
        )
    )
    proba = np.array([[0.2, 0.8], [0.3, 0.7], [0.6, 0.4], [0.9, 0.1]])
    classes = np.array(["ham", "spam"])
    assert fn.roc_auc(truth, proba, classes, pos_label="spam") == pytest.approx(
        skm.roc_auc_score(truth == "spam", proba[:, 1])
    )


def test_undefined_metrics_say_why() -> None:
    one_class = np.ones(4, dtype=int)
    proba = np.full((4, 2), 0.5)
    with pytest.raises(fn.MetricError, match="only one class is present"):
        fn.roc_auc(one_class, proba, np.arange(2))
    with pytest.raises(fn.MetricError, match="needs two classes, the data has 3"):
        fn.precision_recall_f1(np.array([0, 1, 2]), np.array([0, 1, 2]), average="binary")
    with pytest.raises(fn.MetricError, match="positive label 1 is not one of the classes"):
        fn.precision_recall_f1(np.array([2, 3]), np.array([2, 3]), average="binary")
    with pytest.raises(fn.MetricError, match="label 7 is not one of the model's classes"):
        fn.log_loss(np.array([0, 7]), proba[:2], np.arange(2))
    with pytest.raises(fn.MetricError, match="labels are text and the model predicts numbers"):
        fn.accuracy_score(np.array(["a", "b"]), np.array([0, 1]))
