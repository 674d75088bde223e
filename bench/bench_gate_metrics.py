"""The gate's metrics evaluator against the model's own batched ``predict`` plus scikit-learn's
metric functions, on 1 million rows, same run.

    .venv/bin/python bench/bench_gate_metrics.py [--runs 5] [--scale 1.0]

A binary classification dataset of 1 million rows (10 float features, a label, a 4-valued
``region`` column), and two scikit-learn models trained on a sample of it: a
``LogisticRegression`` (prediction is cheap, so the metrics dominate) and a
``HistGradientBoostingClassifier`` (prediction dominates). Timed in-process, interleaved
rounds, median of ``--runs``:

* ``peer``: ``model.predict`` and ``model.predict_proba`` in batches of 65,536 rows, then
  ``sklearn.metrics``: accuracy, precision, recall, F1, ROC AUC, log loss overall, and
  accuracy per region;
* ``modelseal``: :func:`modelseal.policy.metrics.evaluate.evaluate` under a policy asking for
  the same metrics (thresholds on each, a slice rule on ``region``), on the same in-memory
  dataset: the same batched predictions, then the gate's own metric functions.

Reading the dataset (with its SHA-256) is timed apart, per format, for information. Target:
modelseal <= 1.1 x peer. Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c

BATCH = 65_536
FEATURES = 10


def _data(rows: int) -> tuple[Any, Any, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, FEATURES))
    logit = x[:, 0] - 0.5 * x[:, 1] + 0.25 * x[:, 2] * x[:, 3] + 0.5 * rng.standard_normal(rows)
    y = (logit > 0).astype(np.int64)
    region = np.array(["eu", "us", "apac", "latam"])[rng.integers(0, 4, rows)]
    return x, y, region


def _peer(model: Any, x: Any, y: Any, region: Any) -> dict[str, float]:
    """What a team writes today: batched predict / predict_proba, then sklearn.metrics."""
    import numpy as np
    from sklearn import metrics as skm

    labels = np.concatenate([model.predict(x[i : i + BATCH]) for i in range(0, len(x), BATCH)])
    proba = np.concatenate([model.predict_proba(x[i : i + BATCH]) for i in range(0, len(x), BATCH)])
    out = {
        "accuracy_score": skm.accuracy_score(y, labels),
        "precision_score": skm.precision_score(y, labels),
        "recall_score": skm.recall_score(y, labels),
        "f1_score": skm.f1_score(y, labels),
        "roc_auc": skm.roc_auc_score(y, proba[:, 1]),
        "log_loss": skm.log_loss(y, proba),
    }
    for value in np.unique(region):
        mask = region == value
        out[f"accuracy_score[region={value}]"] = skm.accuracy_score(y[mask], labels[mask])
    return out


def _ours(model: Any, policy: Any, dataset: Any, features: Any) -> dict[str, float]:
    from modelseal.policy.metrics.evaluate import evaluate

    result = evaluate(model, policy, dataset, features)
    out = dict(result.overall.metrics)
    for part in result.slices["region"]:
        out[f"accuracy_score[{part.label}]"] = part.metrics["accuracy_score"]
    return out


def _medians(
    fns: dict[str, Callable[[], Any]], runs: int, samples: dict[str, Any] | None = None
) -> dict[str, float]:
    """Median wall time of each function over interleaved rounds; ``samples`` (if given)
    receives every wall and CPU time, per function."""
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            c.wait_for_quiet(timeout=30)
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    if samples is not None:
        for name in fns:
            samples[name] = {"wall_s": wall[name], "cpu_s": cpu[name]}
    return {name: statistics.median(values) for name, values in wall.items()}


def _read_times(tmp: Path, x: Any, y: Any, region: Any, runs: int) -> dict[str, float]:
    import numpy as np

    from modelseal.policy.metrics.dataset import read_dataset

    columns = {f"f{i}": x[:, i] for i in range(FEATURES)} | {"label": y, "region": region}
    paths = {"npz": tmp / "valid.npz"}
    np.savez(paths["npz"], **columns)
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        paths["parquet"] = tmp / "valid.parquet"
        pq.write_table(pa.table(columns), paths["parquet"])
    except ImportError:
        pass
    paths["csv"] = tmp / "valid.csv"
    with open(paths["csv"], "w") as handle:
        handle.write(",".join(columns) + "\n")
        for i in range(0, len(y), BATCH):
            block = [columns[n][i : i + BATCH].astype(str) for n in columns]
            handle.writelines(",".join(row) + "\n" for row in zip(*block, strict=True))
    times = {}
    for kind, path in paths.items():
        c.warm_cache(path)
        read: Callable[[], Any] = functools.partial(read_dataset, path)
        times[kind] = _medians({kind: read}, max(1, runs // 2))[kind]
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="data size factor (smoke)")
    args, _ = parser.parse_known_args(argv)
    c.ensure_requirements({"scikit-learn": None, "numpy": None}, extra="sklearn")
    c.ensure_requirements({"PyYAML": None, "pydantic": None}, extra="gate")

    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    from modelseal.policy.document import parse_policy
    from modelseal.policy.metrics.dataset import Dataset

    rows = int(1_000_000 * args.scale)
    x, y, region = _data(rows)
    columns = {f"f{i}": x[:, i] for i in range(FEATURES)} | {"label": y, "region": region}
    dataset = Dataset("memory", "npz", "0" * 64, rows, columns)
    names = ["accuracy_score", "precision_score", "recall_score", "f1_score", "roc_auc", "log_loss"]
    policy = parse_policy(
        {
            "metrics": {
                "task": "classification",
                "features": [f"f{i}" for i in range(FEATURES)],
                "thresholds": {n: {"threshold": 0.5 if n != "log_loss" else 1.0} for n in names},
                "slices": [
                    {"column": "region", "thresholds": {"accuracy_score": {"threshold": 0.5}}}
                ],
            }
        }
    ).metrics
    assert policy is not None
    features = dataset.features(policy.features, [])
    sample = slice(0, min(rows, 100_000))
    models = {
        "LogisticRegression": LogisticRegression().fit(x[sample], y[sample]),
        "HistGradientBoostingClassifier": HistGradientBoostingClassifier(max_iter=50).fit(
            x[sample], y[sample]
        ),
    }
    table, result_rows = [], []
    for name, model in models.items():
        theirs, ours = _peer(model, x, y, region), _ours(model, policy, dataset, features)
        if set(theirs) != set(ours) or any(abs(theirs[k] - ours[k]) > 1e-9 for k in theirs):
            raise c.BenchError(f"{name}: metrics differ: {theirs} vs {ours}")
        samples: dict[str, Any] = {}
        # One thread each (scikit-learn's OpenMP and BLAS pools): the same work for both, and
        # far steadier than contended thread pools on a shared 2-core machine.
        with threadpool_limits(limits=1):
            medians = _medians(
                {
                    "peer": functools.partial(_peer, model, x, y, region),
                    "modelseal": functools.partial(_ours, model, policy, dataset, features),
                },
                args.runs,
                samples,
            )
        ratio = medians["modelseal"] / medians["peer"]
        cpu = {k: statistics.median(v["cpu_s"]) for k, v in samples.items()}
        row = {
            "model": name,
            "rows": rows,
            "peer_s": round(medians["peer"], 3),
            "modelseal_s": round(medians["modelseal"], 3),
            "ratio": round(ratio, 3),
            "cpu_ratio": round(cpu["modelseal"] / cpu["peer"], 3),
            "samples": samples,
            "target": "<= 1.1",
            "verdict": c.verdict(ratio <= 1.1),
        }
        result_rows.append(row)
        table.append([name, f"{rows:,}", row["peer_s"], row["modelseal_s"], row["ratio"],
                      row["cpu_ratio"], f"{row['target']} {row['verdict']}"])  # fmt: skip
    with c.scratch_dir("modelseal-bench-metrics-", need_bytes=rows * 400) as tmp:
        reads = _read_times(tmp, x, y, region, args.runs)
    headers = [
        "model",
        "rows",
        "predict + sklearn.metrics s",
        "modelseal s",
        "ratio",
        "CPU-time ratio",
        "target",
    ]
    print(c.text_table(headers, table))
    print()
    print(c.markdown_table(headers, table))
    read_table = [[kind, round(seconds, 3)] for kind, seconds in reads.items()]
    print()
    print(c.markdown_table(["dataset format (read + SHA-256)", "s"], read_table))
    results = {
        "benchmark": "gate_metrics",
        "scale": args.scale,
        "machine": c.machine_info(),
        "rows": result_rows,
        "read_s": {k: round(v, 3) for k, v in reads.items()},
    }
    if args.scale != 1.0:
        print(f"NOTE: data scaled by {args.scale}; NOT comparable to the targets")
    print(f"results: {c.write_results('gate_metrics', results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
