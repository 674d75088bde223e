"""The gate's policy: a YAML document, validated against a published JSON Schema.

A policy says what a model must show before it may reach production: who may have signed it,
what its scan may contain, the metrics it must reach (absolute and against the current
production model), the environment it must have been built in, and custom rules (CEL). Every
section is optional; a section that is present is enforced. A malformed policy is an
:class:`~modelseal.errors.InputError` naming the path of the bad field.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from modelseal.errors import InputError

SEVERITIES = ("info", "low", "medium", "high", "critical")
Severity = Literal["info", "low", "medium", "high", "critical"]
MAX_POLICY_BYTES = 1 << 20


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TrustedKey(_Section):
    """A signer's public key: a PEM file (relative to the policy) or inline PEM."""

    name: str = Field(description="Whose key this is (shown in decisions).")
    path: str | None = Field(None, description="A PEM public key file, relative to the policy.")
    pem: str | None = Field(None, description="The PEM public key itself.")


class CertificateRule(_Section):
    """Certificate signers: a chain to one of ``anchors`` (validity and code-signing usage
    checked at verification time), with a leaf subject and issuer matching these globs."""

    anchors: list[str] = Field(description="CA certificate files (PEM), relative to the policy.")
    subject: str = Field("*", description="Glob on the leaf's subject (RFC 4514 string).")
    issuer: str = Field("*", description="Glob on the leaf's issuer (RFC 4514 string).")


class SigstoreSigner(_Section):
    """A Sigstore keyless signer: the OIDC issuer (exact) and either the identity (the
    certificate's subject alternative name: an e-mail or URI, exact) or a pattern for it."""

    issuer: str = Field(
        min_length=1,
        description="The OIDC issuer URL, exactly (https://token.actions.githubusercontent.com).",
    )
    identity: str | None = Field(None, description="The signer's identity, exactly.")
    identity_pattern: str | None = Field(
        None,
        description="A regular expression (Python re) that must match the whole identity.",
    )

    @model_validator(mode="after")
    def _one_identity(self) -> SigstoreSigner:
        if (self.identity is None) == (self.identity_pattern is None):
            raise ValueError("give exactly one of identity and identity_pattern")
        if self.identity_pattern is not None:
            try:
                re.compile(self.identity_pattern)
            except re.error as exc:
                raise ValueError(f"identity_pattern is not a regular expression: {exc}") from None
        return self


class SigstorePolicy(_Section):
    """Sigstore keyless signers, verified offline against ``trusted_root`` (nothing is fetched:
    no TUF refresh, no Rekor or Fulcio request)."""

    trusted_root: str = Field(
        description="The Sigstore trusted_root.json to verify against, relative to the policy."
    )
    identities: list[SigstoreSigner] = Field(min_length=1, description="Any one of these.")


class SignaturePolicy(_Section):
    """Who may have signed the model (any one of these)."""

    keys: list[TrustedKey] = Field(default_factory=list)
    certificates: list[CertificateRule] = Field(default_factory=list)
    sigstore: SigstorePolicy | None = None


class Waiver(_Section):
    """A scan rule waived, with why and until when."""

    rule: str = Field(description="The scan rule id (as in 'modelseal scan --json').")
    path: str = Field("*", description="Glob on the file the finding is in (default: any).")
    reason: str = Field(min_length=1)
    expires: dt.date = Field(description="The last day the waiver holds (YYYY-MM-DD).")


class ScanPolicy(_Section):
    """The highest severity a finding may have; anything unscannable always fails."""

    max_severity: Severity | None = Field(
        None, description="Findings above this fail the gate; none means no finding may remain."
    )
    waivers: list[Waiver] = Field(default_factory=list)
    allow: list[str] = Field(
        default_factory=list,
        description="Pickle globals your models legitimately import (module.name, module.*).",
    )


class EnvironmentPolicy(_Section):
    """How the deployment environment must match the model's training environment."""

    python: Literal["exact", "minor", "major", "any"] = Field(
        "minor", description="How much of the Python version must match."
    )
    packages: list[str] = Field(
        default_factory=list,
        description="Packages whose versions must match exactly (names; '*' for all).",
    )
    hashes: bool = Field(False, description="The listed packages' file hashes must match too.")


MetricName = Literal[
    "accuracy_score", "precision_score", "recall_score", "f1_score", "roc_auc", "log_loss",
    "mean_squared_error", "root_mean_squared_error", "mean_absolute_error", "r2_score",
    "max_error", "mean_absolute_percentage_error",
]  # fmt: skip
METRICS_BY_TASK = {
    "classification": (
        "accuracy_score", "precision_score", "recall_score", "f1_score", "roc_auc", "log_loss",
    ),
    "regression": (
        "mean_squared_error", "root_mean_squared_error", "mean_absolute_error", "r2_score",
        "max_error", "mean_absolute_percentage_error",
    ),
}  # fmt: skip


