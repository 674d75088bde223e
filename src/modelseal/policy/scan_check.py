"""What scanning the model's verified bytes found, against the policy: findings above the
allowed severity fail (unless waived, with a reason, until an expiry date); anything that could
not be scanned always fails."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from modelseal.policy.decision import CheckResult
from modelseal.policy.document import SEVERITIES, ScanPolicy, Waiver


def scan_buffers(buffers: Mapping[str, Any], allow: Sequence[str] = ()) -> dict[str, Any]:
    """Scan the verified bytes (file name -> buffer) as one report (``modelseal scan --json``);
    ``allow`` extends the pickle globals allowed (see ``modelseal scan --allow``)."""
    from modelseal.scanning.allowlist import Allowlist
    from modelseal.scanning.engine import Options, scan_bytes

    options = Options(allowlist=Allowlist().extended(allow))
    files = [scan_bytes(buffers[name], options, name=name).to_dict() for name in sorted(buffers)]
    findings = sum(len(f["findings"]) for f in files)
    unscannable = sum(len(f["unscannable"]) for f in files)
    status = "unscannable" if unscannable else "unsafe" if findings else "clean"
    return {"status": status, "files": files}


def judge(policy: ScanPolicy | None, report: Mapping[str, Any], today: dt.date) -> CheckResult:
    """The scan check for ``report`` under ``policy`` (no scan section: no finding may remain)."""
    section = policy or ScanPolicy()
    limit = section.max_severity
    allowed = SEVERITIES.index(limit) if limit is not None else -1
    waivers = section.waivers
    lines: list[str] = []
    failed: list[str] = []
    waived: list[str] = []
    for entry in report.get("files", []):
        path = entry.get("path", "?")
        for region in entry.get("unscannable", []):
            failed.append(f"scan: {path}: could not be scanned ({region.get('reason', '?')})")
        for finding in entry.get("findings", []):
            severity = str(finding.get("severity", "critical"))
            rule = str(finding.get("rule", "?"))
            what = f"{path}: {finding.get('subject', '?')} ({severity}, {rule})"
            waiver = _waiver(waivers, rule, str(path))
            if waiver is not None and waiver.expires >= today:
                waived.append(f"scan: waived until {waiver.expires}: {what}: {waiver.reason}")
            elif waiver is not None:
                failed.append(f"scan: {what}: its waiver expired on {waiver.expires}")
            elif _rank(severity) > allowed:
                required = f"nothing above {limit}" if limit else "no finding"
                failed.append(f"scan: required {required}; found {what}")
    if failed:
        lines = failed + waived
    else:
        required = f"no finding above {limit}" if limit else "no finding"
        lines = [f"scan: required {required}; found none", *waived]
    return CheckResult(
        check="scan",
        passed=not failed,
        lines=lines,
        details={"status": report.get("status"), "waived": len(waived)},
    )


def _rank(severity: str) -> int:
    """A severity's rank; an unknown one ranks above critical (fail closed)."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def _waiver(waivers: Sequence[Waiver], rule: str, path: str) -> Waiver | None:
    """The waiver for ``rule`` on ``path``: a current one if any, else an expired one."""
    matching = [w for w in waivers if w.rule == rule and fnmatchcase(path, w.path)]
    return max(matching, key=lambda w: w.expires, default=None)
