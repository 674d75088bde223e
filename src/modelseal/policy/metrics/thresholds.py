"""Thresholds with the semantics of MLflow's ``MetricThreshold`` and
``mlflow.validate_evaluation_results`` (the tests compare decisions with MLflow's own).

For a metric where greater is better (lower: mirror every comparison):

* ``threshold``: the value must be ``>= threshold``;
* ``min_absolute_change``: the value must be ``>= baseline + min_absolute_change``;
* ``min_relative_change``: ``(value - baseline) / |baseline|`` must be ``>=`` it; when the
  baseline is 0 the value must instead be ``>= baseline + 1e-10``;
* a change threshold without a baseline value fails (the comparison cannot be made), and a
  metric that could not be measured fails.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from modelseal.policy.document import MetricThreshold
from modelseal.policy.metrics.functions import GREATER_IS_BETTER

# MLflow's stand-in for "better than the baseline" when a relative change is undefined.
ZERO_BASELINE_MARGIN = 1e-10


@dataclasses.dataclass(frozen=True)
class Judgement:
    """One metric (overall or in one slice) against its thresholds."""

    metric: str
    slice: str | None
    rule: MetricThreshold
    greater_is_better: bool
    value: float | None
    baseline: float | None
    missing_candidate: str | None = None  # why the metric could not be measured
    missing_baseline: str | None = None  # why there is no baseline value to compare with
    threshold_failed: bool = False
    min_absolute_change_failed: bool = False
    min_relative_change_failed: bool = False
    relative_change: float | None = None

    @property
    def passed(self) -> bool:
        """Whether every threshold on this metric held."""
        return not (
            self.missing_candidate
            or self.missing_baseline
            or self.threshold_failed
            or self.min_absolute_change_failed
            or self.min_relative_change_failed
        )

    @property
    def comparator(self) -> str:
        """``>=`` when greater is better, else ``<=``."""
        return ">=" if self.greater_is_better else "<="

    def to_dict(self) -> dict[str, Any]:
        """The predicate entry: value, comparator, thresholds, baseline, pass/fail."""
        failed = [
            name
            for name, flag in (
                ("value", bool(self.missing_candidate)),
                ("baseline", bool(self.missing_baseline)),
                ("threshold", self.threshold_failed),
                ("min_absolute_change", self.min_absolute_change_failed),
                ("min_relative_change", self.min_relative_change_failed),
            )
            if flag
        ]
        return {
            "metric": self.metric,
            "slice": self.slice,
            "value": self.value,
            "comparator": self.comparator,
            "threshold": self.rule.threshold,
            "min_absolute_change": self.rule.min_absolute_change,
            "min_relative_change": self.rule.min_relative_change,
            "greater_is_better": self.greater_is_better,
            "baseline": self.baseline,
            "relative_change": self.relative_change,
            "passed": self.passed,
            "failed": failed,
            "reason": self.missing_candidate or self.missing_baseline,
        }


def needs_baseline(rule: MetricThreshold) -> bool:
    """Whether ``rule`` compares with a baseline."""
    return rule.min_absolute_change is not None or rule.min_relative_change is not None


def judge(
    metric: str,
    rule: MetricThreshold,
    candidate: Mapping[str, float],
    baseline: Mapping[str, float] | None,
    *,
    slice_label: str | None = None,
    unmeasured: Mapping[str, str] | None = None,
    no_baseline: str = "no baseline",
) -> Judgement:
    """``metric`` of the candidate against ``rule`` (and the baseline's value, if any);
    ``unmeasured`` says why a metric missing from ``candidate`` could not be measured."""
    better = GREATER_IS_BETTER[metric] if rule.greater_is_better is None else rule.greater_is_better
    base = None if baseline is None else baseline.get(metric)
    common: dict[str, Any] = {
        "metric": metric,
        "slice": slice_label,
        "rule": rule,
        "greater_is_better": better,
    }
    value = candidate.get(metric)
    if value is None:
        why = (unmeasured or {}).get(metric, "not measured")
        return Judgement(**common, value=None, baseline=base, missing_candidate=why)

    def at_least(x: float, bound: float) -> bool:  # "no worse than", by direction
        return x >= bound if better else x <= bound

    threshold_failed = rule.threshold is not None and not at_least(value, rule.threshold)
    if not needs_baseline(rule):
        return Judgement(**common, value=value, baseline=base, threshold_failed=threshold_failed)
    if base is None:
        return Judgement(
            **common,
            value=value,
            baseline=None,
            threshold_failed=threshold_failed,
            missing_baseline=no_baseline,
        )
    step = 1.0 if better else -1.0
    absolute_failed = rule.min_absolute_change is not None and not at_least(
        value, base + step * rule.min_absolute_change
    )
    relative_failed, relative = False, None
    if rule.min_relative_change is not None:
        if base == 0:
            relative_failed = not at_least(value, base + step * ZERO_BASELINE_MARGIN)
        else:
            relative = (value - base) / abs(base) if better else (base - value) / abs(base)
            relative_failed = relative < rule.min_relative_change
    return Judgement(
        **common,
        value=value,
        baseline=base,
        threshold_failed=threshold_failed,
        min_absolute_change_failed=absolute_failed,
        min_relative_change_failed=relative_failed,
        relative_change=relative,
    )


def lines(j: Judgement) -> list[str]:
    """What a user sees for a failed judgement: one line per failed part, each saying what
    was required and what was measured."""
    name = j.metric if j.slice is None else f"{j.metric}[{j.slice}]"
    op, rule = j.comparator, j.rule
    if j.missing_candidate:
        return [f"metrics: {name}: required a value; could not measure it: {j.missing_candidate}"]
    out = []
    if j.threshold_failed:
        out.append(
            f"metrics: {name}: required {op} {number(rule.threshold)}; measured {number(j.value)}"
        )
    if j.missing_baseline:
        kinds = " and ".join(
            k
            for k in ("min_absolute_change", "min_relative_change")
            if getattr(rule, k) is not None
        )
        out.append(
            f"metrics: {name}: required a baseline to compare with ({kinds}); {j.missing_baseline}"
        )
        return out
    sign = "+" if j.greater_is_better else "-"
    if j.min_absolute_change_failed:
        bound = _bound(j, rule.min_absolute_change or 0.0)
        out.append(
            f"metrics: {name}: required {op} {number(bound)} (baseline {number(j.baseline)} {sign} "
            f"min_absolute_change {number(rule.min_absolute_change)}); measured {number(j.value)}"
        )
    if j.min_relative_change_failed:
        if j.relative_change is None:  # a zero baseline: only "better than it" can be asked
            out.append(
                f"metrics: {name}: required better than baseline 0 (relative change undefined); "
                f"measured {number(j.value)}"
            )
        else:
            out.append(
                f"metrics: {name}: required a relative change >= "
                f"{number(rule.min_relative_change)} over baseline {number(j.baseline)}; "
                f"measured {number(j.relative_change)} ({number(j.value)})"
            )
    return out


def summary(j: Judgement) -> str:
    """A passing judgement in a few words (``accuracy_score 0.93 >= 0.9``)."""
    name = j.metric if j.slice is None else f"{j.metric}[{j.slice}]"
    parts = []
    if j.rule.threshold is not None:
        parts.append(f"{j.comparator} {number(j.rule.threshold)}")
    if j.rule.min_absolute_change is not None:
        parts.append(f"{j.comparator} {number(_bound(j, j.rule.min_absolute_change))}")
    if j.rule.min_relative_change is not None:
        change = j.relative_change
        parts.append(f"relative change {number(change) if change is not None else 'n/a'}")
    return f"{name} {number(j.value)} ({', '.join(parts)})"


def _bound(j: Judgement, change: float) -> float:
    base = j.baseline or 0.0
    return base + change if j.greater_is_better else base - change


def number(value: float | None) -> str:
    """A metric value as a user reads it (six significant digits)."""
    return "none" if value is None else f"{value:.6g}"