class MetricThreshold(_Section):
    """MLflow's ``MetricThreshold``: an absolute threshold and/or a minimum change against the
    baseline (``threshold``, ``min_absolute_change``, ``min_relative_change``)."""

    threshold: float | None = Field(
        None, description="The value must be >= this (<= when lower is better)."
    )
    min_absolute_change: float | None = Field(
        None, gt=0, description="Must beat the baseline by at least this much."
    )
    min_relative_change: float | None = Field(
        None, ge=0, le=1, description="Must beat the baseline by this fraction of |baseline|."
    )
    greater_is_better: bool | None = Field(
        None, description="Default: by metric (true for scores, false for errors and losses)."
    )

    @model_validator(mode="after")
    def _some_threshold(self) -> MetricThreshold:
        if (self.threshold, self.min_absolute_change, self.min_relative_change) == (None,) * 3:
            raise ValueError("no threshold was specified")
        return self


class SliceRule(_Section):
    """Per-slice thresholds and the largest gap allowed between slices of one column."""

    column: str = Field(description="The dataset column whose values define the slices.")
    thresholds: dict[MetricName, MetricThreshold] = Field(
        default_factory=dict, description="Each slice must meet these."
    )
    max_gap: dict[MetricName, float] = Field(
        default_factory=dict, description="Metric -> largest allowed best-minus-worst slice gap."
    )


class MetricsPolicy(_Section):
    """The model measured on validation data (``--data``): thresholds overall and per slice."""

    task: Literal["classification", "regression"]
    framework: Literal["auto", "sklearn", "xgboost", "lightgbm", "onnx", "torchscript"] = Field(
        "auto", description="How the model predicts (auto: from its files)."
    )
    label: str = Field("label", description="The column (NPZ: array) holding the true values.")
    features: list[str] | None = Field(
        None, description="Feature columns in model order (default: every other column)."
    )
    positive_label: str | float | None = Field(
        None, description="The positive class for binary scores (default 1)."
    )
    average: Literal["binary", "micro", "macro", "weighted"] | None = Field(
        None, description="Precision/recall/F1 averaging (default binary, weighted if >2 classes)."
    )
    thresholds: dict[MetricName, MetricThreshold] = Field(default_factory=dict)
    slices: list[SliceRule] = Field(default_factory=list)
    report: list[MetricName] = Field(
        default_factory=list, description="Further metrics to measure and attest, unjudged."
    )

    @model_validator(mode="after")
    def _metrics_fit_the_task(self) -> MetricsPolicy:
        names = [*self.thresholds, *self.report]
        for rule in self.slices:
            names += [*rule.thresholds, *rule.max_gap]
        wrong = [n for n in names if n not in METRICS_BY_TASK[self.task]]
        if wrong:
            raise ValueError(
                f"{wrong[0]} is not a {self.task} metric "
                f"(use one of {', '.join(METRICS_BY_TASK[self.task])})"
            )
        return self


class CustomRule(_Section):
    """A CEL expression over the gate's context that must be true."""

    name: str
    expression: str = Field(description="CEL; see docs/gate.md for the context.")
    message: str = Field("", description="What to tell the user when it is false.")


class Policy(_Section):
    """The whole policy (see docs/gate.md)."""

    version: Literal[1] = 1
    name: str = Field("", description="A label for the policy (shown in decisions).")
    signature: SignaturePolicy | None = None
    scan: ScanPolicy | None = None
    metrics: MetricsPolicy | None = Field(
        None, description="Metrics thresholds on validation data (see docs/gate.md)."
    )
    environment: EnvironmentPolicy | None = None
    rules: list[CustomRule] = Field(default_factory=list)


def schema() -> dict[str, Any]:
    """The policy's JSON Schema (published as docs/policy.schema.json)."""
    document = Policy.model_json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["$id"] = "urn:modelseal:gate-policy:v1"
    return document


class LoadedPolicy:
    """A policy as read: the document, its digest (what decisions are bound to) and where it
    lives (relative paths in it are resolved against that folder)."""

    def __init__(self, policy: Policy, digest: str, folder: Path) -> None:
        self.policy = policy
        self.digest = digest
        self.folder = folder

    def resolve(self, path: str) -> Path:
        """A path from the policy, relative to the policy's folder."""
        candidate = Path(os.path.expanduser(path))
        return candidate if candidate.is_absolute() else self.folder / candidate


def load_policy(path: str | os.PathLike[str]) -> LoadedPolicy:
    """Read and validate a policy file; its digest is the SHA-256 of the file's bytes."""
    import yaml

    where = Path(path)
    try:
        from modelseal.fsinput import read_regular  # never waits on a FIFO

        data = read_regular(where, MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise InputError(
            f"cannot read policy {str(where)!r}: {exc.strerror}", hint="check the path"
        ) from None
    if len(data) > MAX_POLICY_BYTES:
        raise InputError(f"policy {str(where)!r} is larger than 1 MiB", hint="check the file")
    try:
        document = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputError(
            f"policy {str(where)!r} is not valid YAML{at}",
            hint="fix the YAML syntax (see docs/gate.md for an example)",
        ) from None
    return LoadedPolicy(
        parse_policy(document, str(where)), hashlib.sha256(data).hexdigest(), where.resolve().parent
    )


def parse_policy(document: Any, where: str = "policy") -> Policy:
    """Validate a policy document; an error names the path of the first bad field."""
    if not isinstance(document, dict):
        raise InputError(f"{where}: a policy is a mapping", hint="start with 'version: 1'")
    try:
        return Policy.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first.get("loc", ())) or "(top level)"
        raise InputError(
            f"{where}: invalid field {path}: {first.get('msg', 'invalid value')}",
            hint="see docs/policy.schema.json for the fields a policy may have",
        ) from None
