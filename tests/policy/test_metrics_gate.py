"""The metrics check end to end through ``modelseal gate``: a signed model of each framework
(scikit-learn, XGBoost, LightGBM, ONNX, TorchScript) measured on validation data, thresholds
absolute and against the registry's production (or ``--baseline``), slices and their gap, the
exact lines a user sees, and unusable data as exit 2 on one line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm

import modelseal
from modelseal.policy.gate import gate

Run = Callable[..., tuple[int, str, str]]
LOGISTIC = "sklearn.linear_model._logistic.LogisticRegression"
ROWS = 400


def _data(seed: int = 0) -> tuple[Any, Any, Any]:
    """Features, binary labels (x0 + x1/2 decides, with noise) and a region per row."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(ROWS, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] + 0.4 * rng.normal(size=ROWS) > 0).astype(np.int64)
    region = np.where(x[:, 2] > 0.3, "eu", "us")
    return x, y, region


def _csv(path: Path, x: Any, y: Any, region: Any) -> Path:
    rows = [
        f"{a!r},{b!r},{c!r},{g},{t}" for (a, b, c), g, t in zip(x.tolist(), region, y, strict=True)
    ]
    path.write_text("f0,f1,f2,region,label\n" + "\n".join(rows) + "\n")
    return path


def _number(value: float) -> str:
    return f"{value:.6g}"


def _sign(path: Path, key_pair: tuple[Path, Path]) -> Path:
    signature = path.with_name(path.name + ".sig")
    modelseal.sign(path, private_key=key_pair[0], signature=signature)
    return signature


def _policy(
    root: Path, public: Path, metrics: str, *, allow: tuple[str, ...] = (LOGISTIC,)
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "policy.yaml"
    path.write_text(
        f"version: 1\nname: release\nsignature: {{keys: [{{name: ci, path: {public}}}]}}\n"
        f"scan: {{allow: [{', '.join(allow)}]}}\nmetrics:\n  features: [f0, f1, f2]\n"
        + "".join(f"  {line}\n" for line in metrics.strip().splitlines())
    )
    return path


def _sklearn(root: Path) -> tuple[Path, Any]:
    import joblib
    from sklearn.linear_model import LogisticRegression

    x, y, _ = _data()
    model = LogisticRegression().fit(x, y)
    root.mkdir(parents=True, exist_ok=True)
    path = root / "model.joblib"
    joblib.dump(model, path)
    return path, model


def _metrics_check(decision: Any) -> Any:
    return next(c for c in decision.checks if c.check == "metrics")


# -- each framework, end to end through the CLI ---------------------------------------------


def _xgboost(root: Path, *, weak: bool = False) -> tuple[Path, Any]:
    xgb = pytest.importorskip("xgboost")
    x, y, _ = _data()
    if weak:  # trained on shuffled labels: about a coin toss
        y = np.random.default_rng(7).permutation(y)
    root.mkdir(parents=True, exist_ok=True)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 2},
        xgb.DMatrix(x, label=y),
        num_boost_round=10,
    )
    path = root / "model.json"
    booster.save_model(path)
    return path, (booster.inplace_predict(x) > 0.5).astype(int)


def _lightgbm(root: Path) -> tuple[Path, Any]:
    lgb = pytest.importorskip("lightgbm")
    x, y, _ = _data()
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 4},
        lgb.Dataset(x, label=y),
        num_boost_round=10,
    )
    path = root / "model.txt"
    booster.save_model(path)
    return path, (booster.predict(x) > 0.5).astype(int)


def _torch_module() -> Any:
    import torch

    module = torch.nn.Linear(3, 2)
    with torch.no_grad():  # logit of class 1 = x0 + x1/2: the rule the labels follow
        module.weight.copy_(torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.5, 0.0]]))
        module.bias.zero_()
    return module.eval()


def _rule_predictions() -> Any:
    x, _, _ = _data()
    return (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)


def _onnx(root: Path) -> tuple[Path, Any]:
    pytest.importorskip("onnxruntime")
    import torch

    path = root / "model.onnx"
    torch.onnx.export(
        _torch_module(),
        (torch.zeros(1, 3),),
        str(path),
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "rows"}},
        dynamo=False,
    )
    return path, _rule_predictions()


