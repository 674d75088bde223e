"""Conformance with real clients: NVIDIA's tritonclient (HTTP, JSON and binary tensors) and the
request bodies of MLServer's documentation, against the server over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelseal.serving.run import ServeSettings, build
from tests.serving.conftest import Signed, iris_like, make_model, source_for
from tests.serving.live import running

tritonclient_http = pytest.importorskip("tritonclient.http")


@pytest.fixture
def onnx_server(models: Callable[[str], Signed]) -> Any:
    app = build([source_for(models("onnx"), name="iris")],
                ServeSettings(auth=False, poll_interval=0, reverify_interval=0))  # fmt: skip
    with running(app) as url:
        yield url


@pytest.mark.parametrize("binary", [False, True])
def test_tritonclient_infers(onnx_server: str, binary: bool) -> None:
    client = tritonclient_http.InferenceServerClient(url=onnx_server)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("iris")
    meta = client.get_model_metadata("iris")
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    x = iris_like(rows=6, seed=2)[0].astype(np.float32)
    tensor = tritonclient_http.InferInput("x", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    wanted = tritonclient_http.InferRequestedOutput("probs", binary_data=binary)
    result = client.infer("iris", [tensor], outputs=[wanted], request_id="r-1")
    probs = result.as_numpy("probs")
    assert probs is not None and probs.shape == (6, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert result.get_response()["id"] == "r-1"
    index = client.get_model_repository_index()
    assert index == [{"name": "iris", "version": "1", "state": "READY", "reason": ""}]
    server = client.get_server_metadata()
    assert server["name"] == "modelseal"
    client.close()


def test_tritonclient_sees_refusals_as_errors(onnx_server: str) -> None:
    from tritonclient.utils import InferenceServerException

    client = tritonclient_http.InferenceServerClient(url=onnx_server)
    tensor = tritonclient_http.InferInput("x", [1, 3], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 3), dtype=np.float32))
    with pytest.raises(InferenceServerException, match="must have shape"):
        client.infer("iris", [tensor])
    assert not client.is_model_ready("absent")
    client.close()


DATA = Path(__file__).parent / "data" / "mlserver"


@pytest.mark.parametrize(
    ("framework", "request_file", "features", "outputs"),
    [
        ("sklearn", "sklearn-inference-request.json", 3, ["predict", "predict_proba"]),
        ("lightgbm", "lightgbm-inference-request.json", 3, ["predict", "predict_proba"]),
        ("xgboost", "xgboost-inference-request.json", 3, ["predict"]),
        ("sklearn", "iris-rest-request.json", 4, ["predict"]),
    ],
)
def test_mlserver_request_bodies(
    framework: str,
    request_file: str,
    features: int,
    outputs: list[str],
    tmp_path: Path,
    key_pair: tuple[Path, Path],
    serve_app: Callable[..., Any],
) -> None:
    """MLServer's own request bodies (tests/serving/data/mlserver) are answered."""
    model = make_model(framework, tmp_path / framework, key_pair, features=features)
    client = serve_app([source_for(model)])
    body = json.loads((DATA / request_file).read_text())
    answer = client.post("/v2/models/m/infer", json=body)
    assert answer.status_code == 200, answer.text
    got = answer.json()["outputs"]
    assert [o["name"] for o in got] == outputs
    assert all(o["shape"][0] == 1 for o in got)
