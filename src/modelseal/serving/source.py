"""Where a served model comes from, and how it becomes a runtime: verified, scanned, gated
(when asked), then loaded from exactly the verified bytes.

A model on disk is verified against its signature with the trust the operator gave. A
registry model (``NAME@ALIAS`` or ``NAME:VERSION``) is pulled into a private folder (verified
against the registry's record, or a pinned key), verified again as it is read into memory,
and the folder removed: what runs is what was checked, and nothing is left on disk.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelseal.errors import InputError, ModelsealError, UsageError, VerificationError
from modelseal.serving.runtimes import Runtime, runtime_for
from modelseal.serving.signature import InputSignature, read_signature

FRAMEWORKS = ("auto", "sklearn", "xgboost", "lightgbm", "onnx", "torchscript")


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """One ``--model`` of ``modelseal serve``: a registry reference or a path with its
    signature, and the trust and checks it must pass."""

    name: str
    ref: str | None = None
    path: Path | None = None
    signature: Path | None = None
    public_key: Path | None = None
    trust_anchors: tuple[Path, ...] = ()
    framework: str = "auto"
    allow: tuple[str, ...] = ()
    input_signature: InputSignature | None = None
    gate_keys: tuple[Any, ...] = ()
    # The key-encryption key (a KeyProvider) of encrypted registry versions.
    kek: Any = None

    @property
    def label(self) -> str:
        """How messages name the source."""
        return self.ref or str(self.path)


@dataclasses.dataclass
class Loaded:
    """A model ready to serve: what it is and the runtime that calls it."""

    name: str
    version: str
    digest: str
    signer: str
    runtime: Runtime
    signature: InputSignature
    origin: str
    # What the warm-up call returned, per output (name, datatype, shape); why it failed, if so.
    outputs: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    warm_error: str = ""


def parse_model_option(value: str) -> tuple[str | None, str]:
    """``[NAME=]PATH_OR_REF`` -> ``(NAME or None, PATH_OR_REF)``."""
    name, sep, rest = value.partition("=")
    if sep and name and "/" not in name and rest:
        return name, rest
    return None, value


def default_name(path: Path) -> str:
    """A disk model's name: its directory's name, or its file's stem."""
    return path.name if path.is_dir() else path.stem


def load_source(source: ModelSource, backend: Any | None) -> Loaded:
    """Verify, scan, gate and load ``source`` (``backend``: the registry, for references)."""
    if source.framework not in FRAMEWORKS:
        raise UsageError(
            f"unknown framework {source.framework!r}", hint=f"use one of {', '.join(FRAMEWORKS)}"
        )
    if source.ref is not None:
        if backend is None:
            raise UsageError(f"{source.ref} is a registry model", hint="give the registry to use")
        return _from_registry(source, backend)
    if source.path is None or source.signature is None:
        raise UsageError(
            f"model {source.name!r} needs a path and its signature",
            hint="serve NAME=PATH with the signature and the signer's key",
        )
    if source.gate_keys:
        raise UsageError(
            "a gate decision can only be required of registry models",
            hint="serve the model from the registry, where its decision is stored",
        )
    return _load(source, source.path, source.signature, source.public_key, "disk")


def _from_registry(source: ModelSource, backend: Any) -> Loaded:
    """Download the version into memory (decrypted there when it is encrypted) and verify,
    scan and load those bytes (hashed once; nothing is written to disk)."""
    from modelseal.registry.backend import download_to_memory
    from modelseal.registry.models import VersionRef
    from modelseal.signing.bundle import parse_bundle
    from modelseal.signing.keys import check_supported

    assert source.ref is not None
    info, contents = download_to_memory(backend, VersionRef.parse(source.ref), kek=source.kek)
    if source.gate_keys:
        _require_gate(backend, info, source.gate_keys)
    bundle = parse_bundle((info.bundle or "").encode("utf-8"))
    key: Any = source.public_key
    if key is None and info.public_key is not None and not bundle.certificates:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        key = check_supported(load_pem_public_key(info.public_key.encode("ascii")))
    if bundle.certificates and not source.trust_anchors:
        raise InputError(
            f"{info.model}:{info.version} is certificate-signed",
            hint="give the CA that issued its certificate as a trust anchor",
            topic="verify-with-trust-anchor",
        )
    declared = source.input_signature
    recorded = info.metadata.get("input_signature")
    if declared is None and recorded is not None:
        declared = read_signature(recorded, f"{info.model}:{info.version} input_signature")
    changed = dataclasses.replace(source, input_signature=declared)
    loaded = _load(changed, Path("model"), bundle, key, f"registry {info.model}",
                   contents=contents)  # fmt: skip
    loaded.version = str(info.version)
    return loaded


def _require_gate(backend: Any, info: Any, keys: Sequence[Any]) -> None:
    from modelseal.registry.attestations import ListAttestations
    from modelseal.signing import intoto

    stored = backend.call(ListAttestations(name=info.model, number=info.version))
    problems: list[str] = []
    for item in reversed(stored):
        try:
            verified = intoto.verify(
                intoto.loads(item.bundle or ""), keys, digest=info.root_digest.sha256
            )
        except ModelsealError as exc:
            problems.append(f"a decision does not verify ({exc.message})")
            continue
        if verified.passed:
            return
        problems.append("the gate decision FAILED: " + "; ".join(verified.failed_checks()[:2]))
    raise VerificationError(
        f"{info.model}:{info.version} has no passing gate decision signed by a trusted gate "
        f"key: {'; '.join(problems) or 'none is stored'}",
        hint="gate the model and attach its decision, or serve another version",
    )


def _load(
    source: ModelSource,
    path: Path,
    signature: Any,
    public_key: Any,
    origin: str,
    *,
    contents: dict[str, Any] | None = None,
) -> Loaded:
    from modelseal.loading.verified import load_verified

    loaded = load_verified(
        path,
        contents=contents,
        signature=signature,
        public_key=public_key,
        trust=source.trust_anchors,
        framework={"sklearn": "pickle"}.get(source.framework, source.framework),
        allow=source.allow,
    )
    framework = "torchscript" if loaded.framework == "torchscript" else source.framework
    runtime = runtime_for(loaded.obj, framework, source.input_signature)
    signature_ = source.input_signature or runtime.default_signature()
    if signature_ is None:
        raise InputError(
            f"model {source.name!r} declares no input signature and the model does not say what "
            "it takes",
            hint="give its input signature (a JSON file) or record one at push",
        )
    from modelseal.serving.warmup import warm

    outputs, warm_error = warm(runtime, signature_)
    return Loaded(
        name=source.name,
        version="1",
        digest=loaded.verification.root_digest,
        signer=loaded.verification.signer,
        runtime=runtime,
        signature=signature_,
        origin=origin,
        outputs=outputs,
        warm_error=warm_error,
    )
