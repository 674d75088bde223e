"""Protobuf model files: ONNX ``ModelProto`` and TensorFlow ``SavedModel``, walked without any
protobuf library and without loading tensor payloads (they are skipped in place).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from typing import BinaryIO

from modelseal.scanning import rules
from modelseal.scanning.context import Context
from modelseal.scanning.formats.hidden import maybe_pickle, probe_pickle, probe_stream
from modelseal.scanning.formats.protoreader import BadMessage, Reader
from modelseal.scanning.formats.savedmodel import scan_keras_metadata, scan_savedmodel
from modelseal.scanning.report import Location, Severity
from modelseal.scanning.source import Source

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


def _top_fields(stream: BinaryIO, size: int | None) -> set[int]:
    """Field numbers at the top level (a cheap pass that only skips)."""
    seen: set[int] = set()
    r = Reader(Source(stream, size=size))

    def on(field: int, wire: int, n: int) -> bool:
        seen.add(field)
        return False

    r.fields(None, 0, on)
    stream.seek(0)
    return seen


def scan_protobuf(
    ctx: Context, stream: BinaryIO, size: int | None, location: Location, depth: int
) -> None:
    """Scan protobuf content as ONNX, SavedModel or Keras metadata by its top-level fields;
    what parses as none of them (or not at all) is tried as a pickle and as text."""
    try:
        top = _top_fields(stream, size)
    except BadMessage:
        stream.seek(0)
        from modelseal.scanning.formats.pickles import scan_unknown

        scan_unknown(ctx, stream, size, location, depth)
        _as_text(ctx, stream, size, location, depth)
        return
    if 7 in top and top <= {1, 2, 3, 4, 5, 6, 7, 8, 14, 20, 25}:
        _scan_onnx(ctx, stream, size, location)
    elif top <= {1, 2} and 2 in top:
        scan_savedmodel(ctx, stream, size, location)
    elif top == {1}:
        scan_keras_metadata(ctx, stream, size, location)
        _as_text(ctx, stream, size, location, depth)  # text can be shaped to parse as this
    else:
        _as_text(ctx, stream, size, location, depth)


def _as_text(
    ctx: Context, stream: BinaryIO, size: int | None, location: Location, depth: int
) -> None:
    """Bytes that only looked like protobuf (a YAML file starting with a newline or a quote)."""
    from modelseal.scanning.formats.textdoc import scan_text

    stream.seek(0)
    scan_text(ctx, stream, size, location, depth)


# ---- ONNX ------------------------------------------------------------------------------


def _scan_onnx(ctx: Context, stream: BinaryIO, size: int | None, location: Location) -> None:
    ctx.saw("onnx")
    r = Reader(Source(stream, size=size))
    local_domains: set[str] = set()
    nodes: list[tuple[str, str, int]] = []  # (domain, op_type, offset)
    externals: list[tuple[str, int]] = []
    blobs: list[tuple[bytes, int]] = []  # strings a post-processing step might unpickle

    def blob(n: int) -> bool:
        at = r.src.tell()
        data = r.raw(n)
        if data is not None and maybe_pickle(data):
            blobs.append((data, at))
        return True

    def tensor(depth: int) -> Callable[[int, int, int], bool]:
        def on(field: int, wire: int, n: int) -> bool:
            if field == 6 and wire == 2:  # string_data
                return blob(n)
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
            if field in (4, 9):  # s, strings
                return blob(n)
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
        if field == 14:  # metadata_props: StringStringEntryProto
            return r.sub(n, 0, lambda f, w, m: w == 2 and f == 2 and blob(m))
        return False

    try:
        r.fields(None, 0, model)
    except BadMessage as exc:
        ctx.fail(location.at(r.src.tell()), f"ONNX model cannot be parsed: {exc}")
    for data, at in blobs:
        if probe_pickle(ctx, data, location.at(at)):
            ctx.saw("onnx-pickle")
    _onnx_nodes(ctx, nodes, local_domains, location)
    _onnx_externals(ctx, externals, location)


def _onnx_nodes(
    ctx: Context, nodes: list[tuple[str, str, int]], local_domains: set[str], location: Location
) -> None:
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


def _onnx_externals(ctx: Context, externals: list[tuple[str, int]], location: Location) -> None:
    seen: set[str] = set()
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
        elif norm not in seen:
            seen.add(norm)
            _external_pickle(ctx, norm, location)


def _external_pickle(ctx: Context, norm: str, location: Location) -> None:
    """An external data file next to a model scanned on its own: a pickle there is a finding
    (the directory scan reads it too, by content)."""
    from pathlib import Path

    if location.members:
        return  # inside an archive: the file is another member, scanned by content
    model = Path(location.path)
    target = model.parent / norm
    try:
        if not model.is_file() or not target.is_file() or target.is_symlink():
            return
        with target.open("rb") as fh:
            head = fh.read(2)
            if len(head) < 2 or head[0] != 0x80 or head[1] > 5:
                return
            fh.seek(0)
            size = target.stat().st_size
            if probe_stream(ctx, fh, size, location.inside(norm)):
                ctx.saw("onnx-pickle")
    except OSError as exc:
        ctx.fail(location.inside(norm), f"external data file cannot be read: {exc}")


def _sparse(
    r: Reader, tensor: Callable[[int], Callable[[int, int, int], bool]], depth: int
) -> Callable[[int, int, int], bool]:
    def on(field: int, wire: int, n: int) -> bool:
        if wire == 2 and field in (1, 2):  # values, indices
            return r.sub(n, depth, tensor(depth + 1))
        return False

    return on
