"""An ML-BOM for a verified model: CycloneDX 1.6 JSON with a model card.

The BOM's subject is the model (a ``machine-learning-model`` component: its manifest root
digest, its files' digests, who signed it). Its ``modelCard`` holds the parameters recorded in
the version's metadata, the validation datasets by digest and the metrics the gate *attested*:
only statements of a gate decision that verifies with a gate key the caller trusts are reported,
never a number from metadata anyone could have typed. The training environment's packages are
``library`` components (with package URLs and the hashes recorded) the model depends on.

The model is verified before anything is written: a BOM describes bytes someone checked.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from modelseal.policy.environment import Environment, normalise

SPEC_VERSION = "1.6"
# OMS hash names -> CycloneDX hash algorithms.
HASH_ALGORITHMS = {"sha256": "SHA-256", "blake2b": "BLAKE2b-512", "blake3": "BLAKE3"}
# Version metadata keys that fill the model card (others become properties).
PARAMETER_KEYS = {"task": "task", "architecture_family": "architectureFamily",
                  "architecture": "modelArchitecture"}  # fmt: skip
APPROACHES = ("supervised", "unsupervised", "reinforcement-learning", "semi-supervised",
              "self-supervised")  # fmt: skip
CONSIDERATION_KEYS = {"users": "users", "use_cases": "useCases", "intended_use": "useCases",
                      "limitations": "technicalLimitations",
                      "tradeoffs": "performanceTradeoffs"}  # fmt: skip


class Subject:
    """What the BOM describes: a verified model and what is known about it."""

    def __init__(
        self,
        *,
        name: str,
        version: str,
        root_digest: str,
        hash_type: str,
        files: Sequence[tuple[str, str | None]],
        signer: str,
        metadata: Mapping[str, Any],
        environment: Environment | None,
        decisions: Sequence[Mapping[str, Any]],
    ) -> None:
        self.name, self.version, self.root_digest = name, version, root_digest
        self.hash_type, self.files, self.signer = hash_type, list(files), signer
        self.metadata, self.environment = dict(metadata), environment
        # Verified gate decisions: each {"summary": predicate, "checks": [predicate, ...]}.
        self.decisions = list(decisions)


def build(subject: Subject, *, tool_version: str, now: dt.datetime | None = None) -> dict[str, Any]:
    """The CycloneDX 1.6 document (plain JSON values) for ``subject``."""
    now = now or dt.datetime.now(dt.UTC)
    model_ref = "model"
    components: list[dict[str, Any]] = []
    data = _datasets(subject.decisions)
    components += [entry["component"] for entry in data]
    libraries = _libraries(subject.environment)
    components += libraries
    model = {
        "type": "machine-learning-model",
        "bom-ref": model_ref,
        "name": subject.name,
        "version": subject.version,
        "hashes": [{"alg": "SHA-256", "content": subject.root_digest}],
        "properties": _model_properties(subject),
        "components": _files(subject),
        "modelCard": _model_card(subject, [entry["ref"] for entry in data]),
    }
    document: dict[str, Any] = {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {
                "components": [
                    {"type": "application", "name": "modelseal", "version": tool_version}
                ]
            },
            "component": model,
        },
        "components": components,
        "dependencies": [
            {"ref": model_ref, "dependsOn": [c["bom-ref"] for c in libraries]},
            *({"ref": c["bom-ref"]} for c in libraries),
        ],
    }
    return document


def _model_properties(subject: Subject) -> list[dict[str, str]]:
    props = [
        {"name": "modelseal:manifest:root-digest", "value": f"sha256:{subject.root_digest}"},
        {"name": "modelseal:manifest:hash", "value": subject.hash_type},
        {"name": "modelseal:signer", "value": subject.signer},
    ]
    for decision in subject.decisions:
        summary = decision["summary"]
        props.append({"name": "modelseal:gate:decision",
                      "value": f"{summary.get('verificationResult', '?')} under policy sha256:"
                               f"{summary.get('policy', {}).get('digest', {}).get('sha256', '')}"
                               f" at {summary.get('timeVerified', '')}"})  # fmt: skip
    known = set(PARAMETER_KEYS) | set(CONSIDERATION_KEYS) | {"approach", "environment"}
    for key in sorted(subject.metadata):
        if key in known:
            continue
        props.append({"name": f"modelseal:metadata:{key}", "value": _text(subject.metadata[key])})
    return props


def _files(subject: Subject) -> list[dict[str, Any]]:
    algorithm = HASH_ALGORITHMS.get(subject.hash_type)
    out = []
    for index, (path, digest) in enumerate(subject.files):
        entry: dict[str, Any] = {"type": "file", "bom-ref": f"model-file-{index}", "name": path}
        if digest and algorithm:
            entry["hashes"] = [{"alg": algorithm, "content": digest}]
        out.append(entry)
    return out


def _model_card(subject: Subject, datasets: list[str]) -> dict[str, Any]:
    meta = subject.metadata
    parameters: dict[str, Any] = {}
    approach = meta.get("approach")
    if isinstance(approach, str) and approach in APPROACHES:
        parameters["approach"] = {"type": approach}
    for key, field in PARAMETER_KEYS.items():
        if isinstance(meta.get(key), str | int | float):
            parameters[field] = _text(meta[key])
    if datasets:
        parameters["datasets"] = [{"ref": ref} for ref in datasets]
    card: dict[str, Any] = {}
    if parameters:
        card["modelParameters"] = parameters
    metrics = list(_metrics(subject.decisions))
    if metrics:
        card["quantitativeAnalysis"] = {"performanceMetrics": metrics}
    considerations: dict[str, list[str]] = {}
    for key, field in CONSIDERATION_KEYS.items():
        if key in meta:
            considerations.setdefault(field, []).extend(_texts(meta[key]))
    for decision in subject.decisions:
        failed = [line for check in decision["checks"] if not check.get("passed")
                  for line in check.get("lines", [])]  # fmt: skip
        if failed:
            considerations.setdefault("technicalLimitations", []).extend(
                f"gate: {line}" for line in failed
            )
    if considerations:
        card["considerations"] = considerations
    return card


def _metrics(decisions: Iterable[Mapping[str, Any]]) -> Iterable[dict[str, str]]:
    """Every metric value the verified decisions attest (overall and per slice)."""
    for decision in decisions:
        for check in decision["checks"]:
            if check.get("check") != "metrics":
                continue
            candidate = check.get("details", {}).get("candidate", {})
            for name, value in sorted(candidate.get("metrics", {}).items()):
                yield {"type": str(name), "value": _text(value)}
            for part in candidate.get("slices", []):
                label = f"{part.get('column')}={part.get('value')}"
                for name, value in sorted(part.get("metrics", {}).items()):
                    yield {"type": str(name), "value": _text(value), "slice": label}


def _datasets(decisions: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The validation datasets the verified decisions name, as ``data`` components."""
    seen: dict[str, dict[str, Any]] = {}
    for decision in decisions:
        for check in decision["checks"]:
            if check.get("check") != "metrics":
                continue
            dataset = check.get("details", {}).get("dataset") or {}
            digest = str(dataset.get("sha256", ""))
            if not digest or digest in seen:
                continue
            ref = f"dataset-{digest[:16]}"
            name = str(dataset.get("path", "")).replace("\\", "/").rsplit("/", 1)[-1] or ref
            component = {
                "type": "data",
                "bom-ref": ref,
                "name": name,
                "hashes": [{"alg": "SHA-256", "content": digest}],
                "data": [{"type": "dataset", "name": name,
                          "description": f"validation data: {dataset.get('rows', '?')} rows, "
                                         f"{dataset.get('format', '?')}"}],
            }  # fmt: skip
            seen[digest] = {"ref": ref, "component": component}
    return list(seen.values())


