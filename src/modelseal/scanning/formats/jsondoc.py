"""JSON files: parsed once within bounds, then checked for everything that makes a loader run
code (Keras configs, Hugging Face remote-code hooks, Hydra targets). JSON that does not parse
is handed to the text scanner (a YAML loader may still read it)."""

from __future__ import annotations

import json
import re
from typing import Any, BinaryIO

from modelseal.scanning import rules
from modelseal.scanning.context import Context
from modelseal.scanning.formats.doctree import TooDeep, TooLarge, iter_dicts
from modelseal.scanning.formats.hfconfig import scan_hf_doc
from modelseal.scanning.formats.hydra import scan_hydra_dicts
from modelseal.scanning.formats.keras import is_keras_doc, scan_keras_doc
from modelseal.scanning.formats.textdoc import scan_text
from modelseal.scanning.report import Location, Severity

MAX_JSON = 256 << 20
MAX_JSON_NODES = 20_000_000  # values parsed into Python objects (about 1 GB at most)
_HOOK_KEYS = re.compile(
    rb'"(?:auto_map|_target_|target|cls|class_name|module|trust_remote_code|custom_pipelines|'
    rb'type|_class_name|function_type)"\s*:'
)


def scan_json(
    ctx: Context, stream: BinaryIO, size: int | None, location: Location, depth: int = 0
) -> None:
    """Scan a stream sniffed as JSON (``ctx.last_json_kind`` says what it turned out to be)."""
    if size is not None and size > MAX_JSON:
        ctx.fail(location, f"JSON document larger than {MAX_JSON} bytes is not scanned")
        return
    raw = stream.read(MAX_JSON + 1)
    if len(raw) > MAX_JSON:
        ctx.fail(location, f"JSON document larger than {MAX_JSON} bytes is not scanned")
        return
    if raw.count(b"[") + raw.count(b"{") + raw.count(b",") > MAX_JSON_NODES:
        # Parsing would take gigabytes: look for the keys that matter without parsing.
        if _HOOK_KEYS.search(raw):
            ctx.fail(location, f"JSON document with over {MAX_JSON_NODES} values names code")
        return
    docs = _parse(ctx, raw, location)
    if docs is None:
        return
    if not docs:  # not JSON after all: YAML (a superset) or text
        stream.seek(0)
        ctx.last_json_kind = scan_text(ctx, stream, size, location, depth) or "unknown"
        return
    for doc in docs:
        scan_json_doc(ctx, doc, location)


def _parse(ctx: Context, raw: bytes, location: Location) -> list[Any] | None:
    """The documents in ``raw`` (one, or one per line for JSON Lines); ``[]`` when it is not
    JSON; None when a finding or failure was recorded."""
    try:
        return [json.loads(raw)]
    except RecursionError:
        _too_deep(ctx, location, "nests too deeply to parse")
        return None
    except UnicodeDecodeError:
        return []
    except ValueError as exc:
        if not str(exc).startswith("Extra data"):
            return []
    docs = []
    for line in raw.splitlines():
        if line.strip():
            try:
                docs.append(json.loads(line))
            except RecursionError:
                _too_deep(ctx, location, "nests too deeply to parse")
                return None
            except ValueError:
                return []
    return docs


def _too_deep(ctx: Context, location: Location, what: str) -> None:
    ctx.find(
        rules.CONFIG_NESTING,
        Severity.MEDIUM,
        location,
        "nesting",
        f"JSON document {what}: a resource bomb that stops or exhausts loaders",
    )
    ctx.fail(location, f"JSON document {what}")


def scan_json_doc(ctx: Context, doc: Any, location: Location) -> None:
    """Check one parsed JSON document."""
    try:
        dicts = list(iter_dicts(doc))
    except (TooDeep, TooLarge) as exc:
        _too_deep(ctx, location, f"is {exc}")
        return
    if is_keras_doc(doc) or any("class_name" in d and "config" in d for d in dicts):
        if is_keras_doc(doc):
            ctx.saw("keras-config")
            ctx.last_json_kind = "keras-config"
        scan_keras_doc(ctx, doc, location)
    scan_hf_doc(ctx, doc, dicts, location)
    scan_hydra_dicts(ctx, dicts, location)
