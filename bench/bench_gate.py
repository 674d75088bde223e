"""The gate without metrics against ``modelseal verify`` alone, on the same model, same run.

    .venv/bin/python bench/bench_gate.py [--runs 5] [--scale 1.0]

A 1 GiB model folder (a safetensors file of eight float32 tensors, a PyTorch checkpoint's
worth of pickled metadata, a config), signed once. Timed in-process, warm page cache,
interleaved rounds, median of ``--runs``:

* ``verify``: :func:`modelseal.verify` (authenticate the bundle, hash every byte);
* ``gate``: :func:`modelseal.gate` under a policy with a trusted key and a scan threshold: the
  same verification, every byte read once into memory, hashed and scanned from that memory,
  then judged (environment captured, decision built).

Target: gate <= 1.2 x verify. Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import functools
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c


def _model(root: Path, total: int) -> Path:
    import numpy as np
    import safetensors.numpy

    model = root / "model"
    model.mkdir()
    rng = np.random.default_rng(0)
    per = total // 8 // 4
    arrays = {f"layer{i}.weight": rng.standard_normal(per, dtype=np.float32) for i in range(8)}
    safetensors.numpy.save_file(arrays, model / "model.safetensors")
    (model / "config.json").write_text('{"layers": 8, "hidden": 4096}\n')
    # A benign pickle the scanner has to walk (training state: plain containers only).
    state = {"epoch": 12, "lr": [0.1 * 0.9**i for i in range(1000)], "names": list(arrays)}
    (model / "trainer_state.pkl").write_bytes(pickle.dumps(state, protocol=4))
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="data size factor (smoke)")
    args, _ = parser.parse_known_args(argv)
    c.ensure_requirements({"safetensors": None, "numpy": None}, extra="bench")
    c.ensure_requirements({"PyYAML": None, "common-expression-language": None}, extra="gate")

    import modelseal
    from modelseal.policy.document import load_policy
    from modelseal.signing.keys import generate_key, write_key_pair

    total = int(c.GiB * args.scale)
    with c.scratch_dir("modelseal-bench-gate-", need_bytes=2 * total) as tmp:
        write_key_pair(generate_key("ecdsa-p256"), tmp / "k", tmp / "k.pub", passphrase=None)
        model = _model(tmp, total)
        signature = tmp / "model.sig"
        modelseal.sign(model, private_key=tmp / "k", signature=signature)
        policy_path = tmp / "policy.yaml"
        policy_path.write_text(
            f"version: 1\nname: bench\nsignature: {{keys: [{{name: ci, path: {tmp / 'k.pub'}}}]}}\n"
            "scan: {max_severity: low}\n"
        )
        policy = load_policy(policy_path)
        size = sum(p.stat().st_size for p in model.iterdir())
        for path in model.iterdir():
            c.warm_cache(path)
        c.settle()
        check = modelseal.gate(model, policy=policy, signature=signature)
        if not check.passed:
            raise c.BenchError(f"the benchmark's model did not pass the gate: {check.failures}")
        fns: dict[str, Callable[[], Any]] = {
            "verify": functools.partial(
                modelseal.verify, model, signature=signature, public_key=tmp / "k.pub"
            ),
            "gate": functools.partial(modelseal.gate, model, policy=policy, signature=signature),
        }
        medians = c.interleaved_medians(fns, args.runs, memory=size + size // 4)
    ratio = medians["gate"] / medians["verify"]
    row = {
        "bytes": size,
        "verify_s": round(medians["verify"], 3),
        "gate_s": round(medians["gate"], 3),
        "ratio": round(ratio, 3),
        "target": "<= 1.2",
        "verdict": c.verdict(ratio <= 1.2),
    }
    results = {"benchmark": "gate", "scale": args.scale, "machine": c.machine_info(), "rows": [row]}
    headers = ["model", "verify s", "gate (no metrics) s", "gate / verify", "target"]
    table = [[f"{size / c.GiB:.2f} GiB", row["verify_s"], row["gate_s"], row["ratio"],
              f"{row['target']} {row['verdict']}"]]  # fmt: skip
    print(c.text_table(headers, table))
    print()
    print(c.markdown_table(headers, table))
    if args.scale != 1.0:
        print(f"NOTE: data scaled by {args.scale}; NOT comparable to the targets")
    print(f"results: {c.write_results('gate', results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
