"""The gate's Sigstore keyless signers, with real public bundles verified offline (the network
is cut for every test): the policy names a trusted root and identities; the line a user sees
for each outcome."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import modelseal
from modelseal.errors import InputError, MalformedSignatureError
from modelseal.policy.document import parse_policy
from modelseal.policy.gate import gate
from tests.signing.sigstore_data import (  # noqa: F401 (offline: a fixture)
    DATA,
    IDENTITY,
    ISSUER,
    PRODUCTION,
    ROOT_DIGEST,
    SIGNER,
    STAGING,
    offline,
)

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """A private copy of the real model signed by model_signing v1.1.0 (bundle inside)."""
    return Path(shutil.copytree(DATA / "v1.1.0-sigstore", tmp_path / "model"))


def _policy(
    tmp_path: Path, identities: str, root: Path | str = PRODUCTION, extra: str = ""
) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(
        f"""
version: 1
name: keyless
signature:
  sigstore:
    trusted_root: {root}
    identities:
{identities}
{extra}
"""
    )
    return path


EXACT = f"      - {{issuer: '{ISSUER}', identity: '{IDENTITY}'}}"
PATTERN = f"      - {{issuer: '{ISSUER}', identity_pattern: '[a-z]+@us\\.ibm\\.com'}}"


def _lines(decision: Any) -> list[str]:
    return [line for check in decision.checks for line in check.lines]


@pytest.mark.parametrize("identity", [EXACT, PATTERN], ids=["exact", "pattern"])
def test_a_real_keyless_bundle_passes(tmp_path: Path, model: Path, identity: str) -> None:
    decision = gate(model, policy=_policy(tmp_path, identity), signature=model / "model.sig")
    assert decision.passed
    assert decision.digest == ROOT_DIGEST
    assert _lines(decision)[0] == (
        f"signature: signed by a trusted Sigstore identity ({SIGNER}); every file matches"
    )
    assert decision.checks[0].details == {
        "signer": SIGNER,
        "trusted_as": "a trusted Sigstore identity",
    }


def test_the_trusted_root_is_relative_to_the_policy(tmp_path: Path, model: Path) -> None:
    shutil.copy(PRODUCTION, tmp_path / "root.json")
    decision = gate(
        model, policy=_policy(tmp_path, EXACT, "root.json"), signature=model / "model.sig"
    )
    assert decision.passed


def test_another_identity_fails_with_who_signed(tmp_path: Path, model: Path) -> None:
    other = f"      - {{issuer: '{ISSUER}', identity: 'release@us.ibm.com'}}"
    decision = gate(model, policy=_policy(tmp_path, other), signature=model / "model.sig")
    assert not decision.passed
    assert _lines(decision)[:2] == [
        "signature: required a signer the policy trusts; found none",
        f"signature:   sigstore: Sigstore signer {IDENTITY!r} from issuer {ISSUER!r} is not "
        f"trusted (trusted: 'release@us.ibm.com' from {ISSUER})",
    ]
    assert "scan: not judged: the model was not authenticated" in _lines(decision)


def test_another_issuer_fails(tmp_path: Path, model: Path) -> None:
    other = f"      - {{issuer: 'https://accounts.google.com', identity: '{IDENTITY}'}}"
    decision = gate(model, policy=_policy(tmp_path, other), signature=model / "model.sig")
    assert not decision.passed
    assert (
        "is not trusted (trusted: 'stefanb@us.ibm.com' from https://accounts.google.com)"
        in (_lines(decision)[1])
    )


def test_a_tampered_model_fails_after_the_signer_is_known(tmp_path: Path, model: Path) -> None:
    (model / "signme-2").write_bytes(b"changed!")
    decision = gate(model, policy=_policy(tmp_path, EXACT), signature=model / "model.sig")
    assert not decision.passed
    assert _lines(decision)[0].startswith(
        "signature: signed by a trusted Sigstore identity, but the model does not match: "
        "model does not match its signature: 1 difference (signme-2"
    )


def test_a_tampered_bundle_fails(tmp_path: Path, model: Path) -> None:
    bundle = json.loads((model / "model.sig").read_text())
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    entry["integratedTime"] = str(int(entry["integratedTime"]) + 1)  # inside the cert window
    (model / "model.sig").write_text(json.dumps(bundle))
    decision = gate(model, policy=_policy(tmp_path, EXACT), signature=model / "model.sig")
    assert not decision.passed
    assert _lines(decision)[1].startswith(
        "signature:   sigstore: Sigstore transparency log entry does not verify against trusted "
        "root"
    )


def test_another_instances_trusted_root_fails(tmp_path: Path, model: Path) -> None:
    decision = gate(model, policy=_policy(tmp_path, EXACT, STAGING), signature=model / "model.sig")
    assert not decision.passed
    assert "does not chain to a Fulcio CA of trusted root" in _lines(decision)[1]


def test_a_missing_trusted_root_is_unusable_input(
    tmp_path: Path, model: Path, run_cli: Run
) -> None:
    policy = _policy(tmp_path, EXACT, "missing.json")
    with pytest.raises(InputError, match="does not exist"):
        gate(model, policy=policy, signature=model / "model.sig")
    code, out, err = run_cli("gate", model, "--policy", policy, "--signature", model / "model.sig")
    assert (code, out) == (2, "")
    assert err.strip().splitlines() == [
        f"modelseal: error: trusted root {str(tmp_path / 'missing.json')!r} does not exist; give "
        "the trusted_root.json of the Sigstore instance that signed (from its TUF repository)"
    ]


def test_a_damaged_bundle_is_unusable_input(tmp_path: Path, model: Path) -> None:
    text = (model / "model.sig").read_text()
    (model / "model.sig").write_text(
        text.replace('{"mediaType":', '{"mediaType":"x","mediaType":', 1)
    )
    with pytest.raises(MalformedSignatureError):
        gate(model, policy=_policy(tmp_path, EXACT), signature=model / "model.sig")


def test_a_key_only_policy_says_it_trusts_no_sigstore_identity(
    tmp_path: Path, model: Path, key_pair: tuple[Path, Path]
) -> None:
    policy = tmp_path / "keys.yaml"
    policy.write_text(f"version: 1\nsignature:\n  keys: [{{name: ci, path: {key_pair[1]}}}]\n")
    decision = gate(model, policy=policy, signature=model / "model.sig")
    assert _lines(decision)[:2] == [
        "signature: required a signer the policy trusts; found none",
        "signature:   the model was signed with a certificate; the policy trusts no CAs and no "
        "Sigstore identities",
    ]


def test_a_key_signed_model_still_passes_a_policy_with_sigstore(
    tmp_path: Path, key_pair: tuple[Path, Path], model_dir: Path
) -> None:
    signature = tmp_path / "key.sig"
    modelseal.sign(model_dir, private_key=key_pair[0], signature=signature)
    policy = _policy(tmp_path, EXACT, extra=f"  keys: [{{name: ci, path: {key_pair[1]}}}]")
    assert "\n  keys: [" in policy.read_text()  # a sibling of sigstore, under signature
    decision = gate(model_dir, policy=policy, signature=signature)
    assert decision.passed, _lines(decision)
    assert _lines(decision)[0].startswith("signature: signed by ci (")


def test_cli_gate_passes_and_fails(tmp_path: Path, model: Path, run_cli: Run) -> None:
    policy = _policy(tmp_path, EXACT)
    code, out, _ = run_cli("gate", model, "--policy", policy, "--signature", model / "model.sig")
    assert code == 0
    assert out.splitlines()[0] == (
        f"PASS  signature: signed by a trusted Sigstore identity ({SIGNER}); every file matches"
    )
    (model / "signme-1").write_bytes(b"tampered")
    code, out, _ = run_cli("gate", model, "--policy", policy, "--signature", model / "model.sig")
    assert code == 1
    assert out.splitlines()[0].startswith(
        "FAIL  signature: signed by a trusted Sigstore identity, but the model does not match"
    )


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"trusted_root": "r.json", "identities": [{"issuer": ISSUER}]},
            "invalid field signature.sigstore.identities.0: Value error, give exactly one of "
            "identity and identity_pattern",
        ),
        (
            {
                "trusted_root": "r.json",
                "identities": [{"issuer": ISSUER, "identity": IDENTITY, "identity_pattern": ".*"}],
            },
            "invalid field signature.sigstore.identities.0: Value error, give exactly one of",
        ),
        (
            {"trusted_root": "r.json", "identities": [{"issuer": ISSUER, "identity_pattern": "("}]},
            "invalid field signature.sigstore.identities.0: Value error, identity_pattern is not "
            "a regular expression",
        ),
        (
            {"trusted_root": "r.json", "identities": []},
            "invalid field signature.sigstore.identities: List should have at least 1 item",
        ),
        (
            {"identities": [{"issuer": ISSUER, "identity": IDENTITY}]},
            "invalid field signature.sigstore.trusted_root: Field required",
        ),
        (
            {"trusted_root": "r.json", "identities": [{"identity": IDENTITY}]},
            "invalid field signature.sigstore.identities.0.issuer: Field required",
        ),
        (
            {
                "trusted_root": "r.json",
                "identities": [{"issuer": ISSUER, "identity": IDENTITY, "san": 1}],
            },
            "invalid field signature.sigstore.identities.0.san: Extra inputs are not permitted",
        ),
    ],
)
def test_a_malformed_sigstore_section_names_the_field(
    section: dict[str, Any], message: str
) -> None:
    with pytest.raises(InputError) as caught:
        parse_policy({"version": 1, "signature": {"sigstore": section}}, "policy.yaml")
    assert caught.value.message.startswith(f"policy.yaml: {message}")
    assert caught.value.exit_code == 2


def test_without_the_sigstore_package_the_gate_stops_in_one_line(
    tmp_path: Path, model: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    for name in [m for m in sys.modules if m == "sigstore" or m.startswith("sigstore.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "sigstore", None)
    policy = _policy(tmp_path, EXACT)
    code, out, err = run_cli("gate", model, "--policy", policy, "--signature", model / "model.sig")
    assert (code, out) == (2, "")
    assert err.strip().splitlines() == [
        "modelseal: error: Sigstore verification needs the sigstore package; "
        "install it: pip install 'modelseal[sigstore]'"
    ]
