"""Rules of weights-only formats: safetensors and GGUF."""

from __future__ import annotations

from modelseal.scanning.report import Severity
from modelseal.scanning.rules.rule import Rule

SAFETENSORS_HEADER = Rule(
    "safetensors.header",
    Severity.HIGH,
    "a safetensors header is malformed or inconsistent",
    "An oversized, invalid or duplicate-keyed JSON header, tensors whose dtype, shape and "
    "offsets disagree, overlapping or out-of-bounds data, or unclaimed bytes make loaders "
    "crash, read out of bounds, or disagree on the weights (medium for unknown dtypes and "
    "unexpected fields).",
    "Re-save the model with a current safetensors library from trusted weights.",
    lowest=Severity.MEDIUM,
    cwe=(20, 125),
)
GGUF_COUNTS = Rule(
    "gguf.counts",
    Severity.HIGH,
    "a GGUF file declares absurd tensor or metadata counts",
    "Counts far beyond any model make loaders allocate unbounded memory before reading.",
    "Do not load the file; re-convert the model from trusted weights.",
    cwe=(789,),
)
GGUF_METADATA = Rule(
    "gguf.metadata",
    Severity.MEDIUM,
    "a GGUF metadata value is invalid",
    "An alignment that is not a power of two puts tensor data where loaders do not expect it.",
    "Re-convert the model from trusted weights.",
    cwe=(20,),
)
GGUF_TENSOR = Rule(
    "gguf.tensor",
    Severity.HIGH,
    "a GGUF tensor is out of bounds, overlapping, misaligned or of an unknown type",
    "Tensor data past the end of the file or overlapping another makes loaders read out of "
    "bounds; unknown types and partial quantisation blocks cannot be bounds-checked (low "
    "and medium).",
    "Do not load the file; re-convert the model from trusted weights.",
    lowest=Severity.LOW,
    cwe=(125,),
)
GGUF_CHAT_TEMPLATE = Rule(
    "gguf.chat-template",
    Severity.CRITICAL,
    "a GGUF chat template reaches Python internals from Jinja",
    "Chat templates are rendered with Jinja; a template that walks __class__, __globals__ or "
    "similar escapes the sandbox of non-sandboxed renderers and runs code.",
    "Render chat templates only in a sandboxed Jinja environment; replace the template with a "
    "reviewed one.",
    cwe=(1336,),
    cve=("CVE-2024-34359",),
)
