"""The gate, check by check: each passes and fails with the line a user sees; a malformed
policy is unusable input (exit 2) naming the bad field."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

import modelseal
from modelseal.errors import InputError
from modelseal.policy.document import load_policy, parse_policy
from modelseal.policy.environment import Environment, Package, capture
from modelseal.policy.gate import gate
from tests.interop._pki import build_pki

Run = Callable[..., tuple[int, str, str]]
PAYLOAD = b"cos\nsystem\n(S'echo owned'\ntR."  # a pickle that would run a command; never loaded


def _model(root: Path, *, malicious: bool = False) -> Path:
    model = root / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text('{"layers": 2}\n')
    (model / "weights.bin").write_bytes(b"\x00" * 4096)
    if malicious:
        (model / "extra.pkl").write_bytes(PAYLOAD)
    return model


def _policy(root: Path, text: str) -> Path:
    path = root / "policy.yaml"
    path.write_text(text)
    return path


def _signed(tmp_path: Path, key_pair: tuple[Path, Path], **kw: bool) -> tuple[Path, Path]:
    model = _model(tmp_path, **kw)
    signature = tmp_path / "model.sig"
    modelseal.sign(model, private_key=key_pair[0], signature=signature)
    return model, signature


def test_a_trusted_signer_and_a_clean_scan_pass(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    model, signature = _signed(tmp_path, key_pair)
    policy = _policy(
        tmp_path,
        f"""
version: 1
name: release
signature:
  keys: [{{name: ci, path: {key_pair[1]}}}]
scan: {{max_severity: low}}
""",
    )
    decision = gate(model, policy=policy, signature=signature)
    assert decision.passed
    assert decision.digest == modelseal.digest(model).root_digest.hex()
    assert decision.policy == "release" and len(decision.policy_digest) == 64
    lines = [line for c in decision.checks for line in c.lines]
    assert lines[0].startswith("signature: signed by ci (")
    assert "scan: required no finding above low; found none" in lines


def test_an_untrusted_signer_fails_and_nothing_else_is_judged(
    tmp_path: Path, key_pair: tuple[Path, Path], other_key_pair: tuple[Path, Path]
) -> None:
    model, signature = _signed(tmp_path, key_pair)
    policy = _policy(tmp_path, f"signature: {{keys: [{{name: ops, path: {other_key_pair[1]}}}]}}")
    decision = gate(model, policy=policy, signature=signature)
    assert not decision.passed
    signature_check = decision.checks[0]
    assert signature_check.lines[0] == "signature: required a signer the policy trusts; found none"
    assert "key 'ops': not the key that signed" in signature_check.lines[1]
    assert decision.checks[1].lines == ["scan: not judged: the model was not authenticated"]


def test_a_modified_model_fails_the_signature_check(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    model, signature = _signed(tmp_path, key_pair)
    data = bytearray((model / "weights.bin").read_bytes())
    data[100] ^= 0x01
    (model / "weights.bin").write_bytes(bytes(data))
    policy = _policy(tmp_path, f"signature: {{keys: [{{name: ci, path: {key_pair[1]}}}]}}")
    decision = gate(model, policy=policy, signature=signature)
    assert not decision.passed
    line = decision.checks[0].lines[0]
    assert line.startswith("signature: signed by ci, but the model does not match")
    assert "weights.bin" in line


def test_certificate_signers_are_matched_by_subject_and_issuer(
    tmp_path: Path,
) -> None:
    pki = build_pki(tmp_path / "pki")
    model = _model(tmp_path)
    signature = tmp_path / "model.sig"
    modelseal.sign(model, private_key=pki.leaf.key_path, signature=signature,
                   certificate=pki.leaf.cert_path,
                   certificate_chain=[pki.intermediate.cert_path])  # fmt: skip
    good = _policy(
        tmp_path,
        f"""
signature:
  certificates:
    - anchors: [{pki.root.cert_path}]
      subject: "CN=leaf,*"
      issuer: "CN=intermediate,*"
""",
    )
    assert gate(model, policy=good, signature=signature).passed
    bad = _policy(
        tmp_path,
        f"""
signature:
  certificates:
    - anchors: [{pki.root.cert_path}]
      subject: "CN=release-bot,*"
