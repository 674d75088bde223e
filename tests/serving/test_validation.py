"""Bad input of every kind is a 4xx naming the problem, and the model is never called."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelseal.serving.app import Limits
from modelseal.serving.runtimes import Runtime
from modelseal.serving.signature import read_signature
from tests.serving.conftest import Signed, source_for

DECLARED = {
    "inputs": [
        {"name": "features", "datatype": "FP64", "shape": [-1, 4],
         "minimum": [-10, -10, -10, -10], "maximum": [10, 10, 10, 10]},
    ],
}  # fmt: skip


@pytest.fixture
def guarded(
    models: Callable[[str], Signed], serve_app: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, list[Any]]]:
    """A scikit-learn model with a declared signature (bounds), and the calls that reached it."""
    calls: list[Any] = []
    source = source_for(models("sklearn"), input_signature=read_signature(DECLARED, "test"))
    client = serve_app([source], limits=Limits(max_body=4096, max_batch=8, max_elements=64))
    loaded = client.app.state.repository.get("m")
    real = loaded.runtime.predict

    def spy(inputs: Any, outputs: Any) -> Any:
        calls.append(inputs)
        return real(inputs, outputs)

    monkeypatch.setattr(loaded.runtime, "predict", spy)
    yield client, calls


def _good(rows: int = 1) -> dict[str, Any]:
    return {"inputs": [{"name": "features", "shape": [rows, 4], "datatype": "FP64",
                        "data": [0.5] * (4 * rows)}]}  # fmt: skip


def _with(**changes: Any) -> dict[str, Any]:
    request = _good()
    request["inputs"][0].update(changes)
    return request


CASES: list[tuple[str, Any, int, str]] = [
    ("wrong dtype", _with(datatype="INT64", data=[1, 2, 3, 4]), 400, "must be FP64"),
    ("unknown dtype", _with(datatype="FP128"), 400, "unknown datatype"),
    ("wrong shape", _with(shape=[1, 5], data=[0.0] * 5), 400, "must have shape"),
    ("count mismatch", _with(shape=[2, 4]), 400, "the shape needs 8"),
    ("wrong name", _with(name="pixels"), 400, "unknown input 'pixels'"),
    ("below minimum", _with(data=[0, -11, 0, 0]), 400, "below the minimum"),
    ("above maximum", _with(data=[0, 0, 0, 99]), 400, "(feature 3) is above the maximum"),
    ("string among numbers", _with(data=[0, 0, "NaN", 0]), 400, "do not fit datatype FP64"),
    ("strings as numbers", _with(data=["a", "b", "c", "d"]), 400, "do not fit datatype FP64"),
    ("ragged data", _with(data=[[1, 2], [3]]), 400, "not a regular array"),
    ("negative dimension", _with(shape=[-1, 4]), 400, "non-negative integer"),
    ("float dimension", _with(shape=[1.5, 4]), 400, "non-negative integer"),
    ("no data", {"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP64"}]}, 400,
     "has no data"),
    ("no inputs", {"inputs": []}, 400, "'inputs' must be a list"),
    ("not an object", [1, 2], 400, "must be a JSON object"),
    ("unknown field", _good() | {"extra": 1}, 400, "unknown request field"),
    ("duplicate input", {"inputs": _good()["inputs"] * 2}, 400, "given twice"),
    ("unknown output", _good() | {"outputs": [{"name": "logits"}]}, 400, "unknown output"),
    ("batch too large", _good(rows=9), 413, "batch of 9"),
    ("too many elements", _with(shape=[1000, 4]), 413, "4000 elements"),
    ("bool as number", _with(datatype="BOOL", data=[True] * 4), 400, "must be FP64"),
    ("int out of range", _with(datatype="INT8", data=[1000, 0, 0, 0]), 400, "do not fit"),
]  # fmt: skip


@pytest.mark.parametrize(("label", "request_", "status", "says"), CASES, ids=[c[0] for c in CASES])
def test_bad_requests_are_refused_before_the_model(
    guarded: tuple[Any, list[Any]], label: str, request_: Any, status: int, says: str
) -> None:
    client, calls = guarded
    answer = client.post("/v2/models/m/infer", content=json.dumps(request_))
    assert answer.status_code == status, (label, answer.text)
    assert says in answer.json()["error"], (label, answer.json())
    assert calls == []
    assert client.post("/v2/models/m/infer", json=_good()).status_code == 200
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("body", "header", "says"),
    [
        (b"{not json", None, "not valid JSON"),
        (b'{"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP64", '
         b'"data": [0, NaN, 0, 0]}]}', None, "NaN is not JSON"),
        (b'{"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP64", '
         b'"data": [0, 1e999, 0, 0]}]}', None, "NaN or infinite"),
        (b"[" * 100_000 + b"]" * 100_000, None, None),
        (b'{"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP64", '
         b'"parameters": {"binary_data_size": 32}}]}' + b"\0" * 31, "header", "does not fit"),
        (b'{"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP64", '
         b'"parameters": {"binary_data_size": 16}}]}' + b"\0" * 16, "header", "binary data is 16"),
        (b'{"inputs": []}', "999999", "Inference-Header-Content-Length"),
        (b"\xff\xfe", None, "not valid JSON"),
    ],
)  # fmt: skip
def test_malformed_bodies(
    guarded: tuple[Any, list[Any]], body: bytes, header: str | None, says: str | None
) -> None:
    client, calls = guarded
    headers = {}
    if header == "header":
        headers["Inference-Header-Content-Length"] = str(body.index(b"}]}") + 3)
    elif header is not None:
        headers["Inference-Header-Content-Length"] = header
    answer = client.post("/v2/models/m/infer", content=body, headers=headers)
    assert answer.status_code in (400, 413), answer.text
    if says is not None:
        assert says in answer.json()["error"]
    assert calls == []


def test_a_body_over_the_cap_is_413_before_it_is_parsed(guarded: tuple[Any, list[Any]]) -> None:
    client, calls = guarded
    answer = client.post("/v2/models/m/infer", content=b"x" * 5000)
    assert answer.status_code == 413 and "over 4096 bytes" in answer.json()["error"]
    assert calls == []


def test_categories(models: Callable[[str], Signed], serve_app: Callable[..., Any]) -> None:
    declared = {"inputs": [{"name": "x", "datatype": "INT64", "shape": [-1, 4],
                            "categories": [0, 1, 2]}]}  # fmt: skip
    source = source_for(models("sklearn"), input_signature=read_signature(declared, "t"))
    client = serve_app([source])
    ok = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "INT64", "data": [0, 1, 2, 1]}]}
    assert client.post("/v2/models/m/infer", json=ok).status_code == 200
    ok["inputs"][0]["data"] = [0, 1, 7, 1]
    bad = client.post("/v2/models/m/infer", json=ok)
    assert bad.status_code == 400 and "value 7 is not one of the allowed" in bad.json()["error"]


@pytest.mark.parametrize(
    ("signature", "says"),
    [
        ({}, "needs an 'inputs' list"),
        ({"inputs": []}, "has no inputs"),
        ({"inputs": [{"name": "a", "datatype": "FP99", "shape": [1]}]}, "datatype"),
        ({"inputs": [{"name": "a", "datatype": "FP32", "shape": [-2]}]}, "shape"),
        ({"inputs": [{"name": "a", "datatype": "FP32", "shape": [1], "minimum": "x"}]}, "minimum"),
        ({"inputs": [{"name": "a", "datatype": "FP32", "shape": [1], "categories": []}]},
         "categories"),
        ({"inputs": [{"name": "a", "datatype": "FP32", "shape": [1]}] * 2}, "same name"),
    ],
)  # fmt: skip
def test_bad_signatures_name_the_field(signature: dict[str, Any], says: str) -> None:
    from modelseal.errors import InputError

    with pytest.raises(InputError, match=says):
        read_signature(signature, "sig.json")


class _Echo(Runtime):
    framework = "sklearn"

    def predict(self, inputs: Any, outputs: Any) -> dict[str, Any]:
        (x,) = inputs.values()
        return {"predict": np.asarray(x).sum(axis=-1)}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20,
)  # fmt: skip
tensor = st.fixed_dictionaries(
    {"name": st.sampled_from(["features", "x", ""]),
     "shape": st.lists(st.integers(-2, 6), max_size=3) | json_values,
     "datatype": st.sampled_from(["FP64", "FP32", "INT64", "BOOL", "BYTES", "X"]),
     "data": json_values},
    optional={"parameters": st.dictionaries(st.just("binary_data_size"), st.integers(-1, 64))},
)  # fmt: skip


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(request_=st.fixed_dictionaries({"inputs": st.lists(tensor, max_size=3)},
                                      optional={"outputs": json_values, "id": json_values,
                                                "parameters": json_values}),
       tail=st.binary(max_size=64))  # fmt: skip
def test_no_request_makes_a_server_error(
    guarded: tuple[Any, list[Any]], request_: dict[str, Any], tail: bytes
) -> None:
    client, _calls = guarded
    header = json.dumps(request_).encode()
    answer = client.post(
        "/v2/models/m/infer",
        content=header + tail,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert answer.status_code < 500, answer.text
    if answer.status_code != 200:
        assert isinstance(answer.json()["error"], str)
