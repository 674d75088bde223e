"""``pytest --modelseal-policy POLICY --modelseal-model REF``: each check of the policy is a test
item, passing or failing with the gate's lines, reported in JUnit XML for any CI."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import modelseal

PAYLOAD = b"cos\nsystem\n(S'echo owned'\ntR."  # a pickle that would run a command; never loaded


def _model(root: Path, key_pair: tuple[Path, Path], *, malicious: bool = False) -> Path:
    model = root / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text('{"layers": 2}\n')
    (model / "weights.bin").write_bytes(b"\x00" * 4096)
    if malicious:
        (model / "extra.pkl").write_bytes(PAYLOAD)
    modelseal.sign(model, private_key=key_pair[0], signature=root / "model.sig")
    return model


def _policy(root: Path, public: Path) -> Path:
    path = root / "policy.yaml"
    path.write_text(f"""
version: 1
name: release
signature: {{keys: [{{name: ci, path: {public}}}]}}
scan: {{max_severity: low}}
rules:
  - {{name: small, expression: 'size(scan.findings) == 0'}}
""")
    return path


def _cases(report: Path) -> dict[str, ET.Element]:
    root = ET.parse(report).getroot()
    return {case.get("name", ""): case for case in root.iter("testcase")}


def test_each_check_is_a_test_in_the_junit_report(
    pytester: pytest.Pytester, key_pair: tuple[Path, Path]
) -> None:
    root = pytester.path
    good = _model(root / "good", key_pair)
    bad = _model(root / "bad", key_pair, malicious=True)
    policy = _policy(root, key_pair[1])
    pytester.makepyfile(test_own="def test_users_own_test():\n    assert True\n")
    report = root / "gate.xml"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--junitxml={report}", "--modelseal-policy", str(policy),
        "--modelseal-model", str(good), "--modelseal-signature", str(root / "good/model.sig"),
    )  # fmt: skip
    result.assert_outcomes(passed=4)
    cases = _cases(report)
    assert set(cases) == {"modelseal-gate[signature]", "modelseal-gate[scan]",
                          "modelseal-gate[rules]", "test_users_own_test"}  # fmt: skip

    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--junitxml={report}", "--modelseal-policy", str(policy),
        "--modelseal-model", str(bad), "--modelseal-signature", str(root / "bad/model.sig"),
    )  # fmt: skip
    result.assert_outcomes(passed=2, failed=2)
    cases = _cases(report)
    scan_failure = cases["modelseal-gate[scan]"].find("failure")
    assert scan_failure is not None
    text = (scan_failure.text or "") + scan_failure.get("message", "")
    assert "scan: required nothing above low; found extra.pkl: " in text
    assert "Traceback" not in text
    assert cases["modelseal-gate[signature]"].find("failure") is None
    assert cases["modelseal-gate[rules]"].find("failure") is not None


def test_a_registry_model_is_gated_by_reference(
    pytester: pytest.Pytester, key_pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelseal.registry.backend import LocalBackend, push
    from modelseal.registry.config import RegistryConfig

    root = pytester.path
    model = _model(root / "m", key_pair)
    home = root / "home"
    backend = LocalBackend.open(RegistryConfig.resolve(home=home))
    try:
        push(backend, model, name="fraud", signature=root / "m/model.sig",
             public_key=key_pair[1])  # fmt: skip
    finally:
        backend.close()
    for var in ("MODELSEAL_DB_URL", "MODELSEAL_BLOB_URL", "MODELSEAL_SERVER", "MODELSEAL_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MODELSEAL_HOME", str(home))
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-rA", "--modelseal-policy", str(_policy(root, key_pair[1])),
        "--modelseal-model", "fraud:1",
    )  # fmt: skip
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*signature: signed by ci*every file matches*"])


def test_unusable_input_is_one_line_not_a_traceback(
    pytester: pytest.Pytester, key_pair: tuple[Path, Path]
) -> None:
    root = pytester.path
    broken = root / "broken.yaml"
    broken.write_text("scan: {max_severity: extreme}\n")
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--modelseal-policy", str(broken), "--modelseal-model", "x"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*modelseal: *invalid field scan.max_severity*"])
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--modelseal-policy", str(_policy(root, key_pair[1]))
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--modelseal-policy needs --modelseal-model*"])
    missing = root / "nowhere"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--modelseal-policy", str(_policy(root, key_pair[1])),
        "--modelseal-model", str(missing), "--modelseal-signature", str(root / "none.sig"),
    )  # fmt: skip
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(["*the gate could not run: *"])
    assert "Traceback" not in result.stdout.str()
