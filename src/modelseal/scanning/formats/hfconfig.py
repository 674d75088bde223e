"""Hugging Face configs that make a loader run code: ``auto_map`` (``config.json``,
``tokenizer_config.json``, processor configs), ``custom_pipelines``, ``trust_remote_code``,
sentence-transformers ``modules.json`` and diffusers ``model_index.json`` component classes.

``auto_map`` names Python that ``from_pretrained(..., trust_remote_code=True)`` imports: a local
``modeling_*.py`` (shipped next to the config, so it runs with the model) or
``other/repo--module.Class`` (code fetched from another repository, never scanned here).
"""

from __future__ import annotations

import re
from typing import Any

from modelseal.scanning import rules
from modelseal.scanning.context import Context
from modelseal.scanning.formats.doctree import dotted
from modelseal.scanning.report import Location, Severity
from modelseal.scanning.severity import rank_global

_ST_PACKAGES = ("sentence_transformers",)
_MODULE_NAME = re.compile(r"[a-z_][a-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
_DIFFUSERS_LIBRARIES = frozenset(
    {"diffusers", "transformers", "onnxruntime", "optimum", "k_diffusion", "peft"}
)


def scan_hf_doc(ctx: Context, doc: Any, dicts: list[dict[Any, Any]], loc: Location) -> None:
    """Report remote-code hooks in a parsed JSON config (``dicts``: all its mappings)."""
    for node in dicts:
        auto_map = node.get("auto_map")
        if isinstance(auto_map, dict):
            _auto_map(ctx, auto_map, loc)
        if node.get("trust_remote_code") is True:
            ctx.find(
                rules.HF_TRUST_REMOTE_CODE,
                Severity.HIGH,
                loc,
                "trust_remote_code",
                "config asks the loader to trust remote code: it imports and runs Python "
                "shipped with (or fetched for) the model",
            )
        pipelines = node.get("custom_pipelines")
        if isinstance(pipelines, dict) and pipelines:
            for task, spec in pipelines.items():
                impl = spec.get("impl") if isinstance(spec, dict) else spec
                _code_ref(ctx, rules.HF_CUSTOM_PIPELINE, f"{task}:{impl}", str(impl), loc)
        if "_diffusers_version" in node or "_class_name" in node:
            _diffusers(ctx, node, loc)
    if isinstance(doc, list) and doc and all(_is_st_module(m) for m in doc):
        for entry in doc:
            kind = entry["type"]
            if not kind.startswith(tuple(p + "." for p in _ST_PACKAGES)):
                parts = dotted(kind)
                module, name = parts if parts else (kind, "")
                severity, why = rank_global(module, name)
                ctx.find(
                    rules.HF_SENTENCE_TRANSFORMERS_MODULE,
                    max(severity, Severity.HIGH),
                    loc,
                    kind,
                    f"sentence-transformers imports this module type when the model loads: {why}",
                )


def _is_st_module(entry: Any) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("type"), str) and "path" in entry


def _auto_map(ctx: Context, auto_map: dict[Any, Any], loc: Location) -> None:
    for auto_class, target in auto_map.items():
        refs = target if isinstance(target, list) else [target]
        for ref in refs:
            if isinstance(ref, str) and ref:
                _code_ref(ctx, rules.HF_AUTO_MAP, f"{auto_class}={ref}", ref, loc)


def _code_ref(ctx: Context, rule: rules.Rule, subject: str, ref: str, loc: Location) -> None:
    if "--" in ref:
        repo = ref.split("--", 1)[0]
        ctx.find(
            rules.HF_REMOTE_CODE_REPO,
            Severity.CRITICAL,
            loc,
            subject,
            f"remote code from another repository ({repo}): loading with trust_remote_code "
            "downloads and runs Python this scan never sees",
        )
        return
    module = ref.rsplit(".", 1)[0] if "." in ref else ref
    ctx.find(
        rule,
        Severity.HIGH,
        loc,
        subject,
        f"remote code: loading with trust_remote_code imports and runs {module}.py from the "
        "model directory (scan and review it)",
    )


def _diffusers(ctx: Context, node: dict[Any, Any], loc: Location) -> None:
    cls = node.get("_class_name")
    if isinstance(cls, list) and len(cls) == 2 and all(isinstance(c, str) for c in cls):
        _code_ref(
            ctx,
            rules.HF_CUSTOM_PIPELINE,
            f"_class_name={cls[0]}.{cls[1]}",
            f"{cls[0]}.{cls[1]}",
            loc,
        )
    elif not (isinstance(cls, str) and cls.endswith("Pipeline")):
        return  # a component's own config (unet/config.json): its lists are block names
    for key, value in node.items():
        if (
            isinstance(key, str)
            and not key.startswith("_")
            and isinstance(value, list)
            and len(value) == 2
            and isinstance(value[0], str)
            and isinstance(value[1], str)
            and _MODULE_NAME.match(value[0])
            and value[0].split(".")[0] not in _DIFFUSERS_LIBRARIES
        ):
            severity, why = rank_global(value[0], value[1])
            ctx.find(
                rules.HF_DIFFUSERS_COMPONENT,
                max(severity, Severity.HIGH),
                loc,
                f"{key}={value[0]}.{value[1]}",
                f"diffusers imports this component's library when the pipeline loads "
                f"(custom code from the model directory needs trust_remote_code): {why}",
            )
