"""Keras model configs (``.keras`` config.json, standalone configs, ``.h5`` ``model_config``).

What runs code or touches files when Keras deserialises a config, even with ``safe_mode``:

* Lambda layers (marshalled bytecode, or a function reference) and ``__lambda__`` objects;
* ``module`` entries outside Keras, imported by older Keras (CVE-2025-1550), and ``builtins``
  functions that are Python builtins rather than Keras losses or metrics;
* Keras's own non-modelling APIs reached through a config: ``keras.utils.get_file`` (downloads
  and extracts anywhere, CVE-2025-8747), ``load_model`` and ``enable_unsafe_deserialization``
  (turn ``safe_mode`` off, CVE-2025-9906), ``TorchModuleWrapper`` (``torch.load``), ...;
* preprocessing layers and tokenizers whose vocabulary (or merges, proto, filepath) names a file
  or URL that is read at load time (``StringLookup``/``IntegerLookup``, CVE-2025-12058).
"""

from __future__ import annotations

import builtins
import json
from typing import Any, BinaryIO

from modelseal.scanning import rules
from modelseal.scanning.context import Context
from modelseal.scanning.formats.doctree import TooDeep, TooLarge, iter_dicts
from modelseal.scanning.report import Location, Severity
from modelseal.scanning.severity import rank_global

MAX_CONFIG = 64 << 20
SAFE_MODULE_PREFIXES = ("keras", "keras_hub", "keras_nlp", "keras_cv", "tf_keras")


CVE_MODULE = "CVE-2025-1550"
CVE_GET_FILE = "CVE-2025-8747"
CVE_UNSAFE = "CVE-2025-9906"
CVE_LAMBDA = "CVE-2024-3660"
CVE_VOCAB = "CVE-2025-12058"

_LAMBDAS = ("Lambda", "__lambda__", "TFOpLambda", "SlicingOpLambda")

# Keras functions and classes that download, read or write files, load other models, or turn
# safe_mode off: Keras's own NON_MODELING_APIS and more. Severity and the CVE they belong to.
_UNSAFE_APIS: dict[str, tuple[Severity, str]] = {
    "get_file": (Severity.CRITICAL, CVE_GET_FILE),
    "extract_archive": (Severity.CRITICAL, CVE_GET_FILE),
    "load_model": (Severity.CRITICAL, CVE_UNSAFE),
    "model_from_json": (Severity.CRITICAL, CVE_UNSAFE),
    "model_from_yaml": (Severity.CRITICAL, CVE_UNSAFE),
    "enable_unsafe_deserialization": (Severity.CRITICAL, CVE_UNSAFE),
    "set_global_attribute": (Severity.CRITICAL, CVE_UNSAFE),
    "deserialize_keras_object": (Severity.CRITICAL, CVE_UNSAFE),
    "func_load": (Severity.CRITICAL, CVE_LAMBDA),
    "TorchModuleWrapper": (Severity.CRITICAL, ""),  # torch.load of pickled module bytes
    "TFSMLayer": (Severity.HIGH, ""),  # loads a SavedModel from any path
    "load_weights": (Severity.HIGH, ""),
    "save_model": (Severity.HIGH, ""),
    "save_weights": (Severity.HIGH, ""),
    "load_img": (Severity.HIGH, ""),
    "save_img": (Severity.HIGH, ""),
    "image_dataset_from_directory": (Severity.HIGH, ""),
    "text_dataset_from_directory": (Severity.HIGH, ""),
    "audio_dataset_from_directory": (Severity.HIGH, ""),
    "register_keras_serializable": (Severity.HIGH, ""),
    "serialize_keras_object": (Severity.MEDIUM, ""),
    "clear_session": (Severity.MEDIUM, ""),
    "plot_model": (Severity.HIGH, ""),
    "model_to_dot": (Severity.HIGH, ""),
    "load_data": (Severity.HIGH, ""),  # keras.datasets.*: downloads
}
# Modules whose every member touches files, global state or the network.
_UNSAFE_MODULES = (
    "keras.src.utils.file_utils",
    "keras.src.saving",
    "keras.saving",
    "keras.src.legacy.saving",
    "keras.src.backend.common.global_state",
    "keras.config",
    "keras.src.backend.config",
    "keras.datasets",
    "keras.src.datasets",
    "keras.src.utils.python_utils",
    "keras.src.export",
    "keras.export",
)
# Config keys of preprocessing layers and tokenizers that accept a path (or URL) to read.
_FILE_KEYS = frozenset(
    {
        "vocabulary",
        "vocabulary_path",
        "vocabulary_file",
        "vocab_file",
        "merges",
        "merges_file",
        "proto",
        "spm_model_file",
        "idf_weights",
        "filepath",
        "file_path",
        "origin",
        "fname",
        "cache_dir",
        "cache_subdir",
    }
)
_PYTHON_BUILTINS = frozenset(dir(builtins))


def looks_like_keras_config(head: bytes) -> bool:
    """Whether the start of a JSON document looks like a Keras object config."""
    return b'"class_name"' in head and (b'"config"' in head or b'"module"' in head)


def scan_keras_json(ctx: Context, stream: BinaryIO, size: int | None, location: Location) -> None:
    """Scan a JSON stream known to be a Keras config (bounded in size)."""
    if size is not None and size > MAX_CONFIG:
        ctx.fail(location, f"Keras config larger than {MAX_CONFIG} bytes")
        return
    scan_keras_text(ctx, stream.read(MAX_CONFIG + 1), location)


