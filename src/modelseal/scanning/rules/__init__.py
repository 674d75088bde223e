"""The catalogue of scan rules: every rule id the scanner reports, declared once.

A scanner reports a finding with one of these constants (``ctx.find(rules.ZIP_BAD_CRC, ...)``),
never with a string. SARIF rule metadata (:mod:`modelseal.scanning.sarif`) and
``docs/scan-rules.md`` (``scripts/gen_scan_rules.py``) are generated from :data:`CATALOGUE`.

Adding a rule is one edit: declare a :class:`Rule` constant in the module of its area below
(``pickles``, ``archives``, ``frameworks``, ``weights``), then use it in the scanner. A new area
is a new module here, added to ``_AREAS``.
"""

from __future__ import annotations

from types import ModuleType

from modelseal.scanning.report import Severity
from modelseal.scanning.rules import archives, frameworks, pickles, weights
from modelseal.scanning.rules.archives import *  # noqa: F403 -- every rule constant of the area
from modelseal.scanning.rules.frameworks import *  # noqa: F403
from modelseal.scanning.rules.pickles import *  # noqa: F403
from modelseal.scanning.rules.rule import Rule as Rule
from modelseal.scanning.rules.weights import *  # noqa: F403

# Not a finding: a file or region that could not be parsed completely (SARIF reports it as a
# result of this rule so that code scanning shows it).
SCAN_UNSCANNABLE = Rule(
    "scan.unscannable",
    Severity.HIGH,
    "a file could not be scanned completely",
    "Content the scanner cannot parse is content it cannot vouch for: a loader may still read "
    "it, differently. An unscannable file is never clean.",
    "Find out why it does not parse (a truncated download, an unsupported variant, "
    "tampering); do not load it until it scans.",
)

_AREAS: tuple[ModuleType, ...] = (pickles, archives, frameworks, weights)


def _collect() -> tuple[Rule, ...]:
    found: dict[str, Rule] = {}
    for area in _AREAS:
        for value in vars(area).values():
            if isinstance(value, Rule) and found.setdefault(value.id, value) is not value:
                raise ValueError(f"rule id {value.id!r} is declared twice")
    return (*sorted(found.values(), key=lambda r: r.id), SCAN_UNSCANNABLE)


CATALOGUE: tuple[Rule, ...] = _collect()
"""Every rule, sorted by id (``scan.unscannable`` last)."""

BY_ID: dict[str, Rule] = {rule.id: rule for rule in CATALOGUE}
"""The catalogue by rule id."""
