"""The metrics check: the model measured on validation data against the policy's thresholds
(and against the baseline version), through :mod:`modelseal.policy.metrics`."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from modelseal.policy.decision import CheckResult
from modelseal.policy.document import LoadedPolicy

if TYPE_CHECKING:
    from modelseal.registry.backend import Backend


def measure(
    loaded: LoadedPolicy,
    subject: Any,
    data: str | os.PathLike[str],
    baseline: str | None,
    backend: Backend | None,
) -> CheckResult:
    """Measure the subject's model on ``data`` under the policy's metrics section."""
    return CheckResult(
        check="metrics",
        passed=False,
        lines=["metrics: the metrics evaluator is not part of this build yet; failing closed"],
    )
