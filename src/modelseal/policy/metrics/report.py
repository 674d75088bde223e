"""From measurements to the check's verdict: every threshold judged (overall and per slice,
against the baseline where one is asked for), every slice gap, and the lines a user sees.

A passing check is one line (the dataset and each value against its threshold); a failing
check is one line per failed threshold or gap, each saying what was required and what was
measured.
"""

from __future__ import annotations

from typing import Any

from modelseal.policy.document import MetricsPolicy
from modelseal.policy.metrics.dataset import Dataset
from modelseal.policy.metrics.evaluate import Evaluation, Measured
from modelseal.policy.metrics.functions import GREATER_IS_BETTER
from modelseal.policy.metrics.thresholds import Judgement, judge, lines, number, summary


def judge_all(
    policy: MetricsPolicy, candidate: Evaluation, baseline: Evaluation | None, why_none: str
) -> tuple[list[Judgement], list[dict[str, Any]]]:
    """Every threshold judged, and every slice gap measured against its maximum."""
    overall = None if baseline is None else baseline.overall
    judgements = [
        judge(
            metric,
            rule,
            candidate.overall.metrics,
            _values(overall),
            unmeasured=candidate.overall.errors,
            no_baseline=_why(metric, overall, why_none),
        )
        for metric, rule in policy.thresholds.items()
    ]
    gaps: list[dict[str, Any]] = []
    for rule in policy.slices:
        parts = candidate.slices.get(rule.column, [])
        before = {m.value: m for m in (baseline.slices.get(rule.column, []) if baseline else [])}
        for part in parts:
            base = before.get(part.value)
            reason = why_none if baseline is None else f"the baseline has no rows at {part.label}"
            for metric, threshold in rule.thresholds.items():
                judgements.append(
                    judge(
                        metric,
                        threshold,
                        part.metrics,
                        _values(base),
                        slice_label=part.label,
                        unmeasured=part.errors,
                        no_baseline=_why(metric, base, reason),
                    )
                )
        for metric, limit in rule.max_gap.items():
            gaps.append(_gap(metric, rule.column, limit, parts))
    return judgements, gaps


def render(
    passed: bool, judgements: list[Judgement], gaps: list[dict[str, Any]], dataset: Dataset
) -> list[str]:
    """The lines of the check (see the module docstring)."""
    if not passed:
        out = [line for j in judgements if not j.passed for line in lines(j)]
        return out + [g["line"] for g in gaps if not g["passed"]]
    name = dataset.path.replace("\\", "/").rsplit("/", 1)[-1]
    where = f"{name} ({dataset.rows} rows, sha256:{dataset.sha256[:16]}...)"
    parts = [summary(j) for j in judgements] + [g["line"] for g in gaps]
    if not parts:
        return [f"metrics: measured on {where}; the policy sets no threshold"]
    return [f"metrics: every threshold met on {where}: " + "; ".join(parts)]


def _values(measured: Measured | None) -> dict[str, float] | None:
    return None if measured is None else measured.metrics


def _why(metric: str, baseline: Measured | None, why_none: str) -> str:
    if baseline is None:
        return why_none
    error = baseline.errors.get(metric)
    return f"the baseline's could not be measured: {error}" if error else "not measured"


def _gap(metric: str, column: str, limit: float, parts: list[Measured]) -> dict[str, Any]:
    """The spread of ``metric`` across the slices of ``column`` against ``limit``."""
    values = {p.value: p.metrics[metric] for p in parts if metric in p.metrics}
    entry: dict[str, Any] = {"metric": metric, "column": column, "max_gap": limit, "slices": values}
    head = f"metrics: {metric} gap across {column} slices"
    missing = [p for p in parts if metric not in p.metrics]
    if missing:
        why = missing[0].errors.get(metric, "not measured")
        return {
            **entry,
            "gap": None,
            "passed": False,
            "line": f"{head}: required a value in every slice; could not measure it at "
            f"{missing[0].label}: {why}",
        }
    if not values:
        return {
            **entry,
            "gap": None,
            "passed": False,
            "line": f"{head}: required slices to compare; the data has none",
        }
    better = GREATER_IS_BETTER[metric]
    best = (max if better else min)(values, key=lambda v: values[v])
    worst = (min if better else max)(values, key=lambda v: values[v])
    gap = abs(values[best] - values[worst])
    passed = gap <= limit
    if passed:
        line = f"{metric} gap across {column} {number(gap)} (<= {number(limit)})"
    else:
        line = (
            f"{head}: required <= {number(limit)}; measured {number(gap)} (best {column}={best} "
            f"{number(values[best])}, worst {column}={worst} {number(values[worst])})"
        )
    return {**entry, "gap": gap, "best": best, "worst": worst, "passed": passed, "line": line}
