"""Slices on generated data: each slice's metrics are scikit-learn's on that slice's rows, the
gap is the best slice minus the worst, and it passes exactly when it is within the limit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from modelseal.policy.document import parse_policy
from modelseal.policy.metrics.dataset import Dataset
from modelseal.policy.metrics.evaluate import evaluate, features_of
from modelseal.policy.metrics.report import judge_all


class _Replay:
    """A stand-in estimator: predicts the stored label of each row (feature 0 is the row)."""

    def __init__(self, predictions: Any) -> None:
        self.predictions = predictions

    def predict(self, x: Any) -> Any:
        return self.predictions[x[:, 0].astype(int)]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 1), st.integers(0, 1), st.sampled_from(["eu", "us", "apac"])),
        min_size=1,
        max_size=80,
    ),
    st.floats(0, 1),
)
def test_slice_metrics_and_gaps(rows: list[tuple[int, int, str]], limit: float) -> None:
    truth = np.array([t for t, _, _ in rows])
    guess = np.array([p for _, p, _ in rows])
    region = np.array([r for _, _, r in rows])
    columns = {"row": np.arange(len(rows), dtype=np.float64), "label": truth, "region": region}
    dataset = Dataset("memory.npz", "npz", "0" * 64, len(rows), columns)
    policy = parse_policy(
        {
            "metrics": {
                "task": "classification",
                "slices": [
                    {
                        "column": "region",
                        "thresholds": {"accuracy_score": {"threshold": 0.5}},
                        "max_gap": {"accuracy_score": limit},
                    }
                ],
            }
        }
    ).metrics
    assert policy is not None
    result = evaluate(_Replay(guess), policy, dataset, features_of(policy, dataset))
    expected = {
        r: skm.accuracy_score(truth[region == r], guess[region == r]) for r in np.unique(region)
    }
    measured = {m.value: m.metrics["accuracy_score"] for m in result.slices["region"]}
    assert measured == pytest.approx(expected)
    assert [m.rows for m in result.slices["region"]] == [
        int(np.sum(region == r)) for r in np.unique(region)
    ]
    judgements, gaps = judge_all(policy, result, None, "no baseline")
    assert [j.passed for j in judgements] == [v >= 0.5 for v in expected.values()]
    gap = max(expected.values()) - min(expected.values())
    assert gaps[0]["gap"] == pytest.approx(gap)
    assert gaps[0]["passed"] == (gaps[0]["gap"] <= limit)
