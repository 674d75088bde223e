"""Train a small churn classifier (LightGBM) on synthetic data and write it with its input
signature: four features, each within the range seen in training."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(500, 4))
    y = (x[:, 0] - 0.7 * x[:, 2] + 0.3 * rng.normal(size=500) > 0).astype(int)
    params = {"objective": "binary", "verbose": -1, "min_data_in_leaf": 10}
    booster = lgb.train(params, lgb.Dataset(x, label=y), num_boost_round=20)
    booster.save_model(str(out / "model.txt"))
    signature = {
        "inputs": [
            {"name": "input-0", "datatype": "FP64", "shape": [-1, 4],
             "minimum": [round(float(v) - 1, 2) for v in x.min(axis=0)],
             "maximum": [round(float(v) + 1, 2) for v in x.max(axis=0)]},
        ],
    }  # fmt: skip
    (out / "signature.json").write_text(json.dumps(signature, indent=1) + "\n")
    print(f"trained a LightGBM churn model on {len(x)} rows -> {out / 'model.txt'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
