"""What a scan rule is: a stable id with its severity, its danger and what to do about it."""

from __future__ import annotations

import dataclasses

from modelseal.scanning.report import Severity


@dataclasses.dataclass(frozen=True)
class Rule:
    """One kind of finding, declared once in the catalogue (:mod:`modelseal.scanning.rules`).

    ``id`` is stable (``<format>.<what>``; it travels in JSON and SARIF output: never rename
    one). ``severity`` is what the finding is reported with; when the scanner ranks each case
    (``pickle.global`` ranks the global it found), ``lowest`` is the mildest it reports and
    ``severity`` the worst. ``title`` is one line; ``danger`` says what the construct can do when
    the model is loaded; ``remediation`` says what to do about a finding; ``cwe`` and ``cve``
    name the weakness and known exploits where relevant.
    """

    id: str
    severity: Severity
    title: str
    danger: str
    remediation: str
    lowest: Severity | None = None
    cwe: tuple[int, ...] = ()
    cve: tuple[str, ...] = ()

    @property
    def format(self) -> str:
        """The format (or area) the rule belongs to: the id's first part."""
        return self.id.partition(".")[0]

    @property
    def severities(self) -> str:
        """The severity as people read it (``medium to critical`` for ranked rules)."""
        if self.lowest is None or self.lowest == self.severity:
            return self.severity.label
        return f"{self.lowest.label} to {self.severity.label}"
