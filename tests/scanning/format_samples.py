"""Non-pickle model files built at run time: safetensors, GGUF, ONNX, SavedModel, Keras."""

from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path
from typing import Any

from tests.scanning.scan_samples import Sample

# ---- safetensors -------------------------------------------------------------------------


def safetensors_bytes(header: dict[str, Any], data: bytes, *, pad: bool = True) -> bytes:
    raw = json.dumps(header).encode()
    if pad:
        raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data


def st_ok() -> bytes:
    return safetensors_bytes(
        {
            "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "__metadata__": {"format": "pt"},
        },
        b"\x00" * 8,
    )


# ---- GGUF --------------------------------------------------------------------------------


def gs(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def gguf_bytes(
    kv: dict[str, Any], tensors: list[tuple[str, list[int], int, int]], data: bytes
) -> bytes:
    out = [b"GGUF", struct.pack("<IQQ", 3, len(tensors), len(kv))]
    for key, value in kv.items():
        out.append(gs(key))
        if isinstance(value, str):
            out.append(struct.pack("<I", 8) + gs(value))
        else:
            out.append(struct.pack("<I", 4) + struct.pack("<I", value))
    for name, dims, ggml_type, offset in tensors:
        out.append(gs(name) + struct.pack("<I", len(dims)))
        out.extend(struct.pack("<Q", d) for d in dims)
        out.append(struct.pack("<IQ", ggml_type, offset))
    head = b"".join(out)
    head += b"\x00" * (-len(head) % 32)
    return head + data


BENIGN_TEMPLATE = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>' + message['content'] }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)
EVIL_TEMPLATE = (
    "{% for x in ().__class__.__base__.__subclasses__() %}{% if 'warning' in x.__name__ %}"
    "{{ x()._module.__builtins__['__import__']('os').popen('touch CANARY').read() }}"
    "{% endif %}{% endfor %}"
)


def gguf_ok() -> bytes:
    return gguf_bytes(
        {"general.architecture": "llama", "tokenizer.chat_template": BENIGN_TEMPLATE},
        [("w", [8], 0, 0)],
        b"\x00" * 32,
    )


# ---- protobuf (hand-encoded, no onnx/tensorflow needed) ------------------------------------


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(num: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return varint(num << 3) + varint(payload)
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def onnx_model(nodes: list[tuple[str, str]], external: str | None = None) -> bytes:
    graph = b"".join(field(1, field(4, op.encode()) + field(7, dom.encode())) for dom, op in nodes)
    if external is not None:
        entry = field(1, b"location") + field(2, external.encode())
        graph += field(5, field(8, b"w") + field(13, entry) + field(14, 1))
    return field(1, 9) + field(2, b"test") + field(7, graph) + field(8, field(2, 17))


def saved_model(ops: list[str]) -> bytes:
    graph = b"".join(
        field(1, field(1, f"n{i}".encode()) + field(2, op.encode())) for i, op in enumerate(ops)
    )
    function = field(1, field(1, field(1, b"f")) + field(3, field(2, b"Identity")))
    meta = field(2, graph + field(2, function))
    return field(1, 1) + field(2, meta)


# ---- Keras --------------------------------------------------------------------------------


def keras_config(layers: list[dict[str, Any]]) -> bytes:
    return json.dumps(
        {"module": "keras", "class_name": "Sequential", "config": {"name": "seq", "layers": layers}}
    ).encode()


DENSE = {
    "module": "keras.layers",
    "class_name": "Dense",
    "config": {"units": 1, "activation": "relu"},
}
LAMBDA = {
    "module": "keras.layers",
    "class_name": "Lambda",
    "config": {
        "function": {"class_name": "__lambda__", "config": {"code": "4wEAAAAAAAAAAAAAAAEAAAAD"}}
    },
}
OS_FUNCTION = {
    "module": "keras.layers",
    "class_name": "Activation",
    "config": {
        "activation": {
            "module": "os",
            "class_name": "function",
            "config": "system",
            "registered_name": "system",
        }
    },
}


def dot_keras(config: bytes) -> bytes:
    """A ``.keras`` zip around ``config``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.5.0"}))
        zf.writestr("config.json", config)
        zf.writestr("model.weights.h5", b"")
    return buf.getvalue()


def keras_h5(config: bytes, path: Path) -> bytes:
    """A legacy Keras ``.h5`` file whose ``model_config`` is ``config``."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = config.decode()
        f.attrs["keras_version"] = "2.15.0"
        f.create_dataset("model_weights/dense/kernel", data=[[1.0]])
    data = path.read_bytes()
    path.unlink()
    return data


def h5_external_link(path: Path) -> bytes:
    import h5py

    with h5py.File(path, "w") as f:
        f["leak"] = h5py.ExternalLink("/etc/passwd", "/")
    data = path.read_bytes()
    path.unlink()
    return data


def _tmp(c: Path) -> Path:
    return c.with_name("scratch.h5")


def _samples() -> list[Sample]:
    S = Sample
    return [
        S(
            "safetensors-out-of-bounds",
            "safetensors",
            lambda c: safetensors_bytes(
                {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\x00" * 8
            ),
            1,
            "past the",
        ),
        S(
            "safetensors-overlap",
            "safetensors",
            lambda c: safetensors_bytes(
                {
                    "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                    "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
                },
                b"\x00" * 12,
            ),
            1,
            "safetensors.header",
        ),
        S(
            "safetensors-dtype-shape-mismatch",
            "safetensors",
            lambda c: safetensors_bytes(
                {"a": {"dtype": "F64", "shape": [2], "data_offsets": [0, 8]}}, b"\x00" * 8
            ),
            1,
            "safetensors.header",
        ),
        S(
            "safetensors-huge-header",
            "safetensors",
            lambda c: struct.pack("<Q", 200_000_000) + b"{" + b" " * 64,
            1,
            "header size",
        ),
        S(
            "safetensors-duplicate-key",
            "safetensors",
            lambda c: _dup_header(),
            1,
            "safetensors.header",
        ),
        S(
            "gguf-template-injection",
            "gguf",
            lambda c: gguf_bytes(
                {"tokenizer.chat_template": EVIL_TEMPLATE.replace("CANARY", str(c))}, [], b""
            ),
            1,
            "gguf.chat-template",
        ),
        S(
            "gguf-tensor-past-end",
            "gguf",
            lambda c: gguf_bytes(
                {"general.architecture": "llama"}, [("w", [1024], 0, 0)], b"\x00" * 32
            ),
            1,
            "gguf.tensor",
        ),
        S(
            "gguf-count-bomb",
            "gguf",
            lambda c: b"GGUF" + struct.pack("<IQQ", 3, 1 << 40, 1 << 40),
            1,
            "gguf.counts",
        ),
        S(
            "onnx-external-data-escape",
            "onnx",
            lambda c: onnx_model([("", "Relu")], external="../../../etc/passwd"),
            1,
            "onnx.external-data",
        ),
        S(
            "onnx-external-data-absolute",
            "onnx",
            lambda c: onnx_model([("", "Relu")], external="/etc/shadow"),
            1,
            "onnx.external-data",
        ),
        S(
            "onnx-custom-domain",
            "onnx",
            lambda c: onnx_model([("", "Relu"), ("evil.ops", "Backdoor")]),
            1,
            "onnx.custom-domain",
        ),
        S(
            "onnx-python-op",
            "onnx",
            lambda c: onnx_model([("ai.onnx.contrib", "PyOp")]),
            1,
            "onnx.python-op",
        ),
        S(
            "savedmodel-readfile",
            "savedmodel",
            lambda c: saved_model(["Const", "ReadFile"]),
            1,
            "ReadFile",
        ),
        S(
            "savedmodel-writefile",
            "savedmodel",
            lambda c: saved_model(["Const", "WriteFile"]),
            1,
            "WriteFile",
        ),
        S("savedmodel-pyfunc", "savedmodel", lambda c: saved_model(["PyFunc"]), 1, "PyFunc"),
        S(
            "keras-lambda-dotkeras",
            "keras",
            lambda c: dot_keras(keras_config([DENSE, LAMBDA])),
            1,
            "keras.lambda",
        ),
        S(
            "keras-os-module-dotkeras",
            "keras",
            lambda c: dot_keras(keras_config([DENSE, OS_FUNCTION])),
            1,
            "os.system",
        ),
        S(
            "keras-lambda-h5",
            "keras",
            lambda c: keras_h5(keras_config([DENSE, LAMBDA]), _tmp(c)),
            1,
            "keras.lambda",
        ),
        S(
            "keras-builtins-h5",
            "keras",
            lambda c: keras_h5(
                keras_config([{"module": "builtins", "class_name": "function", "config": "exec"}]),
                _tmp(c),
            ),
            1,
            "builtins.exec",
        ),
        S(
            "keras-metadata-pb-lambda",
            "keras",
            lambda c: field(
                1, field(1, 1) + field(2, b"root.layer-1") + field(4, json.dumps(LAMBDA).encode())
            ),
            1,
            "keras.lambda",
        ),
        S(
            "hdf5-external-link",
            "keras",
            lambda c: h5_external_link(_tmp(c)),
            1,
            "hdf5.external-link",
        ),
    ]


def _dup_header() -> bytes:
    raw = (
        b'{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, '
        b'"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}'
    )
    return struct.pack("<Q", len(raw)) + raw + b"\x00"


FORMAT_SAMPLES: list[Sample] = _samples()
