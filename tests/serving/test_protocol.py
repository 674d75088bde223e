"""The Open Inference Protocol v2 over each framework: metadata, readiness, inference in JSON
and binary tensor data, and the model's own answers."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tests.serving.conftest import Signed, iris_like, source_for

FRAMEWORKS = ["sklearn", "xgboost", "lightgbm", "onnx", "torchscript"]


def _expected(model: Signed, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """What the framework itself answers, loaded the ordinary way (trusted test files)."""
    if model.framework == "sklearn":
        import joblib

        return np.asarray(joblib.load(model.path).predict(x))
    if model.framework == "xgboost":
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(model.path)
        return np.asarray(booster.inplace_predict(x))
    if model.framework == "lightgbm":
        import lightgbm as lgb

        return np.asarray(lgb.Booster(model_file=str(model.path)).predict(x))
    if model.framework == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(model.path))
        return np.asarray(session.run(None, {"x": x.astype(np.float32)})[0])
    import torch

    module = torch.jit.load(str(model.path))  # type: ignore[no-untyped-call]
    return np.asarray(module(torch.from_numpy(x.astype(np.float32))).detach().numpy())


def _request(framework: str, x: np.ndarray[Any, Any]) -> dict[str, Any]:
    name = "x" if framework in ("onnx", "torchscript") else "input-0"
    datatype = "FP32" if framework in ("onnx", "torchscript") else "FP64"
    return {"inputs": [{"name": name, "shape": list(x.shape), "datatype": datatype,
                        "data": x.reshape(-1).tolist()}]}  # fmt: skip


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_each_framework_answers_what_the_framework_itself_answers(
    framework: str, models: Callable[[str], Signed], serve_app: Callable[..., Any]
) -> None:
    model = models(framework)
    client = serve_app([source_for(model)])
    assert client.get("/v2/health/ready").json() == {"ready": True, "models": {}}
    meta = client.get("/v2/models/m").json()
    assert meta["name"] == "m" and meta["versions"] == ["1"]
    assert meta["parameters"]["digest"].startswith("sha256:")
    x, _ = iris_like(rows=5, seed=9)
    answer = client.post("/v2/models/m/infer", json=_request(framework, x))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model_name"] == "m" and body["model_version"] == "1"
    out = body["outputs"][0]
    got = np.array(out["data"]).reshape(out["shape"])
    np.testing.assert_allclose(got, _expected(model, x), rtol=1e-5, atol=1e-6)
    # The metadata states what each output really is (the warm-up call found out).
    for declared in meta["outputs"]:
        request = {**_request(framework, x), "outputs": [{"name": declared["name"]}]}
        (given,) = client.post("/v2/models/m/infer", json=request).json()["outputs"]
        assert given["datatype"] == declared["datatype"], (declared, given["datatype"])
        assert [-1, *given["shape"][1:]] == declared["shape"], (declared, given["shape"])


def test_binary_tensor_data_in_and_out(
    models: Callable[[str], Signed], serve_app: Callable[..., Any]
) -> None:
    client = serve_app([source_for(models("onnx"))])
    x = iris_like(rows=3, seed=4)[0].astype(np.float32)
    header = json.dumps({
        "inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes}}],
        "outputs": [{"name": "probs", "parameters": {"binary_data": True}}],
    }).encode()  # fmt: skip
    answer = client.post(
        "/v2/models/m/infer",
        content=header + x.tobytes(),
        headers={
            "Inference-Header-Content-Length": str(len(header)),
            "Content-Type": "application/octet-stream",
        },
    )
    assert answer.status_code == 200, answer.text
    split = int(answer.headers["inference-header-content-length"])
    meta = json.loads(answer.content[:split])
    out = meta["outputs"][0]
    assert out["datatype"] == "FP32" and out["shape"] == [3, 3]
    got = np.frombuffer(answer.content[split:], dtype="<f4").reshape(3, 3)
    np.testing.assert_allclose(got, _expected(models("onnx"), x), rtol=1e-5)
    assert out["parameters"]["binary_data_size"] == got.nbytes


def test_bytes_tensors_round_trip_in_binary_form() -> None:
    from modelseal.serving.tensors import decode_input, encode_output

    values = np.array([b"a", b"", "é".encode()], dtype=object)
    meta, raw = encode_output("t", values, binary=True)
    assert raw == b"".join(struct.pack("<I", len(v)) + v for v in values)
    spec = {"name": "t", "shape": [3], "datatype": "BYTES",
            "parameters": {"binary_data_size": len(raw)}}  # fmt: skip
    assert raw is not None
    name, back = decode_input(spec, memoryview(raw), max_elements=10)
    assert name == "t" and list(back) == list(values) and meta["datatype"] == "BYTES"


def test_predict_proba_when_asked(
    models: Callable[[str], Signed], serve_app: Callable[..., Any]
) -> None:
    client = serve_app([source_for(models("sklearn"))])
    x, _ = iris_like(rows=2, seed=5)
    request = _request("sklearn", x) | {"outputs": [{"name": "predict_proba"}]}
    body = client.post("/v2/models/m/infer", json=request).json()
    probs = np.array(body["outputs"][0]["data"]).reshape(body["outputs"][0]["shape"])
    assert probs.shape == (2, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_repository_index_unload_and_load(
    models: Callable[[str], Signed], serve_app: Callable[..., Any]
) -> None:
    client = serve_app([source_for(models("lightgbm"))])
    assert client.post("/v2/repository/index").json() == [
        {"name": "m", "version": "1", "state": "READY", "reason": ""}
    ]
    assert client.post("/v2/repository/models/m/unload").status_code == 200
    assert client.get("/v2/models/m/ready").status_code == 400
    assert client.get("/v2/health/ready").json()["ready"] is False
    x, _ = iris_like(rows=1)
    refused = client.post("/v2/models/m/infer", json=_request("lightgbm", x))
    assert refused.status_code == 400 and "not ready" in refused.json()["error"]
    assert client.post("/v2/repository/models/m/load").json() == {"name": "m", "ready": True}
    assert client.post("/v2/models/m/infer", json=_request("lightgbm", x)).status_code == 200


def test_server_metadata_and_liveness(
    models: Callable[[str], Signed], serve_app: Callable[..., Any]
) -> None:
    client = serve_app([source_for(models("xgboost"))])
    meta = client.get("/v2").json()
    assert meta["name"] == "modelseal" and "binary_tensor_data" in meta["extensions"]
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/models/nope").status_code == 404
    assert client.get("/v2/models/m/versions/7").status_code == 404
