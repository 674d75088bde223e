"""TensorFlow SavedModel (``saved_model.pb``) and Keras metadata (``keras_metadata.pb``):
graph ops that run Python or touch files, the Keras configs the object graph carries, and asset
files that point outside the model directory."""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from typing import BinaryIO

from modelseal.scanning import rules
from modelseal.scanning.context import Context
from modelseal.scanning.formats.keras import scan_keras_text
from modelseal.scanning.formats.protoreader import BadMessage, Reader
from modelseal.scanning.report import Location, Severity
from modelseal.scanning.source import Source

TF_DANGEROUS_OPS = {
    "ReadFile": "reads any file",
    "WriteFile": "writes any file",
    "MatchingFiles": "lists files",
    "PyFunc": "runs Python code",
    "PyFuncStateless": "runs Python code",
    "EagerPyFunc": "runs Python code",
    "ImmutableConst": "memory-maps a file",
    "PrintV2": "can print to a file",
    "WholeFileReader": "reads files",
    "WholeFileReaderV2": "reads files",
    "DeleteFile": "deletes files",
    "RecursivelyCreateDir": "creates directories",
    "DebugIdentityV2": "writes debug dumps to files",
    "WriteAudioSummary": "writes files",
    "CreateSummaryFileWriter": "writes files",
    "LoadLibrary": "loads native code",
}


# ---- Keras metadata (keras_metadata.pb next to a SavedModel) -----------------------------


def scan_keras_metadata(
    ctx: Context, stream: BinaryIO, size: int | None, location: Location
) -> None:
    """``SavedMetadata``: repeated ``SavedObject`` whose field 4 is a layer's JSON config."""
    r = Reader(Source(stream, size=size))
    configs: list[tuple[str, int]] = []

    def saved_object(field: int, wire: int, n: int) -> bool:
        if field == 4 and wire == 2:
            configs.append((r.text(n), r.src.tell()))
            return True
        return False

    def top(field: int, wire: int, n: int) -> bool:
        if field == 1 and wire == 2:
            return r.sub(n, 0, saved_object)
        return False

    try:
        r.fields(None, 0, top)
    except BadMessage as exc:
        ctx.fail(location.at(r.src.tell()), f"Keras metadata cannot be parsed: {exc}")
        return
    if configs and all(text.lstrip().startswith("{") for text, _ in configs):
        ctx.saw("keras-metadata")
        for text, at in configs:
            scan_keras_text(ctx, text, location.at(at))


# ---- SavedModel -------------------------------------------------------------------------


def scan_savedmodel(ctx: Context, stream: BinaryIO, size: int | None, location: Location) -> None:
    """Scan a ``SavedModel``: graph and function ops, object-graph Keras configs, assets."""
    ctx.saw("savedmodel")
    r = Reader(Source(stream, size=size))
    ops: list[tuple[str, int]] = []
    metadata: list[tuple[str, int]] = []
    assets: list[tuple[str, int]] = []

    def node_def(field: int, wire: int, n: int) -> bool:
        if field == 2 and wire == 2:
            ops.append((r.text(n), r.src.tell()))
            return True
        return False

    def function_def(depth: int) -> Callable[[int, int, int], bool]:
        def on(field: int, wire: int, n: int) -> bool:
            if field == 3 and wire == 2:
                return r.sub(n, depth, node_def)
            return False

        return on

    def library(depth: int) -> Callable[[int, int, int], bool]:
        def on(field: int, wire: int, n: int) -> bool:
            if field == 1 and wire == 2:
                return r.sub(n, depth, function_def(depth + 1))
            return False

        return on

    def graph_def(depth: int) -> Callable[[int, int, int], bool]:
        def on(field: int, wire: int, n: int) -> bool:
            if wire != 2:
                return False
            if field == 1:
                return r.sub(n, depth, node_def)
            if field == 2:
                return r.sub(n, depth, library(depth + 1))
            return False

        return on

    def user_object(field: int, wire: int, n: int) -> bool:
        if field == 3 and wire == 2:  # SavedUserObject.metadata: a Keras layer's JSON config
            metadata.append((r.text(n), r.src.tell()))
            return True
        return False

    def saved_object(field: int, wire: int, n: int) -> bool:
        if field == 4 and wire == 2:
            return r.sub(n, 3, user_object)
        return False

    def object_graph(field: int, wire: int, n: int) -> bool:
        if field == 1 and wire == 2:
            return r.sub(n, 2, saved_object)
        return False

    def asset_file(field: int, wire: int, n: int) -> bool:
        if field == 2 and wire == 2:
            assets.append((r.text(n), r.src.tell()))
            return True
        return False

    def meta_graph(field: int, wire: int, n: int) -> bool:
        if wire != 2:
            return False
        if field == 2:
            return r.sub(n, 1, graph_def(2))
        if field == 6:  # asset_file_def
            return r.sub(n, 1, asset_file)
        if field == 7:  # object_graph_def
            return r.sub(n, 1, object_graph)
        return False

    def saved_model(field: int, wire: int, n: int) -> bool:
        if field == 2 and wire == 2:
            return r.sub(n, 0, meta_graph)
        return False

    try:
        r.fields(None, 0, saved_model)
    except BadMessage as exc:
        ctx.fail(location.at(r.src.tell()), f"SavedModel cannot be parsed: {exc}")
    for op, at in ops:
        why = TF_DANGEROUS_OPS.get(op)
        if why is not None:
            severity = Severity.CRITICAL if "Python" in why or "native" in why else Severity.HIGH
            ctx.find(
                rules.SAVEDMODEL_OP,
                severity,
                location.at(at),
                op,
                f"graph op {op} {why} when the model runs",
            )
    for text, at in metadata:
        if text.lstrip().startswith("{"):
            ctx.saw("keras-metadata")
            scan_keras_text(ctx, text, location.at(at))
    for name, at in assets:
        norm = posixpath.normpath(name.replace("\\", "/"))
        if name.startswith(("/", "\\")) or name[1:2] == ":" or norm.split("/")[0] == "..":
            ctx.find(
                rules.SAVEDMODEL_ASSET_PATH,
                Severity.HIGH,
                location.at(at),
                name,
                "asset file outside the SavedModel's assets folder: loading reads that file",
            )
