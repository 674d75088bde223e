"""Hydra/OmegaConf ``_target_`` entries: ``hydra.utils.instantiate`` imports the dotted path and
calls it with the sibling keys (``_args_``, ``_partial_``, ``_call_``, ``_recursive_``). NeMo
instantiates the ``model_config.yaml`` of a ``.nemo`` archive this way (CVE-2025-23304).

Targets inside the libraries that model configs legitimately build (NeMo, PyTorch, Lightning,
Megatron, ...) pass unless the callable itself runs code or loads files; anything else is a
finding ranked by what it can do.
"""

from __future__ import annotations

import re
from typing import Any

from modelseal.scanning import rules
from modelseal.scanning.context import Context
from modelseal.scanning.formats.doctree import dotted
from modelseal.scanning.report import Location, Severity
from modelseal.scanning.severity import rank_global

CVE_NEMO = "CVE-2025-23304"
TARGET_KEYS = ("_target_",)
# NeMo's own instantiation (Serialization.from_config_dict) imports ``target`` and the legacy
# ``cls`` (with ``params``): common words as keys, so only a dotted class path counts.
NEMO_KEYS = ("target", "cls", "target_class")
_CLASS_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\.[A-Z]\w*\Z")

# Top-level packages whose classes NeMo/Hydra model configs instantiate in the ordinary way.
KNOWN_PACKAGES = frozenset(
    {
        "nemo",
        "nemo_text_processing",
        "megatron",
        "torch",
        "torchaudio",
        "torchvision",
        "torchmetrics",
        "lightning",
        "pytorch_lightning",
        "transformers",
        "peft",
        "apex",
        "timm",
        "omegaconf",
        "sentencepiece",
        "tokenizers",
        "diffusers",
        "accelerate",
        "bitsandbytes",
        "einops",
        "transformer_engine",
        "lhotse",
        "nemo_run",
        "modelopt",
    }
)
# Callables inside known packages that still run code, fetch or load files.
_UNSAFE_LEAVES = frozenset(
    {
        "from_pretrained",
        "restore_from",
        "load_from_checkpoint",
        "load_state_dict_from_url",
        "download_url_to_file",
        "load_inline",
        "from_file",
        "compile",
    }
)


def scan_hydra_dicts(ctx: Context, dicts: list[dict[Any, Any]], loc: Location) -> None:
    """Report every ``_target_`` in the mappings of a parsed config that is not plainly a
    class of a known model library."""
    for node in dicts:
        target = node.get("_target_")
        if target is not None:
            _target(ctx, node, "_target_", target, loc)
            continue
        for key in NEMO_KEYS:
            value = node.get(key)
            if isinstance(value, str) and (
                _CLASS_PATH.match(value)
                or (
                    (parts := dotted(value)) is not None
                    and rank_global(*parts)[0] >= Severity.CRITICAL
                )
            ):
                _target(ctx, node, key, value, loc)
                break


def _target(ctx: Context, node: dict[Any, Any], key: str, target: Any, loc: Location) -> None:
    if not isinstance(target, str):
        ctx.find(
            rules.HYDRA_TARGET,
            Severity.MEDIUM,
            loc,
            f"{key}={str(target)[:80]}",
            "instantiation target that is not a dotted name: cannot tell what it runs",
        )
        return
    parts = dotted(target)
    module, name = parts if parts else (target, "")
    severity, why = rank_global(module, name)
    leaf = name.split(".")[-1]
    flags = ", ".join(k for k in ("_partial_", "_call_", "_args_") if k in node)
    extra = f" (with {flags})" if flags else ""
    if severity < Severity.CRITICAL and module.split(".")[0] in KNOWN_PACKAGES:
        if leaf not in _UNSAFE_LEAVES and node.get("trust_remote_code") is not True:
            return
        severity, why = Severity.HIGH, "it loads or compiles code or data from elsewhere"
    ctx.find(
        rules.HYDRA_TARGET,
        max(severity, Severity.MEDIUM),
        loc,
        f"{key}={target}",
        f"Hydra/NeMo instantiation imports and calls {target}{extra} when the config is "
        f"instantiated ({CVE_NEMO}): {why}",
    )