def _torchscript(root: Path) -> tuple[Path, Any]:
    import torch

    path = root / "model.pt"
    torch.jit.save(torch.jit.script(_torch_module()), str(path))
    return path, _rule_predictions()


def _sklearn_framework(root: Path) -> tuple[Path, Any]:
    path, model = _sklearn(root)
    return path, model.predict(_data()[0])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(
    ("framework", "build"),
    [
        ("sklearn", _sklearn_framework),
        ("xgboost", _xgboost),
        ("lightgbm", _lightgbm),
        ("onnx", _onnx),
        ("torchscript", _torchscript),
    ],
)
def test_each_framework_is_measured_from_its_signed_model(
    run_cli: Run, tmp_path: Path, key_pair: tuple[Path, Path], framework: str, build: Any
) -> None:
    model, own_predictions = build(tmp_path)
    signature = _sign(model, key_pair)
    x, y, region = _data()
    data = _csv(tmp_path / "valid.csv", x, y, region)
    accuracy = skm.accuracy_score(y, own_predictions)
    f1 = skm.f1_score(y, own_predictions)
    policy = _policy(
        tmp_path,
        key_pair[1],
        """
task: classification
thresholds:
  accuracy_score: {threshold: 0.7}
  f1_score: {threshold: 0.6}
""",
    )
    code, out, err = run_cli(
        "gate", model, "--signature", signature, "--policy", policy, "--data", data
    )
    assert code == 0, out + err
    line = next(line for line in out.splitlines() if "metrics:" in line)
    digest = modelseal.digest(data).root_digest  # not the dataset digest: the file's own
    assert digest  # the dataset is hashed below, as the evidence records it
    import hashlib

    sha = hashlib.sha256(data.read_bytes()).hexdigest()
    assert line == (
        f"PASS  metrics: every threshold met on valid.csv ({ROWS} rows, sha256:{sha[:16]}...): "
        f"accuracy_score {_number(accuracy)} (>= 0.7); f1_score {_number(f1)} (>= 0.6)"
    )
    code, out, _ = run_cli(
        "gate", model, "--signature", signature, "--policy", policy, "--data", data, "--json"
    )
    details = _metrics_check(json.loads(out, object_hook=_Obj)).details
    assert details["candidate"]["metrics"]["accuracy_score"] == pytest.approx(accuracy, abs=1e-12)
    assert details["candidate"]["digest"]["sha256"] == modelseal.digest(model).root_digest.hex()
    assert details["dataset"] == {"path": str(data), "sha256": sha, "rows": ROWS, "format": "csv"}


class _Obj(dict[str, Any]):
    """JSON objects with attribute access (``decision.checks``, ``check.details``)."""

    def __getattr__(self, name: str) -> Any:
        return self[name]


# -- absolute thresholds, slices and gaps ----------------------------------------------------