""",
    )
    decision = gate(model, policy=bad, signature=signature)
    assert not decision.passed
    assert (
        "certificate subject 'CN=leaf,O=modelseal tests' does not match 'CN=release-bot,*'"
        in (decision.checks[0].lines[1])
    )


def test_scan_findings_fail_unless_waived_until_a_date(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    model, signature = _signed(tmp_path, key_pair, malicious=True)
    keys = f"signature: {{keys: [{{name: ci, path: {key_pair[1]}}}]}}"
    strict = _policy(tmp_path, keys + "\nscan: {max_severity: medium}\n")
    decision = gate(model, policy=strict, signature=signature)
    scan = next(c for c in decision.checks if c.check == "scan")
    assert not decision.passed and not scan.passed
    assert scan.lines[0].startswith("scan: required nothing above medium; found extra.pkl: ")
    assert "(critical, " in scan.lines[0]
    rule = scan.lines[0].split("(critical, ")[1].rstrip(")")
    waived = _policy(
        tmp_path,
        keys
        + f"""
scan:
  waivers: [{{rule: {rule}, reason: "test fixture", expires: 2999-01-01}}]
""",
    )
    decision = gate(model, policy=waived, signature=signature)
    scan = next(c for c in decision.checks if c.check == "scan")
    assert scan.passed and scan.lines[-1].startswith("scan: waived until 2999-01-01: extra.pkl")
    expired = _policy(
        tmp_path,
        keys
        + f"""
scan:
  waivers: [{{rule: {rule}, reason: "test fixture", expires: 2020-01-01}}]
""",
    )
    decision = gate(model, policy=expired, signature=signature, today=dt.date(2026, 12, 4))
    scan = next(c for c in decision.checks if c.check == "scan")
    assert not scan.passed and "its waiver expired on 2020-01-01" in scan.lines[0]


def test_environment_differences_are_reported_one_per_line(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    model, signature = _signed(tmp_path, key_pair)
    here = capture()
    trained = Environment(
        python="2.7.18",
        packages={**{k: v for k, v in here.packages.items() if k != "click"},
                  "pydantic": Package(version="0.0.1"), "click": here.packages["click"]},
    )  # fmt: skip
    env_file = tmp_path / "env.json"
    env_file.write_text(json.dumps(trained.model_dump()))
    policy = _policy(
        tmp_path,
        f"""
signature: {{keys: [{{name: ci, path: {key_pair[1]}}}]}}
environment: {{python: minor, packages: [pydantic, click]}}
""",
    )
    decision = gate(model, policy=policy, signature=signature, environment=env_file)
    check = next(c for c in decision.checks if c.check == "environment")
    assert not check.passed
    assert check.lines[0].startswith("environment: Python 2.7.18 at training, ")
    assert any(line.startswith("environment: pydantic 0.0.1 at training, ") for line in check.lines)
    assert not any("click" in line for line in check.lines)
    missing = gate(model, policy=policy, signature=signature)
    check = next(c for c in missing.checks if c.check == "environment")
    assert check.lines == [
        "environment: required the model's recorded training environment; found none"
    ]


def test_custom_rules_hold_fail_or_fail_closed(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    model, signature = _signed(tmp_path, key_pair)
    policy = _policy(
        tmp_path,
        f"""
signature: {{keys: [{{name: ci, path: {key_pair[1]}}}]}}
rules:
  - {{name: clean, expression: 'scan.status == "clean"'}}
  - {{name: named, expression: 'model.ref.endsWith("model")'}}
  - {{name: owner, expression: 'metadata.owner == "risk"', message: "the model has no owner"}}
  - {{name: typed, expression: '1'}}
