"""SARIF 2.1.0 output for GitHub code scanning."""

from __future__ import annotations

from typing import Any

from modelseal.scanning.report import Finding, Location, ScanReport, Severity

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
_SCORE = {
    Severity.CRITICAL: "9.8",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.0",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}
UNSCANNABLE_RULE = "scan.unscannable"


def _location(loc: Location) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": {"uri": loc.path.replace("\\", "/")}}
    if loc.offset is not None and not loc.members:
        physical["region"] = {"byteOffset": loc.offset, "byteLength": 1}
    out: dict[str, Any] = {"physicalLocation": physical}
    if loc.members:
        out["logicalLocations"] = [
            {"fullyQualifiedName": " > ".join(loc.members), "kind": "member"}
        ]
        out["message"] = {"text": str(loc)}
    return out


def to_sarif(report: ScanReport, *, version: str) -> dict[str, Any]:
    """The report as one SARIF 2.1.0 log with a single run."""
    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []

    def rule(rule_id: str, severity: Severity, text: str) -> None:
        entry = rules.setdefault(
            rule_id,
            {
                "id": rule_id,
                "shortDescription": {"text": text},
                "properties": {"security-severity": _SCORE[severity], "tags": ["security"]},
            },
        )
        if float(entry["properties"]["security-severity"]) < float(_SCORE[severity]):
            entry["properties"]["security-severity"] = _SCORE[severity]

    finding: Finding
    for finding in report.findings:
        rule(finding.rule, finding.severity, finding.rule.replace(".", " ").replace("-", " "))
        results.append(
            {
                "ruleId": finding.rule,
                "level": _LEVEL[finding.severity],
                "message": {"text": f"{finding.subject}: {finding.message}"},
                "locations": [_location(finding.location)],
                "properties": {"severity": finding.severity.label, "subject": finding.subject},
            }
        )
    for item in report.unscannable:
        rule(UNSCANNABLE_RULE, Severity.HIGH, "file could not be scanned completely")
        results.append(
            {
                "ruleId": UNSCANNABLE_RULE,
                "level": "error",
                "message": {"text": f"unscannable: {item.reason}"},
                "locations": [_location(item.location)],
            }
        )
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "modelseal",
                        "version": version,
                        "informationUri": "https://github.com/modelseal/modelseal",
                        "rules": sorted(rules.values(), key=lambda r: str(r["id"])),
                    }
                },
                "results": results,
                "artifacts": [
                    {"location": {"uri": f.path.replace("\\", "/")}, "length": f.size}
                    for f in report.files
                ],
                "invocations": [
                    {"executionSuccessful": not report.unscannable, "exitCode": report.exit_code}
                ],
            }
        ],
    }
