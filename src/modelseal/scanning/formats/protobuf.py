"""Protobuf model files: ONNX ``ModelProto`` and TensorFlow ``SavedModel``, walked without any
protobuf library and without loading tensor payloads (they are skipped in place).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from typing import BinaryIO

from modelseal.scanning import rules
from modelseal.scanning.context import Context
from modelseal.scanning.report import Location, Severity
from modelseal.scanning.source import Source

MAX_DEPTH = 64
_KEEP = 1 << 20  # longest string field kept (names, paths, op types)

ONNX_DOMAINS = frozenset(
    {
        "",
        "ai.onnx",
        "ai.onnx.ml",
        "ai.onnx.training",
        "ai.onnx.preview.training",
        "com.microsoft",
        "com.microsoft.nchwc",
        "com.microsoft.experimental",
        "com.ms.internal.nhwc",
        "org.pytorch.aten",
        "com.microsoft.dml",
    }
)
# onnxruntime-extensions ops that run Python.
ONNX_PYTHON_OPS = frozenset({"PyOp", "PythonOp", "PyFunc"})

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


class _Bad(Exception):
    pass


class _Reader:
    def __init__(self, src: Source) -> None:
        self.src = src

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.src.take(1)
            if b is None:
                raise _Bad("truncated varint")
            result |= (b[0] & 0x7F) << shift
            if not b[0] & 0x80:
                return result
            shift += 7
            if shift > 70:
                raise _Bad("varint too long")

    def fields(self, end: int | None, depth: int, on: Callable[[int, int, int], bool]) -> None:
        """Call ``on(field, wire, length_or_value)`` per field; for length-delimited fields
        ``on`` returns True if it consumed the payload, else it is skipped."""
        if depth > MAX_DEPTH:
            raise _Bad("messages nest too deeply")
        while end is None or self.src.tell() < end:
            if end is None and self.src.at_eof():
                return
            key = self.varint()
            field, wire = key >> 3, key & 7
            if field == 0:
                raise _Bad("field number 0")
            if wire == 0:
                on(field, wire, self.varint())
            elif wire == 1:
                self._skip(8)
            elif wire == 5:
                self._skip(4)
            elif wire == 2:
                n = self.varint()
                stop = self.src.tell() + n
                if end is not None and stop > end:
                    raise _Bad("field runs past its message")
                remaining = self.src.remaining()
                if remaining is not None and n > remaining:
                    raise _Bad("field runs past the end of the file")
                if not on(field, wire, n):
                    self._skip(n)
                elif self.src.tell() != stop:
                    raise _Bad("sub-message length mismatch")
            else:
                raise _Bad(f"unsupported wire type {wire}")
        if end is not None and self.src.tell() != end:
            raise _Bad("message overruns its length")

    def _skip(self, n: int) -> None:
        if not self.src.skip(n):
            raise _Bad("truncated field")

    def text(self, n: int) -> str:
        if n > _KEEP:
            self._skip(n)
            return "<long>"
        data = self.src.take(n)
        if data is None:
            raise _Bad("truncated string")
        return data.decode("utf-8", "replace")

    def sub(self, n: int, depth: int, on: Callable[[int, int, int], bool]) -> bool:
        self.fields(self.src.tell() + n, depth + 1, on)
        return True


def _top_fields(stream: BinaryIO, size: int | None) -> set[int]:
    """Field numbers at the top level (a cheap pass that only skips)."""
    seen: set[int] = set()
    r = _Reader(Source(stream, size=size))

    def on(field: int, wire: int, n: int) -> bool:
        seen.add(field)
        return False

    r.fields(None, 0, on)
    stream.seek(0)
    return seen


def scan_protobuf(
    ctx: Context, stream: BinaryIO, size: int | None, location: Location, depth: int
) -> None:
    try:
        top = _top_fields(stream, size)
    except _Bad:
        stream.seek(0)
        from modelseal.scanning.formats.pickles import scan_unknown

        scan_unknown(ctx, stream, size, location, depth)
        return
    if 7 in top and top <= {1, 2, 3, 4, 5, 6, 7, 8, 14, 20, 25}:
        _scan_onnx(ctx, stream, size, location)
    elif top <= {1, 2} and 2 in top:
        _scan_savedmodel(ctx, stream, size, location)
    elif top == {1}:
        _scan_keras_metadata(ctx, stream, size, location)


# ---- Keras metadata (keras_metadata.pb next to a SavedModel) -----------------------------


def _scan_keras_metadata(
    ctx: Context, stream: BinaryIO, size: int | None, location: Location
) -> None:
    """``SavedMetadata``: repeated ``SavedObject`` whose field 4 is a layer's JSON config."""
    from modelseal.scanning.formats.keras import scan_keras_text

    r = _Reader(Source(stream, size=size))
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
    except _Bad as exc:
        ctx.fail(location.at(r.src.tell()), f"Keras metadata cannot be parsed: {exc}")
        return
    if configs and all(text.lstrip().startswith("{") for text, _ in configs):
        ctx.saw("keras-metadata")
        for text, at in configs:
            scan_keras_text(ctx, text, location.at(at))


# ---- ONNX ------------------------------------------------------------------------------


