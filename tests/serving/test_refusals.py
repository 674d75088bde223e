"""A model that fails any check is not served: the ready routes say why, the failure is
counted, and nothing of it runs."""

from __future__ import annotations

import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelseal.signing.api import sign
from tests.serving.conftest import Signed, source_for


def _reason(client: Any) -> str:
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 400
    assert ready.json()["ready"] is False
    model = client.get("/v2/models/m/ready")
    assert model.status_code == 400 and model.json()["ready"] is False
    reason: str = ready.json()["models"]["m"]
    assert model.json()["reason"] == reason
    return reason


def _failures(client: Any) -> str:
    return "\n".join(
        line
        for line in client.get("/metrics").text.splitlines()
        if line.startswith("modelseal_model_verification_failures_total{")
    )


def test_a_tampered_model_is_not_served(
    models: Callable[[str], Signed], serve_app: Callable[..., Any], tmp_path: Path
) -> None:
    original = models("lightgbm")
    copy = tmp_path / "model.txt"
    data = bytearray(original.path.read_bytes())
    data[100] ^= 0x04
    copy.write_bytes(bytes(data))
    client = serve_app([source_for(original, path=copy)])
    assert "does not match" in _reason(client) or "digest" in _reason(client)
    assert 'model="m"' in _failures(client)
    answer = client.post("/v2/models/m/infer", json={"inputs": []})
    assert answer.status_code == 400 and "not ready" in answer.json()["error"]


def test_a_model_signed_by_another_key_is_not_served(
    models: Callable[[str], Signed],
    serve_app: Callable[..., Any],
    other_key_pair: tuple[Path, Path],
) -> None:
    model = models("xgboost")
    client = serve_app([source_for(model, public_key=other_key_pair[1])])
    assert "signature" in _reason(client)


def test_a_model_with_a_finding_is_not_served_and_never_runs(
    serve_app: Callable[..., Any], tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (shutil.copy, (__file__, str(marker)))

    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(Payload()))
    sign(path, private_key=key_pair[0], signature=tmp_path / "model.sig")
    signed = Signed(path, tmp_path / "model.sig", key_pair[1], "sklearn", 4)
    client = serve_app([source_for(signed)])
    reason = _reason(client)
    assert "refusing to load" in reason and "shutil" in reason
    assert not marker.exists()
    assert 'reason="unsafe-model"' in _failures(client) or "unsafe" in _failures(client)


def test_a_torchscript_model_without_a_signature_says_what_to_give(
    models: Callable[[str], Signed], serve_app: Callable[..., Any]
) -> None:
    client = serve_app([source_for(models("torchscript"), input_signature=None)])
    assert "declares no input signature" in _reason(client)


@pytest.mark.parametrize("framework", ["xgboost", "onnx"])
def test_a_framework_mismatch_is_a_reason_not_a_crash(
    framework: str, models: Callable[[str], Signed], serve_app: Callable[..., Any]
) -> None:
    model = models("lightgbm")
    client = serve_app([source_for(model, framework=framework)])
    assert _reason(client)