def scan_keras_text(ctx: Context, raw: bytes | str, location: Location) -> None:
    """Report code-running constructs anywhere in a Keras config document."""
    try:
        doc = json.loads(raw)
    except RecursionError:
        ctx.find(
            rules.CONFIG_NESTING,
            Severity.MEDIUM,
            location,
            "nesting",
            "config nests too deeply to parse: loaders fail or exhaust the stack",
        )
        ctx.fail(location, "Keras config nests too deeply to parse")
        return
    except ValueError as exc:
        ctx.fail(location, f"Keras config is not valid JSON: {exc}")
        return
    scan_keras_doc(ctx, doc, location)


def is_keras_doc(doc: Any) -> bool:
    """A parsed document whose top level is a Keras object config."""
    return isinstance(doc, dict) and "class_name" in doc and ("config" in doc or "module" in doc)


def scan_keras_doc(ctx: Context, doc: Any, loc: Location) -> None:
    """Report every Keras construct in ``doc`` that runs code or reads/writes files on load."""
    try:
        for node in iter_dicts(doc):
            if "class_name" in node:
                _object(ctx, node, loc)
            elif node.get("function_type") == "lambda":  # tf.keras 2 Lambda config body
                _lambda(ctx, "Lambda", node.get("function"), loc)
    except (TooDeep, TooLarge) as exc:
        ctx.find(rules.CONFIG_NESTING, Severity.MEDIUM, loc, "nesting", f"Keras config is {exc}")
        ctx.fail(loc, f"Keras config is {exc}")


def _lambda(ctx: Context, cls: str, fn: Any, loc: Location) -> None:
    detail = fn if isinstance(fn, str) else cls
    ctx.find(
        rules.KERAS_LAMBDA,
        Severity.CRITICAL if cls != "TFOpLambda" else Severity.HIGH,
        loc,
        f"{cls}:{str(detail)[:60]}",
        f"Lambda layer: deserialising the model runs the Python code it carries ({CVE_LAMBDA};"
        f" in .h5 files safe_mode is ignored, CVE-2025-9905; a function reference here calls "
        f"that function, {CVE_UNSAFE})",
    )


def _object(ctx: Context, node: dict[Any, Any], loc: Location) -> None:
    cls = node.get("class_name")
    module = node.get("module")
    config = node.get("config")
    registered = node.get("registered_name")
    if cls in _LAMBDAS:
        fn = config.get("function") if isinstance(config, dict) else None
        _lambda(ctx, str(cls), fn, loc)
    name = config if cls == "function" and isinstance(config, str) else cls
    if isinstance(module, str) and module:
        top = module.split(".")[0]
        if module == "builtins" and cls == "function":
            # Keras looks builtins functions up among its losses/metrics/activations; older
            # Keras imported the module instead, so a Python builtin name is an exec.
            if isinstance(name, str) and name in _PYTHON_BUILTINS:
                _module(ctx, module, name, loc)
        elif top not in SAFE_MODULE_PREFIXES:
            _module(ctx, module, str(name), loc)
        elif module.startswith(_UNSAFE_MODULES):
            _api(ctx, f"{module}.{name}", Severity.HIGH, "", loc)
    for ref in (name, registered, cls):
        if isinstance(ref, str):
            leaf = ref.replace(">", ".").rsplit(".", 1)[-1]
            if leaf in _UNSAFE_APIS:
                severity, cve = _UNSAFE_APIS[leaf]
                _api(ctx, f"{module or ''}.{ref}".lstrip("."), severity, cve, loc)
                break
    if isinstance(registered, str) and ">" in registered:
        ctx.find(
            rules.KERAS_CUSTOM_OBJECT,
            Severity.MEDIUM,
            loc,
            registered,
            "custom registered object: loading needs (and runs) user code",
        )
    if isinstance(config, dict):
        _file_keys(ctx, str(cls), config, loc)


def _module(ctx: Context, module: str, name: str, loc: Location) -> None:
    severity, why = rank_global(module, name)
    ctx.find(
        rules.KERAS_MODULE,
        max(severity, Severity.HIGH),
        loc,
        f"{module}.{name}",
        f"config imports {module}.{name} ({CVE_MODULE}: Keras before 3.9 imports any module "
        f"a config names): {why}",
    )


def _api(ctx: Context, subject: str, severity: Severity, cve: str, loc: Location) -> None:
    tag = f" ({cve})" if cve else ""
    ctx.find(
        rules.KERAS_UNSAFE_API,
        severity,
        loc,
        subject,
        f"config reaches a Keras API that downloads, reads or writes files, loads another "
        f"model or turns safe_mode off{tag}",
    )


def _file_keys(ctx: Context, cls: str, config: dict[Any, Any], loc: Location) -> None:
    for key in _FILE_KEYS.intersection(k for k in config if isinstance(k, str)):
        value = config[key]
        if isinstance(value, str) and value.strip():
            cve = f" ({CVE_VOCAB})" if key.startswith("vocab") else ""
            ctx.find(
                rules.KERAS_FILE_REFERENCE,
                Severity.HIGH,
                loc,
                f"{cls}.{key}={value[:120]}",
                f"layer config names a file or URL that Keras reads when the model loads, even "
                f"with safe_mode: local file disclosure or server-side requests{cve}",
            )