def _scan_onnx(ctx: Context, stream: BinaryIO, size: int | None, location: Location) -> None:
    ctx.saw("onnx")
    r = _Reader(Source(stream, size=size))
    local_domains: set[str] = set()
    nodes: list[tuple[str, str, int]] = []  # (domain, op_type, offset)
    externals: list[tuple[str, int]] = []

    def tensor(depth: int) -> Callable[[int, int, int], bool]:
        def on(field: int, wire: int, n: int) -> bool:
            if field == 13 and wire == 2:  # external_data: StringStringEntryProto
                entry: dict[int, str] = {}
                at = r.src.tell()

                def kv(f: int, w: int, m: int) -> bool:
                    if w == 2 and f in (1, 2):
                        entry[f] = r.text(m)
                        return True
                    return False

                r.sub(n, depth, kv)
                if entry.get(1) == "location":
                    externals.append((entry.get(2, ""), at))
                return True
            return False

        return on

    def attribute(depth: int) -> Callable[[int, int, int], bool]:
        def on(field: int, wire: int, n: int) -> bool:
            if wire != 2:
                return False
            if field in (5, 10):  # t, tensors
                return r.sub(n, depth, tensor(depth + 1))
            if field in (6, 11):  # g, graphs
                return r.sub(n, depth, graph(depth + 1))
            return False

        return on

    def node(depth: int) -> Callable[[int, int, int], bool]:
        info = {"domain": "", "op": ""}

        def on(field: int, wire: int, n: int) -> bool:
            if wire != 2:
                return False
            if field == 4:
                info["op"] = r.text(n)
                return True
            if field == 7:
                info["domain"] = r.text(n)
                return True
            if field == 5:
                return r.sub(n, depth, attribute(depth + 1))
            return False

        on.info = info  # type: ignore[attr-defined]
        return on

    def add_node(n: int, depth: int) -> bool:
        at = r.src.tell()
        handler = node(depth + 1)
        r.sub(n, depth, handler)
        info = handler.info  # type: ignore[attr-defined]
        nodes.append((info["domain"], info["op"], at))
        return True

    def graph(depth: int) -> Callable[[int, int, int], bool]:
        def on(field: int, wire: int, n: int) -> bool:
            if wire != 2:
                return False
            if field == 1:
                return add_node(n, depth)
            if field in (5, 15):  # initializer, sparse_initializer
                return r.sub(
                    n, depth, tensor(depth + 1) if field == 5 else _sparse(r, tensor, depth + 1)
                )
            return False

        return on

    def function(depth: int) -> Callable[[int, int, int], bool]:
        def on(field: int, wire: int, n: int) -> bool:
            if wire != 2:
                return False
            if field == 7:
                return add_node(n, depth)
            if field == 10:
                local_domains.add(r.text(n))
                return True
            return False

        return on

    def model(field: int, wire: int, n: int) -> bool:
        if wire != 2:
            return False
        if field == 7:
            return r.sub(n, 0, graph(1))
        if field == 25:
            return r.sub(n, 0, function(1))
        return False

    try:
        r.fields(None, 0, model)
    except _Bad as exc:
        ctx.fail(location.at(r.src.tell()), f"ONNX model cannot be parsed: {exc}")
    for domain, op, at in nodes:
        if op in ONNX_PYTHON_OPS or (domain.startswith("ai.onnx.contrib") and op.startswith("Py")):
            ctx.find(
                rules.ONNX_PYTHON_OP,
                Severity.CRITICAL,
                location.at(at),
                f"{domain}::{op}",
                "operator runs Python code inside the runtime",
            )
        elif domain not in ONNX_DOMAINS and domain not in local_domains:
            ctx.find(
                rules.ONNX_CUSTOM_DOMAIN,
                Severity.MEDIUM,
                location.at(at),
                f"{domain}::{op}",
                "operator from an unknown custom domain: running it loads native code "
                "registered by some library",
            )
    for path, at in externals:
        norm = posixpath.normpath(path.replace("\\", "/"))
        if (
            path.startswith(("/", "\\"))
            or (len(path) > 1 and path[1] == ":")
            or norm == ".."
            or norm.startswith("../")
            or "\x00" in path
        ):
            ctx.find(
                rules.ONNX_EXTERNAL_DATA,
                Severity.HIGH,
                location.at(at),
                path,
                "external tensor data outside the model directory: loading reads an "
                "arbitrary file into the model",
            )


def _sparse(
    r: _Reader, tensor: Callable[[int], Callable[[int, int, int], bool]], depth: int
) -> Callable[[int, int, int], bool]:
    def on(field: int, wire: int, n: int) -> bool:
        if wire == 2 and field in (1, 2):  # values, indices
            return r.sub(n, depth, tensor(depth + 1))
        return False

    return on


# ---- SavedModel -------------------------------------------------------------------------


def _scan_savedmodel(ctx: Context, stream: BinaryIO, size: int | None, location: Location) -> None:
    ctx.saw("savedmodel")
    r = _Reader(Source(stream, size=size))
    ops: list[tuple[str, int]] = []

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

    def meta_graph(field: int, wire: int, n: int) -> bool:
        if field == 2 and wire == 2:
            return r.sub(n, 1, graph_def(2))
        return False

    def saved_model(field: int, wire: int, n: int) -> bool:
        if field == 2 and wire == 2:
            return r.sub(n, 0, meta_graph)
        return False

    try:
        r.fields(None, 0, saved_model)
    except _Bad as exc:
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
