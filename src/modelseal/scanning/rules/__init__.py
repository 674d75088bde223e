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
from modelseal.scanning.rules.archives import (
    ARCHIVE_BOMB,
    ARCHIVE_DEPTH,
    TAR_LINK,
    TAR_MEMBER_NAME,
    ZIP_BAD_CRC,
    ZIP_DUPLICATE_NAME,
    ZIP_ENCRYPTED,
    ZIP_HEADER_MISMATCH,
    ZIP_MEMBER_NAME,
    ZIP_NAME_MISMATCH,
    ZIP_SIZE_MISMATCH,
    ZIP_TOO_MANY_MEMBERS,
)
from modelseal.scanning.rules.frameworks import (
    HDF5_EXTERNAL_LINK,
    HDF5_EXTERNAL_STORAGE,
    KERAS_CUSTOM_OBJECT,
    KERAS_LAMBDA,
    KERAS_MODULE,
    NATIVE_LIBRARY,
    NPY_OBJECT_ARRAY,
    ONNX_CUSTOM_DOMAIN,
    ONNX_EXTERNAL_DATA,
    ONNX_PYTHON_OP,
    SAVEDMODEL_OP,
    TORCHSCRIPT_OP,
)
from modelseal.scanning.rules.pickles import (
    PICKLE_CALL_RESULT,
    PICKLE_DYNAMIC_GLOBAL,
    PICKLE_EXTENSION,
    PICKLE_FRAME_DIVERGENCE,
    PICKLE_GLOBAL,
    PICKLE_LIMIT,
    PICKLE_MEMO_INDEX,
    PICKLE_MUTATES_GLOBAL,
)
from modelseal.scanning.rules.rule import Rule
from modelseal.scanning.rules.weights import (
    GGUF_CHAT_TEMPLATE,
    GGUF_COUNTS,
    GGUF_METADATA,
    GGUF_TENSOR,
    SAFETENSORS_HEADER,
)

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
    found = [value for area in _AREAS for value in vars(area).values() if isinstance(value, Rule)]
    return (*sorted(found, key=lambda r: r.id), SCAN_UNSCANNABLE)


CATALOGUE: tuple[Rule, ...] = _collect()
"""Every rule, sorted by id (``scan.unscannable`` last)."""

BY_ID: dict[str, Rule] = {rule.id: rule for rule in CATALOGUE}
"""The catalogue by rule id."""

__all__ = [
    "ARCHIVE_BOMB",
    "ARCHIVE_DEPTH",
    "BY_ID",
    "CATALOGUE",
    "GGUF_CHAT_TEMPLATE",
    "GGUF_COUNTS",
    "GGUF_METADATA",
    "GGUF_TENSOR",
    "HDF5_EXTERNAL_LINK",
    "HDF5_EXTERNAL_STORAGE",
    "KERAS_CUSTOM_OBJECT",
    "KERAS_LAMBDA",
    "KERAS_MODULE",
    "NATIVE_LIBRARY",
    "NPY_OBJECT_ARRAY",
    "ONNX_CUSTOM_DOMAIN",
    "ONNX_EXTERNAL_DATA",
    "ONNX_PYTHON_OP",
    "PICKLE_CALL_RESULT",
    "PICKLE_DYNAMIC_GLOBAL",
    "PICKLE_EXTENSION",
    "PICKLE_GLOBAL",
    "PICKLE_LIMIT",
    "PICKLE_MEMO_INDEX",
    "PICKLE_MUTATES_GLOBAL",
    "PICKLE_FRAME_DIVERGENCE",
    "SAFETENSORS_HEADER",
    "SAVEDMODEL_OP",
    "SCAN_UNSCANNABLE",
    "TAR_LINK",
    "TAR_MEMBER_NAME",
    "TORCHSCRIPT_OP",
    "ZIP_BAD_CRC",
    "ZIP_DUPLICATE_NAME",
    "ZIP_ENCRYPTED",
    "ZIP_HEADER_MISMATCH",
    "ZIP_MEMBER_NAME",
    "ZIP_NAME_MISMATCH",
    "ZIP_SIZE_MISMATCH",
    "ZIP_TOO_MANY_MEMBERS",
    "Rule",
]
