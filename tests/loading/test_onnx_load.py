"""ONNX models loaded from verified bytes: the facts walk agrees with the onnx package, tensors
stored outside the file are refused wherever they sit, and onnxruntime reads a sealed
in-memory copy that nothing can write."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelseal.errors import TensorFormatError
from modelseal.loading import sealed
from modelseal.loading.native import load_onnx
from modelseal.loading.onnx_facts import BadMessage, onnx_facts

helper, numpy_helper, TensorProto = onnx.helper, onnx.numpy_helper, onnx.TensorProto


def _model(initializers: list[np.ndarray[Any, Any]], nodes: list[Any] | None = None) -> Any:
    """y = x + (sum of nothing): a graph holding ``initializers`` and an identity node."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    inits = [numpy_helper.from_array(a, f"w{i}") for i, a in enumerate(initializers)]
    graph = helper.make_graph(
        nodes or [helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y], inits
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


SHAPES = st.lists(st.lists(st.integers(0, 5), min_size=0, max_size=3), max_size=6)


@settings(max_examples=60, deadline=None)
@given(SHAPES)
def test_facts_agree_with_the_onnx_package(shapes: list[list[int]]) -> None:
    arrays = [np.zeros(s, dtype=np.float32) for s in shapes]
    raw = _model(arrays).SerializeToString()
    facts = onnx_facts(raw)
    parsed = onnx.load_model_from_string(raw)
    assert facts.initializers == len(parsed.graph.initializer)
    assert facts.parameters == sum(int(np.prod(i.dims)) for i in parsed.graph.initializer)
    assert facts.external == []


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_are_facts_or_a_bad_message(data: bytes) -> None:
    try:
        facts = onnx_facts(data)
    except BadMessage:
        return  # the only way it may fail
    assert facts.initializers >= 0 and facts.parameters >= 0


def _external(model: Any, tmp_path: Path) -> bytes:
    """``model`` saved with every tensor's data in a side file; the model file's bytes."""
    path = tmp_path / "m.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)  # fmt: skip
    return path.read_bytes()


def test_an_external_initializer_is_refused_by_name(tmp_path: Path) -> None:
    raw = _external(_model([np.ones(4, dtype=np.float32)]), tmp_path)
    assert onnx_facts(raw).external == ["w0"]
    with pytest.raises(TensorFormatError, match="tensor 'w0' keeps its data in another file"):
        load_onnx("m.onnx", bytearray(raw))


def test_external_data_is_found_in_attributes_and_subgraphs(tmp_path: Path) -> None:
    value = numpy_helper.from_array(np.ones(2, dtype=np.float32), "k")
    constant = helper.make_node("Constant", [], ["c"], value=value)
    then_out = helper.make_tensor_value_info("t", TensorProto.FLOAT, [2])
    branch = helper.make_graph(
        [helper.make_node("Identity", ["w_inner"], ["t"])], "then", [], [then_out],
        [numpy_helper.from_array(np.ones(2, dtype=np.float32), "w_inner")],
    )  # fmt: skip
    cond = helper.make_node("If", ["flag"], ["y"], then_branch=branch, else_branch=branch)
    model = _model([], nodes=[constant, cond])
    for tensor in (value, branch.initializer[0]):  # mark both external by hand
        tensor.data_location = TensorProto.EXTERNAL
        entry = tensor.external_data.add()
        entry.key, entry.value = "location", "elsewhere.bin"
    model.graph.node[0].attribute[0].t.CopyFrom(value)
    model.graph.node[1].attribute[0].g.initializer[0].CopyFrom(branch.initializer[0])
    facts = onnx_facts(model.SerializeToString())
    assert sorted(facts.external) == ["k", "w_inner"]
    plain = _model([np.ones(3, dtype=np.float32)]).SerializeToString()
    assert onnx_facts(plain).external == []


def test_onnxruntime_answers_from_the_sealed_copy() -> None:
    weights = np.array([1.0, 2.0], dtype=np.float32)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [x], [y],
                              [numpy_helper.from_array(weights, "w")])  # fmt: skip
    raw = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    session, kind, count, params = load_onnx("m.onnx", bytearray(raw))
    assert (kind, count, params) == ("onnx", 1, 2)
    out = session.run(None, {"x": np.array([10.0, 20.0], dtype=np.float32)})[0]
    assert out.tolist() == [11.0, 22.0]


@pytest.mark.skipif(not sealed.available(), reason="sealed memory files need Linux")
def test_a_sealed_file_holds_the_bytes_and_refuses_writes() -> None:
    data = os.urandom(100_000)
    with sealed.sealed_file(memoryview(data)) as path:
        assert Path(path).read_bytes() == data
        with pytest.raises(PermissionError), open(path, "r+b") as handle:
            handle.write(b"x")
        fd = int(path.rsplit("/", 1)[1])
        with pytest.raises(PermissionError):
            os.ftruncate(fd, 10)
    assert not os.path.exists(path)


def test_external_data_is_found_in_a_function_attribute_default() -> None:
    value = numpy_helper.from_array(np.ones(2, dtype=np.float32), "fdefault")
    value.data_location = TensorProto.EXTERNAL
    entry = value.external_data.add()
    entry.key, entry.value = "location", "elsewhere.bin"
    function = helper.make_function(
        "local", "f", ["a"], ["b"], [helper.make_node("Identity", ["a"], ["b"])],
        [helper.make_opsetid("", 17)],
    )  # fmt: skip
    function.attribute_proto.add().CopyFrom(helper.make_attribute("w", value))
    model = _model([])
    model.functions.append(function)
    assert onnx_facts(model.SerializeToString()).external == ["fdefault"]
