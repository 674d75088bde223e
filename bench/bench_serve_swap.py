"""The hot-swap phase of the Serve benchmark (run by bench_serve.py): a large model served
from a registry alias under load; the alias moves to a second version of the same size; wrk
counts failed requests and the latency during the swap.

The model is an ONNX graph whose one initializer holds ``--swap-gib`` GiB of random float32
values (so every check reads that many bytes: the digest, the ONNX scan, the load) and whose
output is ``x + table[:4]``. Both versions are signed, pushed to an embedded registry (SQLite,
a blob folder) and served with ``modelseal serve NAME@live --poll-interval 0.5``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import _common as c
import bench_serve as b


def big_onnx(path: Path, gib: float, seed: int) -> None:
    """An ONNX model with a ``gib`` GiB initializer, written straight to ``path``."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    count = int(gib * c.GiB) // 4
    table = np.random.default_rng(seed).random(count, dtype=np.float32)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    starts = numpy_helper.from_array(np.array([0], dtype=np.int64), "starts")
    ends = numpy_helper.from_array(np.array([4], dtype=np.int64), "ends")
    nodes = [
        helper.make_node("Slice", ["table", "starts", "ends"], ["head"]),
        helper.make_node("Add", ["x", "head"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "big", [x], [y],
                              [numpy_helper.from_array(table, "table"), starts, ends])  # fmt: skip
    del table
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save_model(model, str(path))


def _push_versions(root: Path, gib: float) -> tuple[Path, Any, Any]:
    from modelseal.access.roles import Principal
    from modelseal.registry.backend import LocalBackend, push
    from modelseal.registry.config import RegistryConfig
    from modelseal.registry.core import Registry
    from modelseal.registry.trusted_keys import AddTrustedKey
    from modelseal.registry.versions import SetAlias
    from modelseal.signing.api import sign
    from modelseal.signing.keys import generate_key, write_key_pair

    write_key_pair(generate_key("ecdsa-p256"), root / "key.pem", root / "key.pub",
                   passphrase=None)  # fmt: skip
    home = root / "home"
    registry = Registry.open(RegistryConfig.resolve(home=home))
    admin = Principal("local:bench", superuser=True, source="local")
    registry.run(admin, AddTrustedKey(pem=(root / "key.pub").read_text(), name="bench"))
    backend = LocalBackend(registry, admin)
    for version in (1, 2):
        folder = root / f"v{version}"
        folder.mkdir()
        path = folder / "model.onnx"
        big_onnx(path, gib, seed=version)
        sign(path, private_key=root / "key.pem", signature=folder / "model.sig")
        push(backend, path, name="big", signature=folder / "model.sig",
             public_key=root / "key.pub")  # fmt: skip
        path.unlink()  # the registry holds its own copy
    registry.run(admin, SetAlias(name="big", alias="live", version=1))
    return home, registry, (admin, SetAlias)


def swap(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Serve version 1 under wrk load, move the alias to version 2, report failures and p99."""
    import json
    import urllib.request

    print(f"  building and pushing two {args.swap_gib:g} GiB versions", flush=True)
    home, registry, (admin, set_alias) = _push_versions(root, args.swap_gib)
    port = b.free_port()
    argv = [sys.executable, "-m", "modelseal", "serve", "--model", "big@live", "--home",
            str(home), "--no-auth", "--poll-interval", "0.5", "--reverify-interval", "0",
            "--port", str(port)]  # fmt: skip
    env = {**os.environ, "MODELSEAL_HOME": str(home)}
    base = f"http://127.0.0.1:{port}"
    payload = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                                      "data": [0.1, 0.2, 0.3, 0.4]}]}).encode()  # fmt: skip

    def version() -> str:
        try:
            with urllib.request.urlopen(f"{base}/v2/models/big", timeout=30) as answer:
                return str(json.loads(answer.read())["versions"][0])
        except OSError:  # a stalled server is a finding, reported by wrk; keep watching
            return "?"

    started = time.monotonic()
    with b.server(argv, port, root / "swap-serve.log", env=env, model="big"):
        startup = time.monotonic() - started
        steady = b.wrk(f"{base}/v2/models/big/infer", payload, root, seconds=3,
                       connections=args.connections)  # fmt: skip
        seen: dict[str, float] = {}

        def move() -> None:
            time.sleep(2.0)
            moved = time.monotonic()
            registry.run(admin, set_alias(name="big", alias="live", version=2))
            while time.monotonic() - moved < 300:
                if version() == "2":
                    seen["swap_s"] = time.monotonic() - moved
                    return
                time.sleep(0.1)

        mover = threading.Thread(target=move)
        mover.start()
        # wrk runs in 5 s slices through the whole swap (2 s before the move, until one slice
        # after the switch); failures add up, the p99 reported is the worst slice's.
        slices: list[dict[str, float]] = []
        while mover.is_alive() or len(slices) < 2:
            slices.append(b.wrk(f"{base}/v2/models/big/infer", payload, root, seconds=5,
                                connections=args.connections, timeout=10))  # fmt: skip
            if not mover.is_alive() and "swap_s" in seen and len(slices) >= 2:
                break
        mover.join()
        during = {"rps": sum(s["rps"] for s in slices) / len(slices),
                  "p99_ms": max(s["p99_ms"] for s in slices),
                  "failed": sum(s["failed"] for s in slices),
                  "requests": sum(s["requests"] for s in slices), "slices": slices}  # fmt: skip
        after = version()
    registry.close()
    result = {"gib": args.swap_gib, "startup_s": round(startup, 1), "steady": steady,
              "during_swap": during, "swap_s": round(seen.get("swap_s", -1.0), 2),
              "served_after": after}  # fmt: skip
    print(
        f"  steady: {steady['rps']:.0f} req/s p99 {steady['p99_ms']:.1f} ms; during the swap "
        f"({result['swap_s']} s to switch): {during['rps']:.0f} req/s, p99 "
        f"{during['p99_ms']:.1f} ms, failed {during['failed']} of {during['requests']} "
        f"{c.verdict(during['failed'] == 0 and after == '2')}",
        flush=True,
    )
    subprocess.run(["sync"], check=False)
    return result