def test_absolute_thresholds_slices_and_gaps_pass_and_fail_with_exact_lines(
    run_cli: Run, tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    model, estimator = _sklearn(tmp_path)
    signature = _sign(model, key_pair)
    x, y, region = _data()
    data = _csv(tmp_path / "valid.csv", x, y, region)
    predicted = estimator.predict(x)
    accuracy = skm.accuracy_score(y, predicted)
    auc = skm.roc_auc_score(y, estimator.predict_proba(x)[:, 1])
    by_region = {
        r: skm.accuracy_score(y[region == r], predicted[region == r]) for r in ("eu", "us")
    }
    best, worst = sorted(by_region, key=lambda r: -by_region[r])
    gap = by_region[best] - by_region[worst]
    policy = _policy(
        tmp_path,
        key_pair[1],
        f"""
task: classification
thresholds:
  accuracy_score: {{threshold: 0.99}}
  roc_auc: {{threshold: 0.5}}
  log_loss: {{threshold: 0.0001}}
slices:
  - column: region
    thresholds: {{accuracy_score: {{threshold: {by_region[worst] + 0.001}}}}}
    max_gap: {{accuracy_score: {gap / 2}}}
""",
    )
    code, out, err = run_cli(
        "gate", model, "--signature", signature, "--policy", policy, "--data", data
    )
    assert code == 1
    loss = skm.log_loss(y, estimator.predict_proba(x))
    failed = [line for line in out.splitlines() if line.startswith("FAIL  metrics")]
    assert failed == [
        f"FAIL  metrics: accuracy_score: required >= 0.99; measured {_number(accuracy)}",
        f"FAIL  metrics: log_loss: required <= 0.0001; measured {_number(loss)}",
        f"FAIL  metrics: accuracy_score[region={worst}]: required >= "
        f"{_number(by_region[worst] + 0.001)}; measured {_number(by_region[worst])}",
        f"FAIL  metrics: accuracy_score gap across region slices: required <= {_number(gap / 2)}; "
        f"measured {_number(gap)} (best region={best} {_number(by_region[best])}, "
        f"worst region={worst} {_number(by_region[worst])})",
    ]
    assert err.strip().splitlines()[-1].startswith("modelseal: error: the gate refused")
    decision = gate(model, policy=policy, signature=signature, data=data)
    details = _metrics_check(decision).details
    assert details["candidate"]["metrics"]["roc_auc"] == pytest.approx(auc, abs=1e-12)
    assert [s["value"] for s in details["candidate"]["slices"]] == ["eu", "us"]
    assert details["gaps"][0]["gap"] == pytest.approx(gap) and not details["gaps"][0]["passed"]
    entry = details["thresholds"][0]
    assert entry["metric"] == "accuracy_score" and entry["comparator"] == ">="
    assert entry["threshold"] == 0.99 and entry["passed"] is False
    assert entry["failed"] == ["threshold"]
    # The same model under thresholds it meets: one line, and exit 0.
    policy = _policy(
        tmp_path,
        key_pair[1],
        f"""
task: classification
thresholds: {{accuracy_score: {{threshold: 0.8}}}}
slices:
  - column: region
    max_gap: {{accuracy_score: {gap + 0.01}}}
""",
    )
    code, out, _ = run_cli(
        "gate", model, "--signature", signature, "--policy", policy, "--data", data
    )
    assert code == 0
    assert (
        f"accuracy_score {_number(accuracy)} (>= 0.8); accuracy_score gap across region "
        f"{_number(gap)} (<= {_number(gap + 0.01)})" in out
    )


def test_metrics_in_the_evidence_and_the_cel_context(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    from modelseal.policy import evidence
    from modelseal.policy.bom import _metrics
    from modelseal.signing.keys import generate_key

    model, _ = _sklearn(tmp_path)
    signature = _sign(model, key_pair)
    data = _csv(tmp_path / "valid.csv", *_data())
    policy = _policy(
        tmp_path,
        key_pair[1],
        """
task: classification
thresholds: {accuracy_score: {threshold: 0.5}}
slices: [{column: region, max_gap: {accuracy_score: 1.0}}]
""",
    )
    text = (
        policy.read_text()
        + "rules:\n  - {name: accurate, expression: 'metrics.accuracy_score > 0.5'}\n"
    )
    policy.write_text(text)
    decision = gate(model, policy=policy, signature=signature, data=data)
    assert decision.passed, decision.failures
    key = generate_key("ecdsa-p256")
    envelopes = evidence.envelopes_for(decision, key, version="test")
    statements = [json.loads(__import__("base64").b64decode(e["payload"])) for e in envelopes]
    metrics = next(s for s in statements if s["predicate"].get("check") == "metrics")
    assert metrics["subject"][0]["digest"]["sha256"] == decision.digest
    predicate = metrics["predicate"]["details"]
    assert predicate["dataset"]["sha256"] and predicate["evaluator"]["version"]
    assert {"value", "comparator", "threshold", "passed", "baseline"} <= set(
        predicate["thresholds"][0]
    )
    card = list(_metrics([{"checks": [c.model_dump() for c in decision.checks]}]))
    assert {"type": "accuracy_score", "value": card[0]["value"]} == card[0]
    assert any(m.get("slice") == "region=eu" for m in card)


# -- unusable data and models ---------------------------------------------------------------


def test_unusable_data_is_exit_2_on_one_line(
    run_cli: Run, tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    model, _ = _sklearn(tmp_path)
    signature = _sign(model, key_pair)
    policy = _policy(
        tmp_path,
        key_pair[1],
        "task: classification\nthresholds: {accuracy_score: {threshold: 0.5}}",
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("f0,f1,f2,label\n1,2,3,0\n1,2\n")
    code, out, err = run_cli(
        "gate", model, "--signature", signature, "--policy", policy, "--data", bad
    )
    assert code == 2 and out == ""
    assert err.strip() == (
        f"modelseal: error: dataset '{bad}': row 3 has 2 fields, the header "
        "has 4; every row needs one value per column"
    )
    nolabel = tmp_path / "nolabel.csv"
    nolabel.write_text("f0,f1,f2\n1,2,3\n")
    code, _, err = run_cli(
        "gate", model, "--signature", signature, "--policy", policy, "--data", nolabel
    )
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"dataset '{nolabel}' has no column 'label' (label)" in err


def test_a_model_that_cannot_predict_on_the_data_fails_the_check(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    model, _ = _sklearn(tmp_path)
    signature = _sign(model, key_pair)
    data = tmp_path / "two.csv"
    data.write_text("f0,f1,label\n0.1,0.2,1\n-1,0.3,0\n")
    policy = _policy(
        tmp_path,
        key_pair[1],
        "task: classification\nthresholds: {accuracy_score: {threshold: 0.5}}",
    )
    policy.write_text(policy.read_text().replace("features: [f0, f1, f2]", "features: [f0, f1]"))
    decision = gate(model, policy=policy, signature=signature, data=data)
    lines = _metrics_check(decision).lines
    assert lines == [
        "metrics: accuracy_score: required a value; could not measure it: the model could not "
        "predict: X has 2 features, but LogisticRegression is expecting 3 features as input."
    ]


def test_the_model_is_loaded_only_if_its_scan_allows(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    import joblib

    from tests.policy.team_model import TeamModel

    x, y, _ = _data()
    model = tmp_path / "model.joblib"
    joblib.dump(TeamModel().fit(x, y), model)  # a team's own class: on no built-in allow-list
    signature = _sign(model, key_pair)
    data = _csv(tmp_path / "valid.csv", *_data())
    policy = _policy(
        tmp_path,
        key_pair[1],
        "task: classification\nthresholds: {accuracy_score: {threshold: 0.5}}",
        allow=(),
    )
    decision = gate(model, policy=policy, signature=signature, data=data)
    lines = _metrics_check(decision).lines
    assert len(lines) == 1
    assert lines[0].startswith(
        "metrics: required a model that loads; it did not: refusing to load: .: "
        "tests.policy.team_model.TeamModel"
    )
    assert "not on the allow-list" in lines[0]


def test_without_data_or_an_authenticated_model_nothing_is_measured(
    tmp_path: Path,
    key_pair: tuple[Path, Path],
    other_key_pair: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import modelseal.policy.metrics.loader as loader

    model, _ = _sklearn(tmp_path)
    signature = _sign(model, key_pair)
    data = _csv(tmp_path / "valid.csv", *_data())
    metrics = "task: classification\nthresholds: {accuracy_score: {threshold: 0.5}}"
    policy = _policy(tmp_path / "trusted", key_pair[1], metrics)
    untrusted = _policy(tmp_path / "untrusted", other_key_pair[1], metrics)
    decision = gate(model, policy=policy, signature=signature)
    assert _metrics_check(decision).lines == [
        "metrics: the policy sets thresholds; required validation data (--data); none given"
    ]
    calls: list[Any] = []
    original = loader.load_model

    def spy(*args: Any) -> Any:
        calls.append(args)
        return original(*args)

    monkeypatch.setattr(loader, "load_model", spy)
    assert gate(model, policy=policy, signature=signature, data=data).passed
    assert len(calls) == 1  # the seam sees an authenticated model loaded
    decision = gate(model, policy=untrusted, signature=signature, data=data)
    assert _metrics_check(decision).lines == [
        "metrics: not judged: the model was not authenticated"
    ]
    assert len(calls) == 1  # the unauthenticated one was not loaded, let alone unpickled
