"""A model is called once before it serves: on a sample its signature accepts (categories,
bounds, fixed dimensions), and a model that fails that call is still served, saying why."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from modelseal.serving.runtimes import Runtime
from modelseal.serving.signature import read_signature
from modelseal.serving.warmup import sample, warm
from tests.serving.conftest import Signed, source_for

SIGNATURE = read_signature(
    {"inputs": [
        {"name": "a", "datatype": "FP32", "shape": [-1, 3], "minimum": [1, -5, 0.5],
         "maximum": [2, -1, 9]},
        {"name": "b", "datatype": "INT64", "shape": [2, -1], "categories": [7, 9]},
        {"name": "c", "datatype": "BYTES", "shape": [-1], "categories": ["red", "blue"]},
        {"name": "d", "datatype": "INT32", "shape": [-1, 2], "minimum": 0.5},
    ]},
    "test",
)  # fmt: skip


def test_samples_pass_their_own_signature() -> None:
    arrays = {spec.name: sample(spec) for spec in SIGNATURE.inputs}
    checked = SIGNATURE.check(arrays, max_batch=10)
    assert checked["a"].tolist() == [[1.0, -1.0, 0.5]]
    assert checked["b"].shape == (2, 1) and set(checked["b"].ravel().tolist()) == {7}
    assert checked["c"].tolist() == [b"red"]
    assert checked["d"].tolist() == [[1, 1]]


class Failing(Runtime):
    def predict(self, inputs: Any, outputs: Any) -> dict[str, np.ndarray[Any, Any]]:
        raise RuntimeError("no GPU here\nsecond line")


def test_a_failed_warm_up_is_reported_not_fatal() -> None:
    outputs, why = warm(Failing(), SIGNATURE)
    assert outputs == [] and why == "no GPU here"


def test_a_served_model_is_warm_and_runs_inline_from_the_first_request(
    models: Callable[[str], Signed], serve_app: Callable[..., Any]
) -> None:
    client = serve_app([source_for(models("sklearn"))])
    loaded = client.app.state.repository.get("m")
    assert loaded.warm_error == "" and loaded.runtime.typical_seconds is not None
    assert loaded.runtime.runs_inline({"input-0": np.zeros((1, 4))})
    meta = client.get("/v2/models/m").json()["outputs"]
    assert meta[0] == {"name": "predict", "datatype": "INT64", "shape": [-1]}
    assert meta[1]["name"] == "predict_proba" and meta[1]["datatype"] == "FP64"


@pytest.mark.parametrize("framework", ["xgboost", "lightgbm", "onnx", "torchscript"])
def test_every_framework_warms(
    framework: str, models: Callable[[str], Signed], serve_app: Callable[..., Any]
) -> None:
    client = serve_app([source_for(models(framework))])
    loaded = client.app.state.repository.get("m")
    assert loaded.warm_error == "" and loaded.outputs, loaded.warm_error


def test_a_shadow_that_fails_without_a_message_is_named_by_its_type(
    models: Callable[[str], Signed], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception with no text (``KeyError()``) while loading a shadow is its type's name on
    the shadow route, not a crash of the server's start."""
    import dataclasses

    from modelseal.serving import repository as repo_module
    from modelseal.serving.repository import Repository
    from modelseal.serving.source import load_source as real

    source = source_for(models("sklearn"))
    shadow = dataclasses.replace(source, path=None, signature=None, ref="m@candidate")
    repository = Repository([source], shadows=[shadow])

    def load(spec: Any, backend: Any) -> Any:
        if spec.ref is not None:
            raise KeyError()
        return real(spec, backend)

    monkeypatch.setattr(repo_module, "load_source", load)
    repository.load_all()
    assert repository.get("m").version == "1"
    assert repository.entries["m"].shadow_reason == "KeyError"


def test_first_line_of_foreign_errors() -> None:
    from modelseal.errors import first_line

    assert first_line(ValueError("bad value\nsecond line")) == "bad value"
    assert first_line(KeyError()) == "KeyError"
    assert first_line(RuntimeError("  \n")) == "RuntimeError"
    assert first_line(ValueError("x" * 500)) == "x" * 300
    assert first_line(ValueError("x" * 500), 10) == "x" * 10
    assert first_line(ValueError("x" * 500), None) == "x" * 500
