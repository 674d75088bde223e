"""SARIF 2.1.0 output for GitHub code scanning; rule metadata comes from the rules catalogue."""

from __future__ import annotations

from typing import Any

from modelseal.scanning.report import Finding, Location, ScanReport, Severity
from modelseal.scanning.rules import CATALOGUE, SCAN_UNSCANNABLE, Rule

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
UNSCANNABLE_RULE = SCAN_UNSCANNABLE.id
INFORMATION_URI = "https://github.com/modelseal/modelseal"
RULES_URI = INFORMATION_URI + "/blob/main/docs/scan-rules.md"


def rule_descriptor(rule: Rule) -> dict[str, Any]:
    """A SARIF ``reportingDescriptor`` for a catalogue rule."""
    cwe = ", ".join(f"CWE-{n}" for n in rule.cwe)
    cve = ", ".join(rule.cve)
    refs = "; ".join(part for part in (cwe, cve) if part)
    help_text = rule.remediation + (f" (see {refs})" if refs else "")
    return {
        "id": rule.id,
        "name": rule.id.replace(".", "/"),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.danger},
        "help": {
            "text": help_text,
            "markdown": f"**{rule.title}**\n\n{rule.danger}\n\n**What to do:** {help_text}",
        },
        "helpUri": f"{RULES_URI}#{rule.id.replace('.', '')}",
        "defaultConfiguration": {"level": _LEVEL[rule.severity]},
        "properties": {
            "security-severity": _SCORE[rule.severity],
            "tags": ["security", *(f"external/cwe/cwe-{n}" for n in rule.cwe)],
        },
    }


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
    rules = [rule_descriptor(r) for r in CATALOGUE]
    index = {r.id: i for i, r in enumerate(CATALOGUE)}
    results: list[dict[str, Any]] = []

    def rule(rule_id: str) -> int:
        # A finding of a rule missing from the catalogue (a bug) still gets a descriptor.
        if rule_id not in index:
            index[rule_id] = len(rules)
            rules.append({"id": rule_id, "shortDescription": {"text": rule_id}})
        return index[rule_id]

    finding: Finding
    for finding in report.findings:
        results.append(
            {
                "ruleId": finding.rule,
                "ruleIndex": rule(finding.rule),
                "level": _LEVEL[finding.severity],
                "message": {"text": f"{finding.subject}: {finding.message}"},
                "locations": [_location(finding.location)],
                "properties": {"severity": finding.severity.label, "subject": finding.subject},
            }
        )
    for item in report.unscannable:
        results.append(
            {
                "ruleId": UNSCANNABLE_RULE,
                "ruleIndex": rule(UNSCANNABLE_RULE),
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
                        "informationUri": INFORMATION_URI,
                        "rules": rules,
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
