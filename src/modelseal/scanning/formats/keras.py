"""Keras model configs (``.keras`` config.json, the ``model_config`` of ``.h5`` files).

Lambda layers carry marshalled Python bytecode; ``module``/``function`` entries import and call
whatever they name. Both run code when the model is deserialised.
"""

from __future__ import annotations

import json
from typing import Any, BinaryIO

from modelseal.scanning import rules
from modelseal.scanning.context import Context
from modelseal.scanning.report import Location, Severity
from modelseal.scanning.severity import rank_global

MAX_CONFIG = 64 << 20
SAFE_MODULE_PREFIXES = ("keras", "keras_hub", "keras_nlp", "keras_cv", "tf_keras")


def looks_like_keras_config(head: bytes) -> bool:
    return b'"class_name"' in head and (b'"config"' in head or b'"module"' in head)


def scan_json(
    ctx: Context, stream: BinaryIO, size: int | None, location: Location, depth: int = 0
) -> None:
    """Scan a JSON file that is a Keras model config; other JSON is data and passes."""
    head = stream.read(4096)
    stream.seek(-len(head), 1)
    if looks_like_keras_config(head):
        scan_keras_json(ctx, stream, size, location)
        ctx.saw("keras-config")
        ctx.last_json_kind = "keras-config"


def scan_keras_json(ctx: Context, stream: BinaryIO, size: int | None, location: Location) -> None:
    if size is not None and size > MAX_CONFIG:
        ctx.fail(location, f"Keras config larger than {MAX_CONFIG} bytes")
        return
    scan_keras_text(ctx, stream.read(MAX_CONFIG + 1), location)


def scan_keras_text(ctx: Context, raw: bytes | str, location: Location) -> None:
    """Report code-running constructs anywhere in a Keras config document."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        ctx.fail(location, f"Keras config is not valid JSON: {exc}")
        return
    _walk(ctx, doc, location, 0)


def _walk(ctx: Context, node: Any, loc: Location, depth: int) -> None:
    if depth > 200:
        ctx.fail(loc, "Keras config nests too deeply")
        return
    if isinstance(node, list):
        for item in node:
            _walk(ctx, item, loc, depth + 1)
        return
    if not isinstance(node, dict):
        return
    cls = node.get("class_name")
    module = node.get("module")
    config = node.get("config")
    if cls in ("Lambda", "__lambda__", "TFOpLambda", "SlicingOpLambda"):
        fn = config.get("function") if isinstance(config, dict) else None
        detail = fn if isinstance(fn, str) else cls
        ctx.find(
            rules.KERAS_LAMBDA,
            Severity.CRITICAL if cls != "TFOpLambda" else Severity.HIGH,
            loc,
            f"{cls}:{str(detail)[:60]}",
            "Lambda layer: deserialising the model runs the Python code it carries",
        )
    if isinstance(module, str) and module and module.split(".")[0] not in SAFE_MODULE_PREFIXES:
        name = config if cls == "function" and isinstance(config, str) else cls
        severity, why = rank_global(module, str(name))
        ctx.find(
            rules.KERAS_MODULE,
            severity,
            loc,
            f"{module}.{name}",
            f"config imports {module}.{name}: {why}",
        )
    for key, value in node.items():
        if key == "registered_name" and isinstance(value, str) and ">" in value:
            ctx.find(
                rules.KERAS_CUSTOM_OBJECT,
                Severity.MEDIUM,
                loc,
                value,
                "custom registered object: loading needs (and runs) user code",
            )
        _walk(ctx, value, loc, depth + 1)
