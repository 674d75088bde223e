"""`modelseal bom`: CycloneDX 1.6 ML-BOMs, validated against the CycloneDX 1.6 JSON schema (the
schema cyclonedx-python-lib ships), for models on disk and in the registry; only attested
metrics appear, and only from decisions that verify."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import modelseal
from modelseal.policy.bom import Subject, build
from modelseal.policy.environment import Environment, Package, capture
from modelseal.registry.attestations import AttachAttestation
from modelseal.registry.backend import LocalBackend, push
from modelseal.registry.trusted_keys import AddTrustedKey
from tests.policy.fixtures import bundle, decide, gate_key
from tests.registry.fixtures import Env, SignedModel, open_env

Run = Callable[..., tuple[int, str, str]]


def _validate(document: dict[str, Any]) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(document))
    assert error is None, error


def _metrics_decision(digest: str) -> dict[str, Any]:
    """The predicates of a verified decision whose metrics check measured two metrics."""
    return {
        "summary": {"verificationResult": "PASSED", "timeVerified": "2026-12-04T00:00:00Z",
                    "policy": {"digest": {"sha256": "ab" * 32}}},
        "checks": [
            {"check": "signature", "passed": True, "lines": ["signature: ok"], "details": {}},
            {"check": "metrics", "passed": False, "lines": ["metrics: recall_score 0.7 < 0.8"],
             "details": {"dataset": {"path": "data/valid.csv", "sha256": "cd" * 32, "rows": 100,
                                     "format": "csv"},
                         "candidate": {"rows": 100, "metrics": {"accuracy_score": 0.93,
                                                                "recall_score": 0.7},
                                       "slices": [{"column": "region", "value": "eu", "rows": 40,
                                                   "metrics": {"accuracy_score": 0.9}}]}}},
        ],
    }  # fmt: skip


def test_a_full_bom_is_valid_cyclonedx_1_6() -> None:
    environment = Environment(python="3.11.7", packages={
        "numpy": Package(version="2.1.0", hashes=["sha256:" + "1" * 64]),
        "scikit-learn": Package(version="1.5.0"),
    })  # fmt: skip
    subject = Subject(
        name="fraud", version="3", root_digest="9" * 64, hash_type="sha256",
        files=[("config.json", "a" * 64), ("weights/model.safetensors", None)],
        signer="ecdsa-p256 key 0123456789abcdef",
        metadata={"task": "classification", "approach": "supervised", "owner": "risk",
                  "limitations": ["tabular data only"], "intended_use": "fraud scoring"},
        environment=environment, decisions=[_metrics_decision("9" * 64)],
    )  # fmt: skip
    document = build(subject, tool_version="0.1.0")
    _validate(document)
    model = document["metadata"]["component"]
    assert model["type"] == "machine-learning-model" and model["hashes"][0]["content"] == "9" * 64
    card = model["modelCard"]
    assert card["modelParameters"]["task"] == "classification"
    assert card["modelParameters"]["approach"] == {"type": "supervised"}
    metrics = card["quantitativeAnalysis"]["performanceMetrics"]
    assert {"type": "accuracy_score", "value": "0.93"} in metrics
    assert {"type": "accuracy_score", "value": "0.9", "slice": "region=eu"} in metrics
    dataset_ref = card["modelParameters"]["datasets"][0]["ref"]
    dataset = next(c for c in document["components"] if c["bom-ref"] == dataset_ref)
    assert dataset["type"] == "data" and dataset["hashes"][0]["content"] == "cd" * 32
    assert "gate: metrics: recall_score 0.7 < 0.8" in card["considerations"]["technicalLimitations"]
    assert card["considerations"]["useCases"] == ["fraud scoring"]
    libraries = [c for c in document["components"] if c["type"] == "library"]
    assert [c["purl"] for c in libraries] == ["pkg:pypi/numpy@2.1.0", "pkg:pypi/scikit-learn@1.5.0"]
    refs = [c["bom-ref"] for c in libraries]
    assert document["dependencies"][0] == {"ref": "model", "dependsOn": refs}


text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    metadata=st.dictionaries(st.from_regex(r"[a-z_]{1,12}", fullmatch=True),
                             st.one_of(text, st.integers(), st.floats(allow_nan=False),
                                       st.lists(text, max_size=3)), max_size=6),
    packages=st.dictionaries(names, st.from_regex(r"[0-9][0-9a-z.+!-]{0,12}", fullmatch=True),
                             max_size=5),
    files=st.lists(st.tuples(text.filter(bool), st.none() | st.just("e" * 64)), max_size=4),
)  # fmt: skip
def test_any_metadata_and_packages_give_a_valid_bom(
    metadata: dict[str, Any], packages: dict[str, str], files: list[tuple[str, str | None]]
) -> None:
    installed = {n: Package(version=v) for n, v in packages.items()}
    environment = Environment(python="3.11.0", packages=installed)
    subject = Subject(name="m", version="1", root_digest="0" * 64, hash_type="blake3",
                      files=files, signer="s", metadata=metadata, environment=environment,
                      decisions=[])  # fmt: skip
    _validate(build(subject, tool_version="0.1.0"))


def _signed(tmp_path: Path, key_pair: tuple[Path, Path]) -> tuple[Path, Path]:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"layers": 2}\n')
    (model / "weights.bin").write_bytes(b"\x00" * 4096)
    signature = tmp_path / "model.sig"
    modelseal.sign(model, private_key=key_pair[0], signature=signature)
    return model, signature


def test_the_cli_writes_a_bom_of_a_verified_model_with_its_attested_decision(
    run_cli: Run, tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    model, signature = _signed(tmp_path, key_pair)
    private, public = gate_key(tmp_path / "gate")
    evidence = tmp_path / "decision.jsonl"
    evidence.write_text(bundle(decide(model, signature, key_pair[1]), private))
    env_file = tmp_path / "env.json"
    env_file.write_text(json.dumps(capture().model_dump()))
    out = tmp_path / "bom.json"
    code, _, err = run_cli("bom", model, "--signature", signature, "--public-key", key_pair[1],
                           "--attestation", evidence, "--gate-key", public,
                           "--environment", env_file, "--output", out)  # fmt: skip
    assert code == 0, err
    document = json.loads(out.read_text())
    _validate(document)
    props = {p["name"]: p["value"] for p in document["metadata"]["component"]["properties"]}
    assert props["modelseal:gate:decision"].startswith("PASSED under policy sha256:")
    assert {c["name"] for c in document["metadata"]["component"]["components"]} == {
        "config.json", "weights.bin"}  # fmt: skip
    assert any(c.get("purl", "").startswith("pkg:pypi/click@") for c in document["components"])
    # Without the gate key the decision is left out, and the user is told why.
    code, text, err = run_cli("bom", model, "--signature", signature, "--public-key",
                              key_pair[1], "--attestation", evidence)  # fmt: skip
    assert code == 0 and "left out: no --gate-key" in err
    assert "modelseal:gate:decision" not in text
    # An existing output is kept unless --force.
    code, _, err = run_cli("bom", model, "--signature", signature, "--public-key", key_pair[1],
                           "--output", out)  # fmt: skip
    assert code == 2 and "exists" in err
    # --json reports what was written.
    code, text, err = run_cli("bom", model, "--signature", signature, "--public-key", key_pair[1],
                              "--output", out, "--force", "--json")  # fmt: skip
    assert code == 0, err
    summary = json.loads(text)
    assert summary["output"] == str(out) and summary["specVersion"] == "1.6"
    assert summary["serialNumber"] == json.loads(out.read_text())["serialNumber"]


def test_tampered_or_replayed_evidence_is_never_reported(
    run_cli: Run, tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    model, signature = _signed(tmp_path, key_pair)
    private, public = gate_key(tmp_path / "gate")
    lines = bundle(decide(model, signature, key_pair[1]), private).splitlines()
    first = json.loads(lines[0])
    statement = json.loads(base64.b64decode(first["payload"]))
    statement["predicate"]["verificationResult"] = "FAILED"
    first["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    forged = tmp_path / "forged.jsonl"
    forged.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    other_model = tmp_path / "other"
    other_model.mkdir()
    (other_model / "config.json").write_text("{}\n")
    modelseal.sign(other_model, private_key=key_pair[0], signature=tmp_path / "other.sig")
    replayed = tmp_path / "replayed.jsonl"
    replayed.write_text(bundle(decide(other_model, tmp_path / "other.sig", key_pair[1]), private))
    code, text, err = run_cli("bom", model, "--signature", signature, "--public-key", key_pair[1],
                              "--attestation", forged, "--attestation", replayed,
                              "--gate-key", public)  # fmt: skip
    assert code == 0
    assert "gate decision 1 left out: attestation 0 is not signed by a trusted gate key" in err
    assert "gate decision 2 left out: attestation 0 is about another model" in err
    assert "modelseal:gate:decision" not in text


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--public-key", "KEY"], 2, "needs its signature"),
        (["--signature", "SIG", "--public-key", "OTHER"], 1, ""),
        (["--signature", "SIG", "--public-key", "KEY", "--gate-key", "SIG"], 2, ""),
    ],
)
def test_errors_are_one_line(
    run_cli: Run, tmp_path: Path, key_pair: tuple[Path, Path], other_key_pair: tuple[Path, Path],
    args: list[str], code: int, message: str,
) -> None:  # fmt: skip
    model, signature = _signed(tmp_path, key_pair)
    swap = {"KEY": str(key_pair[1]), "OTHER": str(other_key_pair[1]), "SIG": str(signature)}
    got, _, err = run_cli("bom", model, *[swap.get(a, a) for a in args])
    assert got == code, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("modelseal: error: ")
    assert message in err


def test_a_registry_version_gets_its_stored_decisions(
    tmp_path: Path, key_pair: tuple[Path, Path], run_cli: Run
) -> None:
    from modelseal.policy.bom import describe

    env: Env = open_env(tmp_path / "home", f"sqlite:///{tmp_path / 'r.db'}")
    try:
        model, signature = _signed(tmp_path, key_pair)
        sm = SignedModel(model, signature, key_pair[1], key_pair[0])
        backend = LocalBackend(env.registry, env.admin)
        push(backend, model, name="fraud", signature=signature, public_key=key_pair[1],
             metadata={"task": "classification", "owner": "risk"})  # fmt: skip
        private, public = gate_key(tmp_path / "gate")
        env.registry.run(env.admin, AddTrustedKey(pem=public.read_text(), name="gate",
                                                  purpose="gate"))  # fmt: skip
        text = bundle(decide(sm.path, sm.signature, sm.public_key), private)
        env.registry.run(env.admin, AttachAttestation(name="fraud", number=1, bundle=text))
        document, notes = describe("fraud:1", gate_keys=[str(public)], backend=backend,
                                   tool_version="test")  # fmt: skip
        assert notes == []
        _validate(document)
        component = document["metadata"]["component"]
        assert (component["name"], component["version"]) == ("fraud", "1")
        assert component["modelCard"]["modelParameters"]["task"] == "classification"
        props = {p["name"]: p["value"] for p in component["properties"]}
        assert props["modelseal:metadata:owner"] == "risk"
        assert props["modelseal:gate:decision"].startswith("PASSED")
    finally:
        env.registry.close()
    code, out, err = run_cli("bom", "fraud:1", "--gate-key", public, "--home", tmp_path / "home",
                             "--db-url", f"sqlite:///{tmp_path / 'r.db'}")  # fmt: skip
    assert code == 0, err
    _validate(json.loads(out))
    code, _, err = run_cli("bom", "fraud:9", "--home", tmp_path / "home",
                           "--db-url", f"sqlite:///{tmp_path / 'r.db'}")  # fmt: skip
    assert code == 2 and "fraud" in err
