"""The gate: one model, one policy, one decision.

The model's bytes are read once: hashed for the signature check and scanned from the same
memory. Then the metrics (on validation data, against the baseline), the environment and the
custom rules are judged. Every check runs, so the decision lists every failure at once; a
check that cannot be carried out fails (fail closed). Unusable input (a malformed policy, an
unreadable model or dataset) raises instead: there is no decision to make.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelseal.errors import InputError, ModelsealError, UsageError
from modelseal.policy import environment as env
from modelseal.policy import rules, scan_check, signature_check
from modelseal.policy.decision import CheckResult, GateDecision
from modelseal.policy.document import LoadedPolicy, load_policy
from modelseal.signing.bundle import OmsBundle, parse_bundle, read_bundle

if TYPE_CHECKING:
    from modelseal.registry.backend import Backend

PathLike = str | os.PathLike[str]


def gate(
    model: PathLike,
    *,
    policy: PathLike | LoadedPolicy,
    signature: PathLike | None = None,
    data: PathLike | None = None,
    baseline: str | None = None,
    environment: PathLike | env.Environment | None = None,
    backend: Backend | None = None,
    today: dt.date | None = None,
) -> GateDecision:
    """Gate ``model`` under ``policy``: a path with its ``signature``, or a registry reference
    ``NAME[:VERSION|@ALIAS]`` (then ``backend`` is the registry; the signature, metadata and
    recorded training environment come from the version). ``data`` is the validation dataset the
    policy's metrics are measured on; ``baseline`` a registry reference to compare with (default
    for registry models: the model's current ``production``). ``environment`` is the training
    environment of a model given by path (a file written by ``modelseal env capture``)."""
    loaded = policy if isinstance(policy, LoadedPolicy) else load_policy(policy)
    compiled = rules.compile_rules(loaded.policy.rules)
    today = today or dt.datetime.now(dt.UTC).date()
    with _resolve(model, signature, environment, backend) as subject:
        checks, digest, context = _checks(loaded, subject, today, data, baseline, backend)
        context["checks"] = {c.check: c.passed for c in checks}
        checks.append(rules.judge(compiled, context))
    return GateDecision(
        passed=all(c.passed for c in checks),
        model=subject.label,
        digest=digest,
        policy=loaded.policy.name,
        policy_digest=loaded.digest,
        checks=checks,
        time=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def is_reference(model: PathLike) -> bool:
    """Whether ``model`` names a registry version (``NAME[:VERSION|@ALIAS]``) rather than a
    model on disk; :class:`InputError` if it is neither an existing path nor a reference."""
    from modelseal.registry.models import VersionRef

    if Path(model).exists():
        return False
    try:
        VersionRef.parse(str(model))
    except ModelsealError:
        raise InputError(
            f"{str(model)!r} is neither a model path that exists nor a registry reference",
            hint="give a model folder or file, or NAME[:VERSION|@ALIAS]",
        ) from None
    return True


class Subject:
    """The model being gated, on disk, with its bundle and what the registry recorded."""

    def __init__(
        self,
        label: str,
        path: Path,
        bundle: OmsBundle,
        metadata: Mapping[str, Any],
        trained: env.Environment | None,
        name: str | None,
    ) -> None:
        self.label, self.path, self.bundle = label, path, bundle
        self.metadata, self.trained, self.name = dict(metadata), trained, name


def _checks(
    loaded: LoadedPolicy,
    subject: Subject,
    today: dt.date,
    data: PathLike | None,
    baseline: str | None,
    backend: Backend | None,
) -> tuple[list[CheckResult], str, dict[str, Any]]:
    from modelseal.hashing.tensors import tensor_payload_ranges
    from modelseal.signing.api import verify_outcome

    section = loaded.policy
    signer, tried = signature_check.find_signer(loaded, subject.bundle)
    verify_error: ModelsealError | None = None
    digest, signer_name, buffers = "", "", {}
    if signer is not None:
        try:
            result, outcome = verify_outcome(
                subject.path,
                signature=subject.bundle,
                public_key=signer.public_key,
                trust_anchors=signer.anchors,
                sigstore=signer.sigstore,
                # Every byte read once: files are hashed from private memory that the scan
                # then reads, so what is scanned is what was verified. Raw tensor values
                # (which no scan rule interprets) stay shared with the page cache: no copy.
                reader="map",
                shared_ranges=tensor_payload_ranges,
            )
            digest, signer_name, buffers = result.root_digest, result.signer, outcome.captured
        except ModelsealError as exc:
            if exc.exit_code != 1:
                raise
            verify_error = exc
    checks = [signature_check.result(signer, tried, verify_error)]
    if not buffers:  # not authenticated: nothing trustworthy to scan, measure or compare
        digest = digest or _claimed_digest(subject.bundle)
        reason = "not judged: the model was not authenticated"
        for name in ("scan", "metrics", "environment"):
            if name == "scan" or getattr(section, name) is not None:
                checks.append(CheckResult(check=name, passed=False, lines=[f"{name}: {reason}"]))
        return checks, digest, _context(subject, digest, signer_name, {}, {}, None)
    report = scan_check.scan_buffers(buffers, section.scan.allow if section.scan else ())
    checks.append(scan_check.judge(section.scan, report, today))
    del buffers
    measured: dict[str, Any] = {}
    if section.metrics is not None:
        metrics = _metrics(loaded, subject, data, baseline, backend)
        checks.append(metrics)
        measured = metrics.details.get("candidate", {}).get("metrics", {})
    # Capturing the installed packages costs a read of every distribution's metadata: only
    # when the policy compares environments or a rule looks at them.
    wanted = section.environment is not None or any("environment" in r.expression
                                                    for r in section.rules)  # fmt: skip
    deployed = env.capture() if wanted else None
    if section.environment is not None and deployed is not None:
        checks.append(env.compare(section.environment, subject.trained, deployed))
    context = _context(subject, digest, signer_name, report, measured, deployed)
    return checks, digest, context


def _metrics(
    loaded: LoadedPolicy,
    subject: Subject,
    data: PathLike | None,
    baseline: str | None,
    backend: Backend | None,
) -> CheckResult:
    if data is None:
        return CheckResult(
            check="metrics",
            passed=False,
            lines=[
                "metrics: the policy sets thresholds; required validation data (--data); none given"
            ],
        )
    from modelseal.policy import metrics_check

    return metrics_check.measure(loaded, subject, data, baseline, backend)


def _context(
    subject: Subject,
    digest: str,
    signer: str,
    report: Mapping[str, Any],
    measured: Mapping[str, Any],
    deployed: env.Environment | None,
) -> dict[str, Any]:
    findings = [
        {"path": entry.get("path"), **finding}
        for entry in report.get("files", [])
        for finding in entry.get("findings", [])
    ]
    return {
        "model": {
            "ref": subject.label,
            "name": subject.name or "",
            "digest": digest,
            "signer": signer,
        },
        "metadata": subject.metadata,
        "scan": {"status": report.get("status", "not-scanned"), "findings": findings},
        "metrics": dict(measured),
        "environment": {
            "trained": subject.trained.model_dump() if subject.trained else {},
            "deployed": deployed.model_dump() if deployed else {},
        },
    }


def _claimed_digest(bundle: OmsBundle) -> str:
    """The digest the (unauthenticated) bundle claims, to name the subject of a failed decision."""
    from modelseal.signing.statement import parse_payload

    try:
        return parse_payload(bundle.payload).manifest.root_digest.hex()
    except ModelsealError:
        return ""


@contextmanager
def _resolve(
    model: PathLike, signature: PathLike | None, environment: Any, backend: Backend | None
) -> Iterator[Subject]:
    path = Path(model)
    trained = _environment(environment)
    if not is_reference(model):
        if signature is None:
            raise UsageError(
                f"gating {str(path)!r} needs its signature",
                hint="give the signature bundle of the model",
            )
        yield Subject(str(path), path, read_bundle(signature), {}, trained, None)
        return
    if backend is None:
        raise InputError(
            f"{str(model)!r} is neither a model path nor a registry model",
            hint="give a path that exists, or NAME[:VERSION|@ALIAS]",
        )
    from modelseal.registry.backend import pulled

    with pulled(backend, str(model)) as (info, where):
        recorded = info.metadata.get("environment")
        if trained is None and isinstance(recorded, dict):
            trained = env.read_environment(recorded, f"{info.model}:{info.version} environment")
        bundle = parse_bundle((info.bundle or "").encode("utf-8"))
        label = f"{info.model}:{info.version}"
        yield Subject(label, where, bundle, info.metadata, trained, info.model)


def _environment(value: Any) -> env.Environment | None:
    if value is None or isinstance(value, env.Environment):
        return value
    path = Path(value)
    try:
        from modelseal.fsinput import read_regular  # never waits on a FIFO

        data = json.loads(read_regular(path, 64 << 20).decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InputError(
            f"cannot read environment {str(path)!r}: {exc}",
            hint="give a file written by 'capture' (modelseal env capture)",
        ) from None
    return env.read_environment(data, str(path))
