"""Ordinary files made by the real libraries scan clean with the default allow-list."""

from __future__ import annotations

import collections
import io
import pickle
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import modelseal


def _torch_files(d: Path) -> None:
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    torch.save(net.state_dict(), d / "state_dict.pt")
    torch.save(net.state_dict(), d / "legacy.pt", _use_new_zipfile_serialization=False)
    torch.save(net, d / "whole_module.pt")
    torch.save(
        {
            "epoch": 3,
            "opt": torch.optim.SGD(net.parameters(), lr=0.1).state_dict(),
            "t": torch.arange(10, dtype=torch.int64),
            "h": torch.ones(2, dtype=torch.half),
            "bf": torch.zeros(3, dtype=torch.bfloat16),
        },
        d / "checkpoint.bin",
    )
    torch.jit.save(torch.jit.script(net), d / "scripted.pt")


def _numpy_files(d: Path) -> None:
    np = pytest.importorskip("numpy")
    np.save(d / "a.npy", np.arange(12.0).reshape(3, 4))
    np.savez(d / "b.npz", x=np.ones(3), y=np.array(["a", "bc"]))
    np.savez_compressed(d / "c.npz", x=np.zeros((2, 2), dtype=np.complex64))
    (d / "arrays.pkl").write_bytes(
        pickle.dumps(
            {"x": np.arange(5), "f": np.float32(1.5), "s": np.array([(1, 2.0)], dtype="i4,f8")}
        )
    )
    (d / "arrays_p2.pkl").write_bytes(pickle.dumps([np.eye(2), np.dtype("U3")], protocol=2))
    (d / "arrays_p5.pkl").write_bytes(pickle.dumps(np.arange(4), protocol=5))
    (d / "py.pkl").write_bytes(
        pickle.dumps(
            {
                "od": collections.OrderedDict(a=1),
                "set": {1, 2},
                "fs": frozenset([3]),
                "b": b"\x00" * 100,
                "c": 1 + 2j,
                "nested": [[1, (2, 3)], {"k": None}],
            }
        )
    )


def _joblib_files(d: Path) -> None:
    joblib = pytest.importorskip("joblib")
    np = pytest.importorskip("numpy")
    value = {
        "w": np.arange(1000.0),
        "i": np.arange(7, dtype=np.int16),
        "meta": {"n": 3},
        "u": np.array(["x", "yz"]),
        "b": np.ones(3, dtype=bool),
    }
    joblib.dump(value, d / "plain.joblib")
    joblib.dump(value, d / "zlib.joblib", compress=3)
    joblib.dump(value, d / "gz.joblib", compress=("gzip", 3))
    joblib.dump(value, d / "bz2.joblib", compress=("bz2", 3))
    joblib.dump(value, d / "xz.joblib", compress=("xz", 3))
    joblib.dump(value, d / "lzma.joblib", compress=("lzma", 3))


def test_formats_are_recognised_by_content(tmp_path: Path) -> None:
    _torch_files(tmp_path)
    _joblib_files(tmp_path)
    for f in tmp_path.iterdir():
        f.rename(tmp_path / f"renamed_{f.name}.txt")
    report = modelseal.scan(tmp_path)
    formats = {Path(f.path).name: set(f.formats) for f in report.files}
    assert "pytorch-zip" in formats["renamed_state_dict.pt.txt"]
    assert "torch-legacy" in formats["renamed_legacy.pt.txt"]
    assert "torchscript" in formats["renamed_scripted.pt.txt"]
    assert "joblib" in formats["renamed_plain.joblib.txt"]
    assert {"zlib", "joblib"} <= formats["renamed_zlib.joblib.txt"]
    assert report.clean


class Custom:
    """A class of the user's own: not on the built-in list."""


def test_sklearn_is_built_in_and_other_classes_need_documented_opt_in(tmp_path: Path) -> None:
    joblib = pytest.importorskip("joblib")
    linear_model = pytest.importorskip("sklearn.linear_model")
    np = pytest.importorskip("numpy")
    model = linear_model.LogisticRegression().fit(
        np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1])
    )
    joblib.dump(model, tmp_path / "model.joblib")
    assert modelseal.scan(tmp_path / "model.joblib").clean
    custom = f"{Custom.__module__}.Custom"
    joblib.dump({"model": model, "custom": Custom()}, tmp_path / "other.joblib")
    first = modelseal.scan(tmp_path / "other.joblib")
    assert first.exit_code == 1
    assert {f.subject for f in first.findings} == {custom}
    config = tmp_path / "allow.toml"
    config.write_text(f'[scan]\nallow = ["{custom}"]\n')
    second = modelseal.scan(tmp_path / "other.joblib", allow_config=config)
    assert second.clean, second.to_dict()


def test_inline_array_bytes_are_never_parsed_as_opcodes(tmp_path: Path) -> None:
    joblib = pytest.importorskip("joblib")
    np = pytest.importorskip("numpy")
    # Array bytes that spell a GLOBAL to os.system if a disassembler walked into them.
    trap = np.frombuffer(b"cos\nsystem\n(S'x'\ntR." + b" " * 11, dtype=np.uint8)
    buf = io.BytesIO()
    joblib.dump({"trap": trap}, buf)
    (tmp_path / "f").write_bytes(buf.getvalue())
    assert modelseal.scan(tmp_path / "f").clean


def _keras_files(d: Path) -> None:
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3, activation="relu"),
            keras.layers.Dropout(0.1),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer="adam", loss="mse")
    model.save(d / "model.keras")
    model.save(d / "model.h5")
    model.save_weights(d / "only.weights.h5")


