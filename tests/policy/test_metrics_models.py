"""More model shapes through the metrics check: regression on NPZ and Parquet, an ONNX
classifier with a label output and ZipMap probabilities, multiclass XGBoost with weighted
averages; each value equals scikit-learn's on the model's own outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

from modelseal.policy.gate import gate
from tests.policy.test_metrics_gate import (
    ROWS,
    _csv,
    _data,
    _metrics_check,
    _number,
    _policy,
    _sign,
)


def test_regression_on_npz_and_parquet(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    import joblib
    from sklearn.linear_model import LinearRegression

    x, _, _ = _data()
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.1 * np.random.default_rng(1).normal(size=ROWS)
    estimator = LinearRegression().fit(x, y)
    model = tmp_path / "reg.joblib"
    joblib.dump(estimator, model)
    signature = _sign(model, key_pair)
    mse = skm.mean_squared_error(y, estimator.predict(x))
    r2 = skm.r2_score(y, estimator.predict(x))
    policy = _policy(
        tmp_path,
        key_pair[1],
        """
task: regression
label: y
thresholds:
  mean_squared_error: {threshold: 0.5}
  r2_score: {threshold: 0.999}
""",
        allow=("sklearn.linear_model._base.LinearRegression",),
    )
    npz = tmp_path / "valid.npz"
    np.savez(npz, X=x, y=y)
    policy.write_text(policy.read_text().replace("features: [f0, f1, f2]", "features: [X]"))
    decision = gate(model, policy=policy, signature=signature, data=npz)
    check = _metrics_check(decision)
    assert check.details["candidate"]["metrics"]["mean_squared_error"] == pytest.approx(mse)
    assert check.lines == [f"metrics: r2_score: required >= 0.999; measured {_number(r2)}"]
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    parquet = tmp_path / "valid.parquet"
    pq.write_table(pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y}), parquet)
    policy.write_text(policy.read_text().replace("features: [X]", "features: [a, b, c]"))
    decision = gate(model, policy=policy, signature=signature, data=parquet)
    check = _metrics_check(decision)
    assert check.details["dataset"]["format"] == "parquet"
    assert check.details["candidate"]["metrics"]["r2_score"] == pytest.approx(r2)


def _onnx_classifier(path: Path) -> None:
    """An ONNX classifier shaped like skl2onnx's: a label output (ArgMax) and a ZipMap of
    class probabilities, built with onnx.helper (classes 0 and 1; logit 1 = x0 + x1/2)."""
    import onnx
    from onnx import TensorProto, helper

    weights = helper.make_tensor("W", TensorProto.FLOAT, [3, 2], [0, 1, 0, 0.5, 0, 0])
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["proba"], axis=1),
        helper.make_node("ArgMax", ["proba"], ["label"], axis=1, keepdims=0),
        helper.make_node(
            "ZipMap", ["proba"], ["probabilities"], domain="ai.onnx.ml", classlabels_int64s=[0, 1]
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", 3])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["rows"]),
            helper.make_value_info(
                "probabilities",
                helper.make_sequence_type_proto(
                    helper.make_map_type_proto(
                        TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, [])
                    )
                ),
            ),
        ],
        [weights],
    )
    opsets = [helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    onnx.save(model, str(path))


def test_an_onnx_label_output_and_zipmap_probabilities_are_used(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    pytest.importorskip("onnxruntime")
    model = tmp_path / "model.onnx"
    _onnx_classifier(model)
    signature = _sign(model, key_pair)
    x, y, region = _data()
    data = _csv(tmp_path / "valid.csv", x, y, region)
    logit = x[:, 0] + 0.5 * x[:, 1]
    policy = _policy(
        tmp_path,
        key_pair[1],
        "task: classification\nframework: onnx\nthresholds: {accuracy_score: {threshold: 0.5}, "
        "roc_auc: {threshold: 0.5}}",
    )
    check = _metrics_check(gate(model, policy=policy, signature=signature, data=data))
    assert check.passed, check.lines
    measured = check.details["candidate"]["metrics"]
    assert measured["accuracy_score"] == pytest.approx(skm.accuracy_score(y, logit > 0))
    assert measured["roc_auc"] == pytest.approx(skm.roc_auc_score(y, logit), abs=1e-6)


def test_multiclass_xgboost_probabilities_and_weighted_averages(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    xgb = pytest.importorskip("xgboost")
    x, _, region = _data()
    y = np.digitize(x[:, 0] + 0.5 * x[:, 1], [-0.5, 0.5])  # three classes: 0, 1, 2
    booster = xgb.train(
        {"objective": "multi:softprob", "num_class": 3, "max_depth": 2},
        xgb.DMatrix(x, label=y),
        num_boost_round=8,
    )
    model = tmp_path / "multi.json"
    booster.save_model(model)
    signature = _sign(model, key_pair)
    proba = booster.inplace_predict(x)
    predicted = proba.argmax(axis=1)
    data = _csv(tmp_path / "valid.csv", x, y, region)
    policy = _policy(
        tmp_path,
        key_pair[1],
        "task: classification\nframework: xgboost\nthresholds: {f1_score: {threshold: 0.5}, "
        "roc_auc: {threshold: 0.5}, log_loss: {threshold: 2.0}}",
    )
    check = _metrics_check(gate(model, policy=policy, signature=signature, data=data))
    assert check.passed, check.lines
    measured = check.details["candidate"]["metrics"]
    assert measured["f1_score"] == pytest.approx(skm.f1_score(y, predicted, average="weighted"))
    assert measured["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y, proba, multi_class="ovr", average="weighted"), abs=1e-6
    )
    assert measured["log_loss"] == pytest.approx(skm.log_loss(y, proba), rel=1e-5)
