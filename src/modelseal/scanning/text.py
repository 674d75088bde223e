"""The human-readable report."""

from __future__ import annotations

from modelseal.scanning.report import ScanReport


def to_text(report: ScanReport) -> str:
    """One block per file with findings or problems, then a summary line."""
    lines: list[str] = []
    for file in report.files:
        fmt = ", ".join(file.formats)
        lines.append(f"{file.path}: {file.status.upper()} ({fmt})")
        for f in file.findings:
            lines.append(f"  [{f.severity.label}] {f.rule} {f.subject} at {f.location}")
            lines.append(f"      {f.message}")
        for u in file.unscannable:
            lines.append(f"  [unscannable] at {u.location}: {u.reason}")
    n_find = len(report.findings)
    n_bad = sum(1 for f in report.files if f.unscannable)
    lines.append(
        f"{len(report.files)} file(s) scanned: {n_find} finding(s), {n_bad} unscannable file(s)"
        f" -> {'CLEAN' if report.clean else 'UNSCANNABLE' if n_bad else 'UNSAFE'}"
    )
    return "\n".join(lines)