def _libraries(environment: Environment | None) -> list[dict[str, Any]]:
    if environment is None:
        return []
    out = []
    for name in sorted(environment.packages):
        package = environment.packages[name]
        purl = f"pkg:pypi/{quote(normalise(name))}@{quote(package.version, safe='')}"
        entry: dict[str, Any] = {"type": "library", "bom-ref": purl, "name": name,
                                 "version": package.version, "purl": purl}  # fmt: skip
        hashes = [h.split(":", 1)[1] for h in package.hashes if h.startswith("sha256:")]
        if hashes:
            entry["hashes"] = [{"alg": "SHA-256", "content": h.lower()} for h in hashes]
        out.append(entry)
    return out


def _text(value: Any) -> str:
    return (
        value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)
    )


def _texts(value: Any) -> list[str]:
    if isinstance(value, list):
        return [_text(v) for v in value]
    return [_text(value)]


def describe(
    model: str,
    *,
    signature: str | None = None,
    public_key: str | None = None,
    trust_anchors: Sequence[str] = (),
    attestations: Sequence[str] = (),
    gate_keys: Sequence[str] = (),
    environment: str | None = None,
    backend: Any = None,
    tool_version: str = "",
) -> tuple[dict[str, Any], list[str]]:
    """The BOM of ``model`` (a path with ``signature``, verified with ``public_key`` or
    ``trust_anchors``; or a registry reference, pulled and verified, with the attestations
    stored with it) and the notes to show the user (evidence left out, and why). Only decisions
    that verify with one of ``gate_keys`` are reported; ``attestations`` adds bundle files."""
    from modelseal.policy import gate as gating
    from modelseal.signing.keys import load_public_key

    keys = [load_public_key(path) for path in gate_keys]
    bundles = [_read_text(path) for path in attestations]
    if not gating.is_reference(model):
        subject_args = _path_subject(model, signature, public_key, trust_anchors, environment)
        return _finish(subject_args, bundles, keys, tool_version)
    if backend is None:
        from modelseal.errors import InputError

        raise InputError(f"{model!r} is a registry reference", hint="give the registry to read it")
    from modelseal.registry.attestations import ListAttestations
    from modelseal.registry.backend import pulled

    with pulled(backend, model) as (info, _where):
        stored = backend.call(ListAttestations(name=info.model, number=info.version))
        bundles += [a.bundle for a in stored if a.bundle]
        recorded = info.metadata.get("environment")
        env = _environment(environment) if environment else (
            _recorded(recorded, f"{info.model}:{info.version}") if recorded else None
        )  # fmt: skip
        subject_args = {
            "name": info.model,
            "version": str(info.version),
            "root_digest": info.root_digest.sha256,
            "hash_type": "sha256",
            "files": [(f.path, f.sha256) for f in info.files],
            "signer": info.signer,
            "metadata": info.metadata,
            "environment": env,
        }
    return _finish(subject_args, bundles, keys, tool_version)


