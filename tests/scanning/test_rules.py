"""The rules catalogue is the one place a rule is declared: scanners use its constants, every
finding names a catalogued rule within its severity range, and SARIF and docs/scan-rules.md are
generated from it."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

import modelseal
from modelseal.scanning import rules
from modelseal.scanning.report import FileReport, Finding, Location, ScanReport, Severity
from modelseal.scanning.sarif import to_sarif
from tests.scanning.format_samples import FORMAT_SAMPLES
from tests.scanning.scan_samples import SAMPLES as PICKLE_SAMPLES

ROOT = Path(__file__).resolve().parents[2]
SCANNING = ROOT / "src" / "modelseal" / "scanning"
RULE_ID = re.compile(r"^[a-z0-9]+\.[a-z0-9]+(?:-[a-z0-9]+)*$")


def _scanner_sources() -> list[Path]:
    """Every module of the scanner outside the catalogue itself."""
    files = [p for p in SCANNING.rglob("*.py") if "rules" not in p.relative_to(SCANNING).parts]
    assert len(files) > 20  # the walk found the scanner, not an empty folder
    return files


def test_catalogue_entries_are_complete_and_unique() -> None:
    ids = [r.id for r in rules.CATALOGUE]
    assert len(ids) == len(set(ids)) == len(rules.BY_ID) >= 37
    for rule in rules.CATALOGUE:
        assert RULE_ID.match(rule.id), rule.id
        assert rule.title and "\n" not in rule.title and not rule.title.endswith("."), rule.id
        assert len(rule.danger) > 40 and len(rule.remediation) > 20, rule.id
        assert rule.lowest is None or rule.lowest < rule.severity, rule.id
        assert all(re.fullmatch(r"CVE-\d{4}-\d{4,}", c) for c in rule.cve), rule.id
    assert rules.BY_ID["pickle.global"].severities == "medium to critical"


def test_every_catalogued_rule_is_a_constant_of_the_catalogue() -> None:
    """Declared once in an area module, each rule is ``rules.<ID>`` (``rules.ZIP_BAD_CRC``)."""
    for rule in rules.CATALOGUE:
        name = rule.id.upper().replace(".", "_").replace("-", "_")
        assert getattr(rules, name) is rule, name


def test_scanners_use_catalogue_constants_never_rule_id_strings() -> None:
    """An AST walk: no string literal that is a rule id, and no ``.find("...")`` with a string."""
    problems = []
    for path in _scanner_sources():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Constant) and node.value in rules.BY_ID:
                problems.append(f"{where}: rule id {node.value!r} written as a string")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "find"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                problems.append(f"{where}: find({node.args[0].value!r}) is not a catalogue rule")
    assert problems == []


def test_the_ast_walk_sees_a_string_rule_id(tmp_path: Path) -> None:
    """The walk above is not vacuous: the same check flags a scanner written the old way."""
    tree = ast.parse('ctx.find("zip.bad-crc", Severity.MEDIUM, loc, "CRC-32", "bad")')
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call))
    assert isinstance(call.args[0], ast.Constant) and call.args[0].value in rules.BY_ID


def test_every_finding_names_a_catalogued_rule_within_its_severities(tmp_path: Path) -> None:
    seen: dict[str, set[Severity]] = {}
    for sample in PICKLE_SAMPLES + FORMAT_SAMPLES:
        target = tmp_path / sample.kind
        target.write_bytes(sample.build(tmp_path / f"{sample.kind}.canary"))
        for finding in modelseal.scan(target).findings:
            seen.setdefault(finding.rule, set()).add(finding.severity)
    assert set(seen) <= set(rules.BY_ID), set(seen) - set(rules.BY_ID)
    assert len(seen) >= 20  # the corpora reach most rules
    for rule_id, severities in seen.items():
        rule = rules.BY_ID[rule_id]
        low = rule.lowest if rule.lowest is not None else rule.severity
        assert all(low <= s <= rule.severity for s in severities), (rule_id, severities)


def test_sarif_describes_every_catalogue_rule() -> None:
    finding = Finding("zip.bad-crc", Severity.MEDIUM, Location("m.zip", ("a",)), "CRC-32", "x")
    report = ScanReport((FileReport("m.zip", ("zip",), (finding,), (), 10),))
    driver = to_sarif(report, version="0")["runs"][0]["tool"]["driver"]
    assert [r["id"] for r in driver["rules"]] == [r.id for r in rules.CATALOGUE]
    for descriptor, rule in zip(driver["rules"], rules.CATALOGUE, strict=True):
        assert descriptor["shortDescription"]["text"] == rule.title
        assert rule.remediation in descriptor["help"]["text"]
        assert descriptor["properties"]["tags"][0] == "security"
    result = to_sarif(report, version="0")["runs"][0]["results"][0]
    assert driver["rules"][result["ruleIndex"]]["id"] == "zip.bad-crc"
    pickle_global = driver["rules"][[r.id for r in rules.CATALOGUE].index("pickle.global")]
    assert "external/cwe/cwe-502" in pickle_global["properties"]["tags"]
    assert pickle_global["properties"]["security-severity"] == "9.8"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_scan_rules", ROOT / "scripts/gen_scan_rules.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_published_rules_reference_is_current() -> None:
    assert _generator().check() is None


def test_rules_reference_lists_every_rule() -> None:
    text = _generator().render()
    for rule in rules.CATALOGUE:
        assert f"### `{rule.id}`" in text and rule.remediation in text
    assert "CVE-2024-34359" in text and "CWE-502" in text


def test_rules_check_names_the_regenerate_command_when_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    generator = _generator()
    stale = tmp_path / "scan-rules.md"
    stale.write_text(generator.render().replace("zip.bad-crc", "zip.crc", 1), encoding="utf-8")
    monkeypatch.setattr(generator, "TARGET", stale)
    assert generator.main(["--check"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "python scripts/gen_scan_rules.py" in lines[0]
    assert generator.main([]) == 0
    assert generator.main(["--check"]) == 0