def _safetensors_files(d: Path) -> None:
    st_numpy = pytest.importorskip("safetensors.numpy")
    st_torch = pytest.importorskip("safetensors.torch")
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    st_numpy.save_file(
        {"a": np.ones((2, 3), dtype=np.float32), "b": np.arange(5)},
        str(d / "n.safetensors"),
        metadata={"format": "np"},
    )
    st_torch.save_file(
        {
            "a": torch.ones(2, dtype=torch.bfloat16),
            "b": torch.zeros(3, dtype=torch.int8),
            "e": torch.zeros(0),
        },
        str(d / "t.safetensors"),
    )
    st_torch.save_file({}, str(d / "empty.safetensors"))


def _onnx_files(d: Path) -> None:
    onnx = pytest.importorskip("onnx")
    np = pytest.importorskip("numpy")
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 2])
    w = numpy_helper.from_array(np.ones((2, 2), dtype=np.float32), "W")
    then = helper.make_graph(
        [helper.make_node("Identity", ["X"], ["T"])],
        "then",
        [],
        [helper.make_tensor_value_info("T", TensorProto.FLOAT, [1, 2])],
    )
    cond = numpy_helper.from_array(np.array(True), "C")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["X", "W"], ["H"]),
            helper.make_node("Relu", ["H"], ["Y"]),
            helper.make_node("If", ["C"], ["Z"], then_branch=then, else_branch=then),
        ],
        "g",
        [x],
        [y],
        [w, cond],
    )
    model = helper.make_model(graph)
    onnx.save(model, d / "m.onnx")
    sub = d / "ext"
    sub.mkdir()
    onnx.save_model(
        model,
        sub / "ext.onnx",
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.data",
        size_threshold=0,
    )


BUILDERS = {
    "torch": _torch_files,
    "numpy": _numpy_files,
    "joblib": _joblib_files,
    "keras": _keras_files,
    "safetensors": _safetensors_files,
    "onnx": _onnx_files,
}


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_benign_files_are_clean(kind: str, tmp_path: Path) -> None:
    BUILDERS[kind](tmp_path)
    report = modelseal.scan(tmp_path)
    assert len(report.files) >= 3
    for file in report.files:
        assert file.status == "clean", file.to_dict()
    assert report.exit_code == 0


def test_real_keras_lambda_is_flagged(tmp_path: Path) -> None:
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda t: t * 2)])
    model.save(tmp_path / "lambda.keras")
    report = modelseal.scan(tmp_path / "lambda.keras")
    assert report.exit_code == 1
    assert any(f.rule == "keras.lambda" for f in report.findings)


def test_gradient_boosting_native_files_are_data(tmp_path: Path) -> None:
    """LightGBM text and XGBoost JSON/UBJSON models are data: clean, never a broken pickle."""
    np = pytest.importorskip("numpy")
    lgb = pytest.importorskip("lightgbm")
    xgb = pytest.importorskip("xgboost")
    rng = np.random.default_rng(0)
    x = rng.random((64, 3))
    y = (x[:, 0] > 0.5).astype(int)
    booster = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(x, y), 2)
    booster.save_model(str(tmp_path / "lgb.txt"))
    model = xgb.XGBClassifier(n_estimators=2).fit(x, y)
    model.save_model(tmp_path / "xgb.json")
    model.save_model(tmp_path / "xgb.ubj")
    report = modelseal.scan(tmp_path)
    assert report.clean, report.to_dict()
    formats = {Path(f.path).name: set(f.formats) for f in report.files}
    assert formats["lgb.txt"] == {"lightgbm"}
    # Anything but text after the LightGBM magic makes the file unscannable, never clean.
    text = (tmp_path / "lgb.txt").read_bytes()
    for name, tail in [("nul", b"\x00"), ("utf8", b"\xff\xfe"), ("cut", "é".encode()[:1])]:
        bad = tmp_path / "bad" / name
        bad.parent.mkdir(exist_ok=True)
        bad.write_bytes(text[:200] + tail + (text[200:] if name != "cut" else b""))
        result = modelseal.scan(bad)
        assert result.exit_code == 2, (name, result.to_dict())
        assert not result.clean


def test_lightgbm_magic_does_not_hide_a_pickle(tmp_path: Path) -> None:
    """The real unpickler rejects a file starting with the LightGBM magic at offset 0 (TUPLE
    without MARK): nothing after it can run, so recognising the magic loses no detection."""
    payload = b"tree\nversion=v4\n" + b"cos\nsystem\n(S'true'\ntR."
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(payload)  # the point: the real unpickler refuses it at offset 0
    (tmp_path / "m.txt").write_bytes(payload)
    assert modelseal.scan(tmp_path / "m.txt").clean


@settings(max_examples=150, deadline=None)
@given(
    first=st.sampled_from([b"\x82", b"\x83", b"\x84", b"\x80\x30", b"\x80\xff", b"\x80\x79"]),
    values=st.lists(st.floats(width=32, allow_nan=False), min_size=4, max_size=400),
)
def test_raw_weights_that_start_like_pickle_opcodes_are_data(
    first: bytes, values: list[float]
) -> None:
    """A file of raw tensor bytes (ONNX external data, TensorFlow variables) whose first bytes
    are an EXT opcode, or 0x80 with no protocol a pickle has, is data: a plain pickle.loads
    stops right there (no extension code is registered; no such protocol)."""
    import struct

    from modelseal.scanning.engine import Options, scan_bytes

    data = first + struct.pack(f"<{len(values)}f", *values)[len(first) :]
    report = scan_bytes(data, Options())
    assert report.status == "clean", (data[:16].hex(), report.to_dict())