""",
    )
    decision = gate(model, policy=policy, signature=signature)
    rules = next(c for c in decision.checks if c.check == "rules")
    assert not rules.passed
    assert rules.lines[0] == "rules: clean: holds" and rules.lines[1] == "rules: named: holds"
    assert rules.lines[2].startswith("rules: owner: could not be evaluated")
    assert rules.lines[3] == "rules: typed: required '1' to be true; got 1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 2", "invalid field version"),
        ("signature: {keys: [{name: x, colour: red}]}", "invalid field signature.keys.0.colour"),
        ("scan: {max_severity: extreme}", "invalid field scan.max_severity"),
        ("scan: {waivers: [{rule: x, reason: y, expires: soon}]}", "scan.waivers.0.expires"),
        ("- a list", "a policy is a mapping"),
        ("signature: [unclosed", "not valid YAML at line 1"),
        ("rules: [{name: r, expression: '1 +'}]", "rules[0] (r): the expression does not compile"),
    ],
)
def test_malformed_policies_name_the_bad_field(
    tmp_path: Path, key_pair: tuple[Path, Path], text: str, message: str
) -> None:
    model, signature = _signed(tmp_path, key_pair)
    with pytest.raises(InputError, match=re.escape(message)) as err:
        gate(model, policy=_policy(tmp_path, text), signature=signature)
    assert err.value.exit_code == 2


def test_the_published_schema_is_the_policy_model() -> None:
    import importlib.util

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("gen", root / "scripts/gen_policy_schema.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.check() is None


def test_the_cli_prints_every_line_and_exits_by_the_decision(
    run_cli: Run, tmp_path: Path, key_pair: tuple[Path, Path], other_key_pair: tuple[Path, Path]
) -> None:
    model, signature = _signed(tmp_path, key_pair)
    good = _policy(tmp_path, f"signature: {{keys: [{{name: ci, path: {key_pair[1]}}}]}}")
    code, out, err = run_cli("gate", model, "--policy", good, "--signature", signature)
    assert code == 0, err
    assert out.splitlines()[0].startswith("PASS  signature: signed by ci")
    assert "gate PASSED" in out.splitlines()[-1]
    bad = _policy(tmp_path, f"signature: {{keys: [{{name: ops, path: {other_key_pair[1]}}}]}}")
    code, out, err = run_cli("gate", model, "--policy", bad, "--signature", signature, "--json")
    assert code == 1
    assert json.loads(out)["passed"] is False
    assert err.strip().splitlines()[-1].startswith("modelseal: error: the gate refused")
    code, _, err = run_cli("gate", model, "--policy", tmp_path / "missing.yaml", "--signature",
                           signature)  # fmt: skip
    assert code == 2 and "cannot read policy" in err


def test_policies_parse_from_python(tmp_path: Path) -> None:
    policy = parse_policy({"version": 1, "scan": {"max_severity": "high"}})
    assert policy.scan is not None and policy.scan.max_severity == "high"
    path = _policy(tmp_path, "name: x\n")
    assert load_policy(path).policy.name == "x"


def test_a_waiver_holds_only_for_the_files_it_names(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    model, signature = _signed(tmp_path, key_pair, malicious=True)
    keys = f"signature: {{keys: [{{name: ci, path: {key_pair[1]}}}]}}"
    decision = gate(model, policy=_policy(tmp_path, keys), signature=signature)
    scan = next(c for c in decision.checks if c.check == "scan")
    rule = scan.lines[0].split("(critical, ")[1].rstrip(")")
    elsewhere = _policy(
        tmp_path,
        keys
        + f"""
scan:
  waivers: [{{rule: {rule}, path: "weights/*", reason: "not this file", expires: 2999-01-01}}]
""",
    )
    scan = next(c for c in gate(model, policy=elsewhere, signature=signature).checks
                if c.check == "scan")  # fmt: skip
    assert not scan.passed and scan.lines[0].startswith("scan: required no finding; found extra")
    here = _policy(
        tmp_path,
        keys
        + f"""
scan:
  waivers: [{{rule: {rule}, path: "*.pkl", reason: "fixture", expires: 2999-01-01}}]
""",
    )
    assert gate(model, policy=here, signature=signature).passed


def test_allowed_globals_let_a_team_s_own_classes_through(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    model = _model(tmp_path)
    # A pickle of a class from the team's own package (protocol 2: GLOBAL, EMPTY_TUPLE, NEWOBJ).
    (model / "head.pkl").write_bytes(b"\x80\x02cteam_models.heads\nLinearHead\n)\x81}b.")
    signature = tmp_path / "model.sig"
    modelseal.sign(model, private_key=key_pair[0], signature=signature)
    keys = f"signature: {{keys: [{{name: ci, path: {key_pair[1]}}}]}}"
    strict = gate(model, policy=_policy(tmp_path, keys), signature=signature)
    assert not strict.passed
    assert any("team_models.heads" in line for line in strict.failures)
    allowed = _policy(tmp_path, keys + "\nscan: {allow: [team_models.heads.LinearHead]}\n")
    assert gate(model, policy=allowed, signature=signature).passed
