"""The metrics check against a baseline from the registry: minimum absolute and relative
changes against the model's current ``production`` or ``--baseline REF``, through the Python
API and ``modelseal gate``; a missing or untrusted baseline fails every change threshold with
the reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn import metrics as skm

import modelseal
from modelseal.policy.gate import gate
from tests.policy.fixtures import admit
from tests.policy.test_metrics_gate import (
    Run,
    _csv,
    _data,
    _metrics_check,
    _number,
    _policy,
    _sign,
    _xgboost,
)
from tests.registry.fixtures import Env, SignedModel, open_env


def _registry(tmp_path: Path) -> Env:
    return open_env(tmp_path / "home", f"sqlite:///{tmp_path / 'registry.db'}")


def _push(env: Env, path: Path, signature: Path, public: Path, name: str = "fraud") -> int:
    from modelseal.registry.backend import LocalBackend, push

    backend = LocalBackend(env.registry, env.admin)
    return push(backend, path, name=name, signature=signature, public_key=public).version


def _production(env: Env, name: str, number: int, model: SignedModel) -> None:
    from modelseal.registry.versions import SetAlias

    admit(env.registry, env.admin, model, name, number)
    env.registry.run(env.admin, SetAlias(name=name, alias="production", version=number))


def test_min_changes_compare_with_production_and_with_baseline(
    run_cli: Run, tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    from modelseal.registry.backend import LocalBackend

    env = _registry(tmp_path)
    try:
        weak, weak_predicted = _xgboost(tmp_path / "weak", weak=True)
        good, good_predicted = _xgboost(tmp_path / "good")
        weak_sig, good_sig = _sign(weak, key_pair), _sign(good, key_pair)
        v1 = _push(env, weak, weak_sig, key_pair[1])
        v2 = _push(env, good, good_sig, key_pair[1])
        _production(env, "fraud", v1, SignedModel(weak, weak_sig, key_pair[1], key_pair[0]))
        x, y, region = _data()
        data = _csv(tmp_path / "valid.csv", x, y, region)
        acc_weak = skm.accuracy_score(y, weak_predicted)
        acc_good = skm.accuracy_score(y, good_predicted)
        assert acc_good - acc_weak > 0.2
        policy = _policy(
            tmp_path,
            key_pair[1],
            """
task: classification
thresholds:
  accuracy_score: {min_absolute_change: 0.2, min_relative_change: 0.1}
""",
        )
        backend = LocalBackend(env.registry, env.admin)
        decision = gate(f"fraud:{v2}", policy=policy, data=data, backend=backend)
        check = _metrics_check(decision)
        assert check.passed, check.lines
        relative = (acc_good - acc_weak) / acc_weak
        assert check.lines[0].endswith(
            f": accuracy_score {_number(acc_good)} (>= {_number(acc_weak + 0.2)}, "
            f"relative change {_number(relative)})"
        )
        baseline = check.details["baseline"]
        assert baseline["ref"] == f"fraud:{v1}"
        assert baseline["digest"]["sha256"] == modelseal.digest(weak).root_digest.hex()
        assert baseline["metrics"]["accuracy_score"] == pytest.approx(acc_weak)
        # The weak model against the good one (--baseline): both changes fail, each one line.
        home = [
            "--home",
            str(tmp_path / "home"),
            "--db-url",
            f"sqlite:///{tmp_path / 'registry.db'}",
        ]
        code, out, _ = run_cli(
            "gate",
            f"fraud:{v1}",
            "--policy",
            policy,
            "--data",
            data,
            "--baseline",
            f"fraud:{v2}",
            *home,
        )
        assert code == 1
        failed = [line for line in out.splitlines() if line.startswith("FAIL  metrics")]
        drop = (acc_weak - acc_good) / acc_good
        assert failed == [
            f"FAIL  metrics: accuracy_score: required >= {_number(acc_good + 0.2)} (baseline "
            f"{_number(acc_good)} + min_absolute_change 0.2); measured {_number(acc_weak)}",
            f"FAIL  metrics: accuracy_score: required a relative change >= 0.1 over baseline "
            f"{_number(acc_good)}; measured {_number(drop)} ({_number(acc_weak)})",
        ]
        # A model path with --baseline: the registry is opened for the baseline alone.
        code, out, _ = run_cli(
            "gate",
            good,
            "--signature",
            good_sig,
            "--policy",
            policy,
            "--data",
            data,
            "--baseline",
            "fraud@production",
            *home,
        )
        assert code == 0, out
        code, _, err = run_cli(
            "gate",
            good,
            "--signature",
            good_sig,
            "--policy",
            policy,
            "--data",
            data,
            "--baseline",
            "fraud:9",
            *home,
        )
        assert code == 2 and len(err.strip().splitlines()) == 1
    finally:
        env.registry.close()


def test_without_a_trusted_baseline_change_thresholds_fail(
    tmp_path: Path, key_pair: tuple[Path, Path], other_key_pair: tuple[Path, Path]
) -> None:
    from modelseal.registry.backend import LocalBackend

    env = _registry(tmp_path)
    try:
        good, _ = _xgboost(tmp_path / "good")
        good_sig = _sign(good, key_pair)
        data = _csv(tmp_path / "valid.csv", *_data())
        policy = _policy(
            tmp_path,
            key_pair[1],
            "task: classification\nthresholds: {accuracy_score: {min_absolute_change: 0.01}}",
        )
        backend = LocalBackend(env.registry, env.admin)
        number = _push(env, good, good_sig, key_pair[1], name="solo")
        decision = gate(f"solo:{number}", policy=policy, data=data, backend=backend)
        assert _metrics_check(decision).lines == [
            "metrics: accuracy_score: required a baseline to compare with (min_absolute_change); "
            "none: solo has no production version"
        ]
        # production signed by a key the policy does not trust: not compared with.
        other, _ = _xgboost(tmp_path / "other", weak=True)
        other_sig = _sign(other, other_key_pair)
        v1 = _push(env, other, other_sig, other_key_pair[1], name="mixed")
        _production(
            env, "mixed", v1, SignedModel(other, other_sig, other_key_pair[1], other_key_pair[0])
        )
        v2 = _push(env, good, good_sig, key_pair[1], name="mixed")
        decision = gate(f"mixed:{v2}", policy=policy, data=data, backend=backend)
        check = _metrics_check(decision)
        assert check.lines == [
            "metrics: accuracy_score: required a baseline to compare with (min_absolute_change); "
            f"baseline mixed:{v1} is not signed by a signer the policy trusts"
        ]
        assert check.details["baseline"]["ref"] == f"mixed:{v1}"
    finally:
        env.registry.close()
