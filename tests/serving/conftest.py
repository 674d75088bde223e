"""Real models of every served framework, trained at run time and signed, and an in-process
inference server over them."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelseal.serving.app import Limits
from modelseal.serving.run import ServeSettings, build
from modelseal.serving.source import ModelSource
from modelseal.signing.api import sign
from tests.registry.fixtures import db_url, registry  # noqa: F401 (fixtures)

SKLEARN_ALLOW = ("sklearn.linear_model._logistic.LogisticRegression",)


@dataclasses.dataclass
class Signed:
    """A model on disk with its signature and the key that verifies it."""

    path: Path
    signature: Path
    public_key: Path
    framework: str
    features: int


def iris_like(rows: int = 120, features: int = 4, seed: int = 3) -> tuple[Any, Any]:
    """A small separable classification problem."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    return x, y


def _signed(path: Path, key_pair: tuple[Path, Path], framework: str, features: int) -> Signed:
    sig = path.parent / f"{path.name}.sig"
    sign(path, private_key=key_pair[0], signature=sig)
    return Signed(path, sig, key_pair[1], framework, features)


def make_model(kind: str, root: Path, key_pair: tuple[Path, Path], *, features: int = 4) -> Signed:
    """Train a model of ``kind`` on :func:`iris_like`, save it the framework's usual way, sign
    it."""
    root.mkdir(parents=True, exist_ok=True)
    x, y = iris_like(features=features)
    if kind == "sklearn":
        import joblib
        from sklearn.linear_model import LogisticRegression

        path = root / "model.joblib"
        joblib.dump(LogisticRegression().fit(x, y), path)
    elif kind == "xgboost":
        import xgboost as xgb

        xgb_booster = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(x, label=y), 5)
        path = root / "model.json"
        xgb_booster.save_model(path)
    elif kind == "lightgbm":
        import lightgbm as lgb

        data = lgb.Dataset(x, label=y)
        params = {"objective": "binary", "verbose": -1, "min_data_in_leaf": 5}
        booster = lgb.train(params, data, num_boost_round=5)
        path = root / "model.txt"
        booster.save_model(str(path))
    elif kind in ("onnx", "torchscript"):
        import torch

        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(dim=1)).eval()
        example = torch.zeros(1, 4)
        if kind == "torchscript":
            path = root / "model.pt"
            traced = torch.jit.trace(net, example)  # type: ignore[no-untyped-call]
            torch.jit.save(traced, str(path))
        else:
            path = root / "model.onnx"
            torch.onnx.export(
                net, (example,), str(path), input_names=["x"], output_names=["probs"],
                dynamic_axes={"x": {0: "batch"}, "probs": {0: "batch"}}, dynamo=False,
            )  # fmt: skip
    else:
        raise ValueError(kind)
    return _signed(path, key_pair, kind, features)


@pytest.fixture(scope="session")
def models(
    tmp_path_factory: pytest.TempPathFactory, key_pair: tuple[Path, Path]
) -> Callable[[str], Signed]:
    """``models(kind)``: a signed model of that framework (built once per session)."""
    built: dict[str, Signed] = {}
    root = tmp_path_factory.mktemp("served")

    def get(kind: str) -> Signed:
        if kind not in built:
            built[kind] = make_model(kind, root / kind, key_pair)
        return built[kind]

    return get


TORCH_SIGNATURE = {
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
    "outputs": [{"name": "output-0", "datatype": "FP32", "shape": [-1, 3]}],
}


def source_for(model: Signed, name: str = "m", **changes: Any) -> ModelSource:
    """A disk source for ``model`` (TorchScript gets its declared signature)."""
    from modelseal.serving.signature import read_signature

    declared = read_signature(TORCH_SIGNATURE, "test") if model.framework == "torchscript" else None
    base = ModelSource(
        name,
        path=model.path,
        signature=model.signature,
        public_key=model.public_key,
        allow=SKLEARN_ALLOW,
        input_signature=declared,
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture
def serve_app() -> Iterator[Callable[..., Any]]:
    """``serve_app(sources, **settings)``: a TestClient over an in-process server."""
    from fastapi.testclient import TestClient

    clients: list[Any] = []

    def make(sources: list[ModelSource], **settings: Any) -> Any:
        limits = settings.pop("limits", Limits())
        options = ServeSettings(auth=False, poll_interval=0, reverify_interval=0, limits=limits,
                                **settings)  # fmt: skip
        client = TestClient(build(sources, options), raise_server_exceptions=True)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)
