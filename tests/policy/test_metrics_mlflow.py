"""The gate's thresholds decide exactly as MLflow's own model validation
(``mlflow.validate_evaluation_results`` with ``MetricThreshold``) on generated cases: absolute
thresholds, minimum absolute and relative changes, both directions, zero and negative
baselines, values exactly on the boundary, missing metrics and missing baselines. MLflow is a
test-only dependency (the ``gate-test`` extra); its real API is called, never a copy."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from modelseal.policy.document import MetricThreshold
from modelseal.policy.metrics.thresholds import judge, lines

mlflow = pytest.importorskip("mlflow", reason="mlflow-skinny is a gate-test dependency")

from mlflow.models import MetricThreshold as MlflowThreshold  # noqa: E402
from mlflow.models.evaluation import EvaluationResult  # noqa: E402
from mlflow.models.evaluation.validation import ModelValidationFailedException  # noqa: E402

METRICS = ("accuracy_score", "log_loss", "r2_score")
EDGES = [0.0, 1.0, -1.0, 0.5, 0.1, 0.2, 0.3, 0.7, 1e-10, -1e-10, 2.0]
values = st.one_of(st.sampled_from(EDGES), st.floats(-10, 10, allow_nan=False))


@st.composite
def cases(draw: Any) -> tuple[str, dict[str, Any], float | None, float | None]:
    """(metric, threshold arguments, candidate value or None, baseline value or None)."""
    kw: dict[str, Any] = {"greater_is_better": draw(st.booleans())}
    if draw(st.booleans()):
        kw["threshold"] = draw(values)
    if draw(st.booleans()):
        kw["min_absolute_change"] = draw(
            st.one_of(st.sampled_from([0.1, 0.2, 1e-10, 1.0]), st.floats(1e-6, 5))
        )
    if draw(st.booleans()) or len(kw) == 1:
        kw["min_relative_change"] = draw(
            st.one_of(st.sampled_from([0.0, 0.1, 0.5, 1.0]), st.floats(0, 1))
        )
    baseline = draw(st.one_of(st.none(), values))
    candidate = draw(st.one_of(st.none(), values))
    if baseline is not None and draw(st.booleans()):
        # Exactly on a boundary: candidate = baseline +/- change, as MLflow computes it.
        step = kw.get("min_absolute_change", 0.0) * (1 if kw["greater_is_better"] else -1)
        candidate = baseline + step
    return draw(st.sampled_from(METRICS)), kw, candidate, baseline


def _mlflow_passes(metric: str, kw: dict[str, Any], candidate: Any, baseline: Any) -> bool:
    thresholds = {metric: MlflowThreshold(**kw)}  # type: ignore[no-untyped-call]
    result = EvaluationResult  # MLflow's own result type, untyped
    cand = result(metrics={} if candidate is None else {metric: candidate}, artifacts={})  # type: ignore[no-untyped-call]
    base = None if baseline is None else result(metrics={metric: baseline}, artifacts={})  # type: ignore[no-untyped-call]
    try:
        mlflow.validate_evaluation_results(thresholds, cand, base)
    except ModelValidationFailedException:
        return False
    return True


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_decisions_match_mlflow_validation(case: tuple[str, dict[str, Any], Any, Any]) -> None:
    metric, kw, candidate, baseline = case
    # MLflow tests a zero min_relative_change for truth, so without a baseline it does not
    # notice the baseline is missing and fails with a TypeError: no decision to compare.
    assume(
        not (
            baseline is None
            and kw.get("min_relative_change") == 0.0
            and "min_absolute_change" not in kw
            and candidate is not None
        )
    )
    rule = MetricThreshold(**kw)
    ours = judge(
        metric,
        rule,
        {} if candidate is None else {metric: candidate},
        None if baseline is None else {metric: baseline},
    )
    assert ours.passed == _mlflow_passes(metric, kw, candidate, baseline), (ours, kw)
    assert bool(lines(ours)) == (not ours.passed)


def test_each_kind_of_failure_is_one_line_with_required_and_measured() -> None:
    def line(candidate: float | None, baseline: float | None, **kw: Any) -> list[str]:
        rule = MetricThreshold(**kw)
        cand = {} if candidate is None else {"accuracy_score": candidate}
        base = None if baseline is None else {"accuracy_score": baseline}
        return lines(
            judge(
                "accuracy_score",
                rule,
                cand,
                base,
                no_baseline="none: fraud has no production version",
                unmeasured={"accuracy_score": "why"},
            )
        )

    assert line(0.8, None, threshold=0.9) == [
        "metrics: accuracy_score: required >= 0.9; measured 0.8"
    ]
    assert line(0.8, 0.85, min_absolute_change=0.01) == [
        "metrics: accuracy_score: required >= 0.86 (baseline 0.85 + min_absolute_change 0.01); "
        "measured 0.8"
    ]
    assert line(0.86, 0.85, min_relative_change=0.05) == [
        "metrics: accuracy_score: required a relative change >= 0.05 over baseline 0.85; "
        "measured 0.0117647 (0.86)"
    ]
    assert line(0.0, 0.0, min_relative_change=0.05) == [
        "metrics: accuracy_score: required better than baseline 0 (relative change undefined); "
        "measured 0"
    ]
    assert line(0.9, None, min_absolute_change=0.01) == [
        "metrics: accuracy_score: required a baseline to compare with (min_absolute_change); "
        "none: fraud has no production version"
    ]
    assert line(None, 0.9, threshold=0.5) == [
        "metrics: accuracy_score: required a value; could not measure it: why"
    ]
    mse = judge(
        "mean_squared_error", MetricThreshold(threshold=1.0), {"mean_squared_error": 2.5}, None
    )
    assert not mse.greater_is_better
    assert lines(mse) == ["metrics: mean_squared_error: required <= 1; measured 2.5"]


def test_a_threshold_needs_something_to_check() -> None:
    from modelseal.errors import InputError
    from modelseal.policy.document import parse_policy

    with pytest.raises(InputError, match=r"metrics\.thresholds\.accuracy_score: .*no threshold"):
        parse_policy(
            {
                "metrics": {
                    "task": "classification",
                    "thresholds": {"accuracy_score": {"greater_is_better": True}},
                }
            }
        )
    with pytest.raises(InputError, match=r"min_relative_change: Input should be less than or"):
        parse_policy(
            {
                "metrics": {
                    "task": "classification",
                    "thresholds": {"accuracy_score": {"min_relative_change": 2}},
                }
            }
        )
    with pytest.raises(InputError, match="r2_score is not a classification metric"):
        parse_policy(
            {"metrics": {"task": "classification", "thresholds": {"r2_score": {"threshold": 0.5}}}}
        )
