"""Prometheus metrics of the inference server (``GET /metrics``), in a registry of its own
(with the process and platform collectors), so two servers in one process never mix."""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Inference latencies: sub-millisecond tabular models up to slow batches.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServerMetrics:
    """The server's metrics: requests, latency, verification failures, loaded models."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.requests = Counter(
            "modelseal_inference_requests",
            "Inference requests answered, by model, version and HTTP status code.",
            ("model", "version", "code"),
            registry=self.registry,
        )
        self.duration = Histogram(
            "modelseal_inference_request_duration_seconds",
            "Time to answer an inference request (parsing, checks, the model, the answer).",
            ("model",),
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.verification_failures = Counter(
            "modelseal_model_verification_failures",
            "Models refused at load, hot swap or re-verification, by model and reason.",
            ("model", "reason"),
            registry=self.registry,
        )
        self.info = Gauge(
            "modelseal_model_info",
            "The model version being served (1) and its manifest digest.",
            ("model", "version", "digest"),
            registry=self.registry,
        )
        self.swaps = Counter(
            "modelseal_model_swaps",
            "Hot swaps to a new version, by model.",
            ("model",),
            registry=self.registry,
        )
        self.shadow = Counter(
            "modelseal_shadow_comparisons",
            "Requests mirrored to a shadow candidate, by outcome (same, different, error, "
            "dropped).",
            ("model", "candidate_version", "outcome"),
            registry=self.registry,
        )
        self.shadow_difference = Histogram(
            "modelseal_shadow_difference",
            "Largest absolute difference between the served and the candidate's outputs.",
            ("model",),
            buckets=(1e-9, 1e-6, 1e-4, 1e-3, 1e-2, 0.1, 0.5, 1.0, 10.0),
            registry=self.registry,
        )
        self._shown: dict[str, tuple[str, str]] = {}
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def serving(self, model: str, version: str, digest: str) -> None:
        """Record that ``model`` now serves ``version`` (``digest``); the old series goes."""
        old = self._shown.pop(model, None)
        if old is not None:
            self.info.remove(model, *old)
        self.info.labels(model, version, digest).set(1)
        self._shown[model] = (version, digest)

    def stopped(self, model: str) -> None:
        """Record that ``model`` is no longer served."""
        old = self._shown.pop(model, None)
        if old is not None:
            self.info.remove(model, *old)

    def exposition(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)

    def observe(self, model: str, version: str, code: int, seconds: float) -> None:
        """Count one answered request and its duration."""
        # The labelled children, looked up once per (model, version, code): labels() costs
        # more than the increment on the hot path. Bounded: only served names reach here with
        # a version; unknown names share the "-" version.
        key = (model, version, code)
        children = self._children.get(key)
        if children is None:
            children = (self.requests.labels(model, version, str(code)),
                        self.duration.labels(model))  # fmt: skip
            if len(self._children) < 10_000:
                self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def failure(self, model: str, reason: str) -> None:
        """Count a refused load, swap or re-verification."""
        self.verification_failures.labels(model, reason).inc()


def reason_of(exc: Any) -> str:
    """A short, bounded label for why a model was refused (its error code)."""
    code = getattr(exc, "code", None)
    return str(code) if isinstance(code, str) and code else "error"
