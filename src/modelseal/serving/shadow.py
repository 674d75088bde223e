"""Shadow mode: mirror a served model's traffic to a candidate version, compare its outputs
with the served ones, and never return them.

The candidate passed the same checks as any served model (verified, scanned, gated). Each
answered request is handed to it after the answer is computed, on one background thread with a
bounded queue: a slow or failing candidate can neither delay nor change an answer, and requests
it cannot keep up with are dropped and counted. Only the comparison is kept (counts and the
largest difference), never a payload.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from modelseal.serving.metrics import ServerMetrics
from modelseal.serving.source import Loaded

CAPACITY = 64  # requests waiting for the candidate before new ones are dropped


class Shadow:
    """One candidate mirroring one served model."""

    def __init__(self, model: str, candidate: Loaded, metrics: ServerMetrics) -> None:
        self.model, self.candidate, self.metrics = model, candidate, metrics
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"shadow-{model}")
        self._lock = threading.Lock()
        self._pending = 0
        self.counts = {"same": 0, "different": 0, "error": 0, "dropped": 0}
        self.max_difference = 0.0

    def submit(
        self,
        inputs: Mapping[str, np.ndarray[Any, Any]],
        outputs: Sequence[str],
        served: Mapping[str, np.ndarray[Any, Any]],
    ) -> None:
        """Compare the candidate's outputs for ``inputs`` with ``served``, later."""
        with self._lock:
            if self._pending >= CAPACITY:
                self._count("dropped")
                return
            self._pending += 1
        self._pool.submit(self._compare, dict(inputs), list(outputs), dict(served))

    def _compare(
        self,
        inputs: dict[str, np.ndarray[Any, Any]],
        outputs: list[str],
        served: dict[str, np.ndarray[Any, Any]],
    ) -> None:
        try:
            checked = self.candidate.signature.check(inputs, max_batch=1 << 30)
            theirs = self.candidate.runtime.predict(checked, outputs)
            worst = max((_difference(served[n], theirs.get(n)) for n in served), default=0.0)
            with self._lock:
                self.max_difference = max(self.max_difference, worst)
            self._count("same" if worst == 0.0 else "different")
            if worst > 0.0 and np.isfinite(worst):
                self.metrics.shadow_difference.labels(self.model).observe(worst)
        except Exception:  # the candidate's failure never reaches a client
            self._count("error")
        finally:
            with self._lock:
                self._pending -= 1

    def _count(self, outcome: str) -> None:
        with self._lock:
            self.counts[outcome] += 1
        self.metrics.shadow.labels(self.model, self.candidate.version, outcome).inc()

    def summary(self) -> dict[str, Any]:
        """What the comparison found so far."""
        with self._lock:
            return {
                "candidate": {"version": self.candidate.version, "digest": self.candidate.digest},
                **self.counts,
                # None: some outputs could not be compared as numbers (shape, type, missing).
                "max_difference": (
                    self.max_difference if np.isfinite(self.max_difference) else None
                ),
            }

    def close(self) -> None:
        """Stop mirroring (pending comparisons are abandoned)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _difference(ours: np.ndarray[Any, Any], theirs: np.ndarray[Any, Any] | None) -> float:
    """How far apart two outputs are: the largest absolute difference of numbers, 1.0 for any
    other disagreement (shape, type, a missing output, unequal strings), 0.0 when equal."""
    if theirs is None:
        return float("inf")
    a, b = np.asarray(ours), np.asarray(theirs)
    if a.shape != b.shape:
        return float("inf")
    if a.dtype.kind in "biuf" and b.dtype.kind in "biuf":
        if not a.size:
            return 0.0
        return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
    return 0.0 if np.array_equal(a, b) else 1.0
