"""Pickles hidden inside other formats (issue 15 item 6): HDF5 attributes and datasets (h5py
and PyTables), NumPy object arrays, ONNX strings and external data, SavedModel object graphs.

Payloads would create the canary if anything ran them; nothing here ever loads a sample.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import modelseal
from modelseal.scanning.report import ScanReport


def _su(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw + b"\x94"


def _p4_system(canary: Path) -> bytes:
    """Protocol 4: posix.system("touch <canary>")."""
    return b"\x80\x04" + _su("posix") + _su("system") + b"\x93(" + _su(f"touch {canary}") + b"tR."


def _p0_system(canary: Path) -> bytes:
    """Protocol 0 (text, ends in '.'): os.system("touch <canary>")."""
    return b"cos\nsystem\n(S" + repr(f"touch {canary}").encode() + b"\ntR."


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(num: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def saved_model(ops: list[str]) -> bytes:
    """A SavedModel whose graph has one node per op."""
    return _saved_model_with(b"", ops)


class _Payload:
    """Pickles to a call of os.system (pickling never runs it)."""

    def __init__(self, canary: Path) -> None:
        self.command = f"touch {canary}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


def _assert_caught(report: ScanReport, canary: Path, subject: str = "system") -> None:
    assert report.exit_code in (1, 2), report.to_dict()
    assert any(subject in f.subject for f in report.findings), report.to_dict()
    assert not canary.exists()


# ---- HDF5 (h5py) -----------------------------------------------------------------------------


def _h5_builders() -> dict[str, Callable[[Any, Path], None]]:
    import h5py
    import numpy as np

    def fixed_string_attr(f: Any, c: Path) -> None:  # PyTables unpickles it when read
        f.attrs["meta"] = np.bytes_(_p0_system(c))

    def opaque_attr(f: Any, c: Path) -> None:
        f.attrs["meta"] = np.void(_p4_system(c))

    def vlen_bytes_attr_on_dataset(f: Any, c: Path) -> None:
        ds = f.create_dataset("group/weights", data=np.zeros(4))
        ds.attrs.create("state", _p4_system(c), dtype=h5py.vlen_dtype(bytes))

    def string_array_attr(f: Any, c: Path) -> None:
        f.attrs["history"] = np.array([b"epoch 1", _p0_system(c)])

    def vlen_uint8_dataset(f: Any, c: Path) -> None:
        ds = f.create_dataset("objs", (2,), dtype=h5py.vlen_dtype(np.dtype("uint8")))
        ds[0] = np.frombuffer(pickle.dumps([1, 2]), dtype=np.uint8)
        ds[1] = np.frombuffer(_p4_system(c), dtype=np.uint8)

    def opaque_dataset(f: Any, c: Path) -> None:
        blob = _p4_system(c)
        f.create_dataset("blob", data=np.void(blob))

    def bytes_dataset(f: Any, c: Path) -> None:
        f.create_dataset("rows", data=np.array([b"plain.", _p4_system(c)]))

    def uint8_dataset(f: Any, c: Path) -> None:
        f.create_dataset("pickled", data=np.frombuffer(_p4_system(c), dtype=np.uint8))

    return {
        "fixed-string-attribute": fixed_string_attr,
        "opaque-attribute": opaque_attr,
        "vlen-bytes-attribute-on-dataset": vlen_bytes_attr_on_dataset,
        "string-array-attribute": string_array_attr,
        "vlen-uint8-dataset": vlen_uint8_dataset,
        "opaque-dataset": opaque_dataset,
        "bytes-dataset": bytes_dataset,
        "uint8-dataset": uint8_dataset,
    }


H5_CASES = [
    "fixed-string-attribute",
    "opaque-attribute",
    "vlen-bytes-attribute-on-dataset",
    "string-array-attribute",
    "vlen-uint8-dataset",
    "opaque-dataset",
    "bytes-dataset",
    "uint8-dataset",
]


@pytest.mark.parametrize("case", H5_CASES)
def test_pickle_hidden_in_hdf5_is_caught(case: str, tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    canary = tmp_path / "canary"
    path = tmp_path / "model.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("model_weights/dense/kernel", data=[[1.0, 2.0]])
        _h5_builders()[case](f, canary)
    _assert_caught(modelseal.scan(path), canary)


def test_pytables_pickled_attribute_and_object_atom_are_caught(tmp_path: Path) -> None:
    tables = pytest.importorskip("tables")
    canary = tmp_path / "canary"
    attr, atom = tmp_path / "attr.h5", tmp_path / "atom.h5"
    with tables.open_file(str(attr), "w") as t:  # PyTables pickles values it cannot store
        t.root._v_attrs.info = _Payload(canary)
    with tables.open_file(str(atom), "w") as t:  # ObjectAtom rows are pickles
        rows = t.create_vlarray(t.root, "objects", tables.ObjectAtom())
        rows.append({"plain": 1})
        rows.append(_Payload(canary))
    for path in (attr, atom):
        _assert_caught(modelseal.scan(path), canary)


def test_benign_hdf5_files_stay_clean(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    np = pytest.importorskip("numpy")
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f.attrs["description"] = "Trained on public data."  # ends in "." like a pickle
        f.attrs["note"] = np.bytes_(b"Done.")
        f.attrs["layer_names"] = np.array([b"dense", b"dense_1"])
        f.create_dataset("w", data=np.arange(12.0).reshape(3, 4))
        f.create_dataset("u8", data=np.arange(200, dtype=np.uint8))
        f.create_dataset("names", data=np.array([b"a", b"b."]))
    tables = pytest.importorskip("tables")
    with tables.open_file(str(tmp_path / "pytables.h5"), "w") as t:
        t.root._v_attrs.config = {"lr": 0.1, "layers": [1, 2], "name": "x"}
        rows = t.create_vlarray(t.root, "objects", tables.ObjectAtom())
        rows.append({"a": [1, 2]})
        rows.append(("tuple", 1.5))
        t.create_array(t.root, "arr", np.arange(10))
    report = modelseal.scan(tmp_path)
    assert report.clean, report.to_dict()


# ---- NumPy -----------------------------------------------------------------------------------


def _npy(descr: str, body: bytes) -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": (1,)}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + body


@pytest.mark.parametrize("descr", ["|O", "O", "object", "|O8", "object_"])
def test_object_npy_in_npz_is_caught_in_every_spelling(descr: str, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("weights.npy", _npy("<f4", b"\0\0\0\0"))
        zf.writestr("meta.npy", _npy(descr, _p0_system(canary)))
    (tmp_path / "arrays.npz").write_bytes(buf.getvalue())
    _assert_caught(modelseal.scan(tmp_path / "arrays.npz"), canary)


def test_numpy_saved_object_arrays_are_caught_and_plain_arrays_clean(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    canary = tmp_path / "canary"
    np.savez_compressed(tmp_path / "bad.npz", a=np.zeros(3), b=np.array([_Payload(canary)]))
    np.save(
        tmp_path / "bad.npy", np.array([(1, _Payload(canary))], dtype=[("i", "i4"), ("o", "O")])
    )
    for name in ("bad.npz", "bad.npy"):
        _assert_caught(modelseal.scan(tmp_path / name), canary)
    np.savez(tmp_path / "ok.npz", a=np.arange(5), b=np.array(["x", "y"]))
    assert modelseal.scan(tmp_path / "ok.npz").clean


# ---- ONNX ------------------------------------------------------------------------------------


def _onnx(canary: Path, where: str) -> Any:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    blob = _p4_system(canary)
    node = helper.make_node("Identity", ["x"], ["y"])
    inits = []
    if where == "string-tensor":
        labels: list[Any] = [b"cat", blob]
        inits.append(helper.make_tensor("labels", TensorProto.STRING, [2], labels))
    if where == "string-attribute":
        node = helper.make_node("Identity", ["x"], ["y"], payload=blob)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        initializer=inits,
    )
    model = helper.make_model(graph)
    if where == "metadata":
        helper.set_model_props(model, {"sklearn_state": blob.decode("latin-1")})
    return onnx, model


@pytest.mark.parametrize("where", ["string-tensor", "string-attribute", "metadata"])
def test_pickle_inside_onnx_is_caught(where: str, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    onnx, model = _onnx(canary, where)
    if where == "metadata":  # metadata values are strings: a protocol-0 pickle fits
        model.metadata_props[0].value = _p0_system(canary).decode()
    onnx.save_model(model, tmp_path / "m.onnx")
    _assert_caught(modelseal.scan(tmp_path / "m.onnx"), canary)


def test_onnx_external_data_that_is_a_pickle_is_caught(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    np = pytest.importorskip("numpy")
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.arange(4096, dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4096])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4096])],
        initializer=[weight],
    )
    model = helper.make_model(graph)
    onnx.save_model(
        model,
        tmp_path / "m.onnx",
        save_as_external_data=True,
        location="m.onnx.data",
        size_threshold=0,
    )
    assert modelseal.scan(tmp_path / "m.onnx").clean  # real external data: raw floats
    canary = tmp_path / "canary"
    (tmp_path / "m.onnx.data").write_bytes(_p4_system(canary))
    _assert_caught(modelseal.scan(tmp_path / "m.onnx"), canary)


# ---- TensorFlow SavedModel -------------------------------------------------------------------


def _saved_model_with(meta_extra: bytes, ops: list[str]) -> bytes:
    graph = b"".join(
        field(1, field(1, f"n{i}".encode()) + field(2, op.encode())) for i, op in enumerate(ops)
    )
    return b"\x08\x01" + field(2, field(2, graph) + meta_extra)


def _user_object(metadata: dict[str, Any]) -> bytes:
    user = field(1, b"_tf_keras_layer") + field(3, json.dumps(metadata).encode())
    return field(7, field(1, field(4, user)))


@pytest.mark.parametrize("op", ["PyFunc", "EagerPyFunc", "PyFuncStateless"])
def test_savedmodel_python_ops_are_caught(op: str, tmp_path: Path) -> None:
    (tmp_path / "saved_model.pb").write_bytes(saved_model(["Placeholder", op]))
    report = modelseal.scan(tmp_path / "saved_model.pb")
    assert report.exit_code == 1
    assert any(f.rule == "savedmodel.op" and f.subject == op for f in report.findings)


def test_savedmodel_keras_lambda_in_object_graph_is_caught(tmp_path: Path) -> None:
    meta = {"class_name": "Lambda", "config": {"function": ["4wEAAAAA", None, None]}}
    data = _saved_model_with(_user_object(meta), ["Placeholder", "MatMul"])
    (tmp_path / "saved_model.pb").write_bytes(data)
    report = modelseal.scan(tmp_path / "saved_model.pb")
    assert "keras.lambda" in {f.rule for f in report.findings}, report.to_dict()


def test_savedmodel_asset_outside_the_model_is_caught(tmp_path: Path) -> None:
    asset = field(6, field(2, b"../../../etc/passwd"))
    (tmp_path / "saved_model.pb").write_bytes(_saved_model_with(asset, ["Placeholder"]))
    report = modelseal.scan(tmp_path / "saved_model.pb")
    assert "savedmodel.asset-path" in {f.rule for f in report.findings}


def test_savedmodel_pickle_in_assets_folder_is_caught(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "vocab.txt").write_text("a\nb\n")
    (tmp_path / "assets" / "tokenizer.bin").write_bytes(_p4_system(canary))
    benign = _user_object({"class_name": "Dense", "config": {"units": 3}})
    benign += field(6, field(2, b"vocab.txt"))
    (tmp_path / "saved_model.pb").write_bytes(_saved_model_with(benign, ["Placeholder", "MatMul"]))
    assert modelseal.scan(tmp_path / "saved_model.pb").clean
    _assert_caught(modelseal.scan(tmp_path), canary)
