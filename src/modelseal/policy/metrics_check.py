"""The metrics check: the model measured on validation data against the policy's thresholds
(and against the baseline version), through :mod:`modelseal.policy.metrics`.

The dataset is read once and digested; an unusable dataset is unusable input
(:class:`~modelseal.errors.InputError`, exit 2). The model is loaded only from bytes verified
with the signer that authenticated it for the signature check, and scanned. The baseline (the
``--baseline`` reference, else the registry's current ``production`` of the same model) is
loaded the same way and is only measured when a threshold compares with it. A model that
cannot be loaded or cannot predict fails the check with the reason (fail closed).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from modelseal.errors import ModelsealError, NotFoundError, UsageError
from modelseal.policy.decision import CheckResult
from modelseal.policy.document import LoadedPolicy, MetricsPolicy

NOT_NEEDED = "no threshold compares with a baseline"

if TYPE_CHECKING:
    from modelseal.policy.metrics.dataset import Dataset
    from modelseal.policy.metrics.evaluate import Evaluation
    from modelseal.registry.backend import Backend


def measure(
    loaded: LoadedPolicy,
    subject: Any,
    data: str | os.PathLike[str],
    baseline: str | None,
    backend: Backend | None,
) -> CheckResult:
    """Measure the subject's model on ``data`` under the policy's metrics section."""
    from modelseal.policy.metrics.dataset import read_dataset
    from modelseal.policy.metrics.evaluate import evaluate, features_of
    from modelseal.policy.metrics.loader import load_model
    from modelseal.policy.metrics.report import judge_all, render
    from modelseal.policy.signature_check import find_signer

    section = loaded.policy.metrics
    assert section is not None  # the gate calls this only for a policy with metrics
    dataset = read_dataset(data)
    features = features_of(section, dataset)  # unusable data stops here: exit 2
    dataset.column(section.label, "label")
    for rule in section.slices:
        dataset.column(rule.column, "slice")
    allow = tuple(loaded.policy.scan.allow) if loaded.policy.scan else ()
    signer, _ = find_signer(loaded, subject.bundle)
    if signer is None:
        return _failed("metrics: not judged: the model was not authenticated")
    try:
        model, digest = load_model(subject.path, subject.bundle, signer, section.framework, allow)
    except ModelsealError as exc:
        return _failed(f"metrics: required a model that loads; it did not: {exc.message}")
    candidate = evaluate(model, section, dataset, features)
    del model
    base, base_info, why_none = _baseline(
        loaded, subject, section, dataset, features, baseline, backend, allow
    )
    judgements, gaps = judge_all(section, candidate, base, why_none)
    passed = all(j.passed for j in judgements) and all(g["passed"] for g in gaps)
    lines = render(passed, judgements, gaps, dataset)
    from modelseal.signing.intoto import EVALUATOR_VERSION, VERIFIER

    details = {
        "task": section.task,
        "dataset": dataset.details(),
        "candidate": {"digest": {"sha256": digest}, **candidate.to_dict()},
        "baseline": _baseline_details(base, base_info, why_none),
        "thresholds": [j.to_dict() for j in judgements],
        "gaps": gaps,
        "evaluator": {"id": VERIFIER, "version": EVALUATOR_VERSION},
    }
    return CheckResult(check="metrics", passed=passed, lines=lines, details=details)


def _baseline_details(
    base: Evaluation | None, identity: dict[str, Any] | None, why_none: str
) -> dict[str, Any] | None:
    """The baseline's identity and metrics; ``None`` when no threshold compares with one."""
    if base is not None:
        return {**(identity or {}), **base.to_dict()}
    if identity is None and why_none == NOT_NEEDED:
        return None
    return {**(identity or {}), "missing": why_none}


def _failed(line: str) -> CheckResult:
    return CheckResult(check="metrics", passed=False, lines=[line])


def _baseline(
    loaded: LoadedPolicy,
    subject: Any,
    section: MetricsPolicy,
    dataset: Dataset,
    features: Any,
    ref: str | None,
    backend: Backend | None,
    allow: tuple[str, ...],
) -> tuple[Evaluation | None, dict[str, Any] | None, str]:
    """The baseline measured on the same data, what identifies it, or why there is none."""
    from modelseal.policy.metrics.evaluate import evaluate
    from modelseal.policy.metrics.loader import load_model
    from modelseal.policy.metrics.thresholds import needs_baseline
    from modelseal.policy.signature_check import find_signer
    from modelseal.registry.backend import pulled
    from modelseal.signing.bundle import parse_bundle

    rules = [
        *section.thresholds.values(),
        *(r for s in section.slices for r in s.thresholds.values()),
    ]
    if not any(needs_baseline(r) for r in rules):
        return None, None, NOT_NEEDED
    default = ref is None
    if ref is None and subject.name:
        ref = f"{subject.name}@production"
    if ref is None:
        return None, None, "none given (--baseline REF; a model given by path has no production)"
    if backend is None:
        raise UsageError(
            f"comparing with the baseline {ref!r} needs the registry",
            hint="give the registry (--registry or MODELSEAL_REGISTRY) with --baseline",
        )
    try:
        with pulled(backend, ref) as (info, where):
            label = f"{info.model}:{info.version}"
            identity = {"ref": label, "digest": {"sha256": info.root_digest.sha256}}
            bundle = parse_bundle((info.bundle or "").encode("utf-8"))
            signer, _ = find_signer(loaded, bundle)
            if signer is None:
                return (
                    None,
                    identity,
                    f"baseline {label} is not signed by a signer the policy trusts",
                )
            try:
                model, _ = load_model(where, bundle, signer, section.framework, allow)
            except ModelsealError as exc:
                return None, identity, f"baseline {label} did not load: {exc.message}"
            return evaluate(model, section, dataset, features), identity, ""
    except NotFoundError:
        if not default:
            raise
        return None, None, f"none: {subject.name} has no production version"