def _finish(
    subject_args: dict[str, Any], bundles: list[str], keys: list[Any], tool_version: str
) -> tuple[dict[str, Any], list[str]]:
    from modelseal.errors import ModelsealError
    from modelseal.signing import intoto

    notes: list[str] = []
    decisions: list[dict[str, Any]] = []
    if bundles and not keys:
        notes.append(f"{len(bundles)} gate decision(s) left out: no --gate-key to verify them with")
    for index, text in enumerate(bundles if keys else []):
        try:
            verified = intoto.verify(intoto.loads(text), keys, digest=subject_args["root_digest"])
        except ModelsealError as exc:
            notes.append(f"gate decision {index + 1} left out: {exc.message}")
            continue
        decisions.append({"summary": verified.summary["predicate"],
                          "checks": [c["predicate"] for c in verified.checks]})  # fmt: skip
    subject = Subject(decisions=decisions, **subject_args)
    return build(subject, tool_version=tool_version), notes


def _path_subject(
    model: str,
    signature: str | None,
    public_key: str | None,
    trust_anchors: Sequence[str],
    environment: str | None,
) -> dict[str, Any]:
    from pathlib import Path

    from modelseal.errors import UsageError
    from modelseal.signing.api import verify
    from modelseal.signing.bundle import read_bundle
    from modelseal.signing.statement import parse_payload

    if signature is None or (public_key is None and not trust_anchors):
        raise UsageError(
            f"a BOM for {model!r} needs its signature and the key (or CA) to verify it with",
            hint="give --signature and --public-key (or --trust-anchor)",
        )
    result = verify(model, signature=signature, public_key=public_key,
                    trust_anchors=tuple(trust_anchors))  # fmt: skip
    manifest = parse_payload(read_bundle(signature).payload).manifest
    hash_type = manifest.serialization.hash_type
    whole = [item for item in manifest.items if item.start is None]
    sharded = sorted({item.path for item in manifest.items if item.start is not None})
    files: list[tuple[str, str | None]] = [
        (Path(model).name if i.path == "." else i.path, i.digest.hex()) for i in whole
    ]
    files += [(Path(model).name if p == "." else p, None) for p in sharded]
    return {
        "name": Path(model).resolve().name,
        "version": "",
        "root_digest": result.root_digest,
        "hash_type": hash_type,
        "files": sorted(files, key=lambda f: f[0]),
        "signer": result.signer,
        "metadata": {},
        "environment": _environment(environment) if environment else None,
    }


def _environment(path: str) -> Environment:
    import json

    from modelseal.errors import InputError

    try:
        data = json.loads(_read_text(path))
    except ValueError:
        raise InputError(f"{path!r} is not JSON", hint="give a file from 'env capture'") from None
    return _recorded(data, path)


def _recorded(data: Any, where: str) -> Environment:
    from modelseal.policy.environment import read_environment

    return read_environment(data, where)


def _read_text(path: str) -> str:
    from modelseal.errors import InputError
    from modelseal.fsinput import read_regular

    try:
        return read_regular(path, 64 << 20).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path!r}: {exc}", hint="check the path") from None
