"""Serve benchmark: inference throughput and p99 latency of ``modelseal serve`` against
MLServer 1.7.1 (mlserver-sklearn) and against a bare floor, same model, same machine, same run.

    .venv/bin/python bench/bench_serve.py [--runs 5] [--seconds 5] [--connections 16]
        [--phases throughput,swap] [--swap-gib 1.0]

* Model: a scikit-learn ``LogisticRegression`` (4 features), one row per request, the Open
  Inference Protocol v2 JSON body, ``predict`` as the output.
* Contenders, each its own process on a loopback port:
  - **modelseal**: ``modelseal serve`` with everything on: the model verified (signature and
    digest), scanned and loaded from the verified bytes; a bearer token checked per request
    (``model.infer``, SQLite registry); input validated against the model's signature;
    Prometheus metrics counted per request.
  - **floor**: the same framework call (``predict``) behind the same HTTP stack (uvicorn with
    httptools, Starlette routing) with no check at all: parse JSON, build the array, predict,
    answer JSON. What "no verification, validation, auth or metrics" costs nothing.
  - **mlserver**: MLServer 1.7.1 with mlserver-sklearn 1.7.1 (uvloop 0.21.0) in its own venv
    (``bench/out/mlserver-venv``, created here with pip), in its fastest configuration:
    ``parallel_workers=0``, ``debug=false``, metrics endpoint off.
  Load: ``wrk`` (Debian package) with ``--connections`` connections for ``--seconds`` seconds
  after a warm-up, rounds interleaved (contender order rotates each round), medians of
  ``--runs`` rounds, each round after :func:`_common.wait_for_quiet`.
  Targets: modelseal >= 1.5x MLServer's throughput with a p99 no worse; modelseal >= 0.9x the
  floor's throughput.
* Hot swap (``swap``): a ``--swap-gib`` GiB model (an ONNX model whose initializer holds that
  many bytes, served from a registry alias) while wrk loads it; the alias moves to a second
  version of the same size; reported: failed requests (target 0) and the p99 during the swap.

MLServer 1.7.1 has no official ONNX runtime (its runtimes are sklearn, xgboost, lightgbm,
mlflow, huggingface, alibi, catboost; no ``mlserver-onnx`` release exists), so the ONNX peer
comparison is not run. Results: bench/out/serve.json and tables on stdout. Nothing here
asserts on time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c

MLSERVER = "1.7.1"
MLSERVER_PINS = [f"mlserver=={MLSERVER}", f"mlserver-sklearn=={MLSERVER}", "uvloop==0.21.0"]
VENV = c.OUT / "mlserver-venv"
ROW = [5.1, 3.5, 1.4, 0.2]
ALLOW = "sklearn.linear_model._logistic.LogisticRegression"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def body(name: str) -> bytes:
    """One row, the way each client of the protocol sends it."""
    tensor = {"name": name, "shape": [1, 4], "datatype": "FP64", "data": ROW}
    return json.dumps({"inputs": [tensor]}).encode()


# ----------------------------------------------------------------------------- set-up


def build_model(root: Path) -> dict[str, Path]:
    """Train, save (joblib) and sign the benchmark's model; return its paths."""
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from modelseal.signing.api import sign
    from modelseal.signing.keys import generate_key, write_key_pair

    rng = np.random.default_rng(7)
    x = rng.normal(size=(150, 4))
    y = (x[:, 0] + x[:, 2] > 0).astype(np.int64)
    model_dir = root / "iris"
    model_dir.mkdir(parents=True)
    path = model_dir / "model.joblib"
    joblib.dump(LogisticRegression().fit(x, y), path)
    write_key_pair(generate_key("ecdsa-p256"), root / "key.pem", root / "key.pub",
                   passphrase=None)  # fmt: skip
    sign(path, private_key=root / "key.pem", signature=root / "model.sig")
    return {"model": path, "signature": root / "model.sig", "public_key": root / "key.pub"}


def make_token(home: Path) -> str:
    """A registry in ``home`` with an application allowed to run the model; its token."""
    from modelseal.access.principals import CreateToken, CreateUser, GrantRole
    from modelseal.access.roles import Principal
    from modelseal.registry.config import RegistryConfig
    from modelseal.registry.core import Registry

    registry = Registry.open(RegistryConfig.resolve(home=home))
    admin = Principal("local:bench", superuser=True, source="local")
    try:
        registry.run(admin, CreateUser(name="app"))
        registry.run(admin, GrantRole(name="app", role="inference-client", scope="iris"))
        return str(registry.run(admin, CreateToken(name="app")).token)
    finally:
        registry.close()


def ensure_mlserver() -> Path | None:
    """MLServer's own venv (created once); ``None`` with a note when pip cannot get it."""
    mlserver = VENV / "bin" / "mlserver"
    if mlserver.exists():
        return mlserver
    print(f"creating {VENV} with {' '.join(MLSERVER_PINS)}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    done = subprocess.run([str(VENV / "bin" / "pip"), "install", "--quiet", *MLSERVER_PINS],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0 or not mlserver.exists():
        print(f"  MLServer is not available: {c._last_line(done.stderr)}")
        return None
    return mlserver


def mlserver_dir(root: Path, model: Path, port: int) -> Path:
    """MLServer's settings: fastest configuration, ports of our choosing."""
    home = root / "mlserver"
    (home / "iris").mkdir(parents=True)
    shutil.copy(model, home / "iris" / "model.joblib")
    settings = {
        "debug": False, "parallel_workers": 0, "http_port": port, "host": "127.0.0.1",
        "grpc_port": free_port(), "metrics_port": free_port(), "metrics_endpoint": None,
    }  # fmt: skip
    (home / "settings.json").write_text(json.dumps(settings))
    model_settings = {"name": "iris", "implementation": "mlserver_sklearn.SKLearnModel",
                      "parameters": {"uri": "./model.joblib", "version": "v1"}}  # fmt: skip
    (home / "iris" / "model-settings.json").write_text(json.dumps(model_settings))
    return home


@contextlib.contextmanager
def server(argv: Sequence[str], port: int, log: Path, *, cwd: Path | None = None,
           env: dict[str, str] | None = None,
           model: str = "iris") -> Iterator[subprocess.Popen[bytes]]:  # fmt: skip
    """Run a server until the block ends, once its model answers ready."""
    import urllib.request

    with log.open("w") as out:
        process = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                   env=env)  # fmt: skip
    deadline = time.monotonic() + 600
    # The server-level route: a model's own ready route needs a token when tokens are on.
    url = f"http://127.0.0.1:{port}/v2/health/ready"
    try:
        while True:
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise c.BenchError(f"{Path(argv[0]).name} did not start: "
                                   f"{log.read_text()[-1500:]}")  # fmt: skip
            time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ------------------------------------------------------------------------------ load


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, payload: bytes, root: Path, *, seconds: float, connections: int,
        token: str | None = None, pid: int | None = None,
        timeout: float = 2.0) -> dict[str, float]:  # fmt: skip
    """One wrk run; requests/s, p50/p99 (ms), failed requests and (given the server's
    ``pid``) the server's CPU time per request, which other load on the machine skews less
    than throughput."""
    script = root / f"post-{abs(hash((url, token)))}.lua"
    headers = 'wrk.headers["Content-Type"] = "application/json"\n'
    if token:
        headers += f'wrk.headers["Authorization"] = "Bearer {token}"\n'
    script.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(payload.decode())}\n'
                      f"{headers}")  # fmt: skip
    argv = [shutil.which("wrk") or "wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s",
            f"--timeout={timeout:g}s", "--latency", "-s", str(script), url]  # fmt: skip
    before = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    result = parse_wrk(out)
    if pid:
        result["cpu_us"] = (cpu_seconds(pid) - before) / max(result["requests"], 1) * 1e6
    return result


def parse_wrk(out: str) -> dict[str, float]:
    """The figures of wrk's ``--latency`` report."""

    def ms(text: str) -> float:
        value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]

    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    total = re.search(r"(\d+) requests in", out)
    if not (rate and p50 and p99 and total):
        raise c.BenchError(f"cannot read wrk's report: {out[-500:]}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       out)  # fmt: skip
    failed = int(non_2xx.group(1)) if non_2xx else 0
    if errors:
        failed += sum(int(g) for g in errors.groups())
    return {"rps": float(rate.group(1)), "p50_ms": ms(p50.group(1)), "p99_ms": ms(p99.group(1)),
            "requests": int(total.group(1)), "failed": failed}  # fmt: skip


# ------------------------------------------------------------------------------ phases


def throughput(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Interleaved rounds of wrk against each contender."""
    paths = build_model(root)
    home = root / "home"
    token = make_token(home)
    py = sys.executable
    env = {**os.environ, "MODELSEAL_HOME": str(home)}
    contenders: dict[str, dict[str, Any]] = {}
    port = free_port()
    contenders["modelseal"] = {
        "argv": [py, "-m", "modelseal", "serve", "--model", f"iris={paths['model']}",
                 "--signature", str(paths["signature"]), "--public-key",
                 str(paths["public_key"]), "--allow", ALLOW, "--home", str(home),
                 "--poll-interval", "0", "--reverify-interval", "0", "--port", str(port)],
        "port": port, "token": token, "input": "input-0", "env": env,
    }  # fmt: skip
    port = free_port()
    contenders["floor"] = {
        "argv": [py, str(Path(__file__).resolve().parent / "serve_floor.py"),
                 str(paths["model"]), str(port)],
        "port": port, "token": None, "input": "input-0", "env": env,
    }  # fmt: skip
    mlserver = ensure_mlserver() if not args.no_mlserver else None
    if mlserver is not None:
        port = free_port()
        settings = mlserver_dir(root, paths["model"], port)
        contenders["mlserver"] = {
            "argv": [str(mlserver), "start", str(settings)], "port": port, "token": None,
            "input": "predict", "env": {**os.environ, "PATH": f"{VENV / 'bin'}:/usr/bin:/bin"},
        }  # fmt: skip
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    quiet: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        for name, spec in contenders.items():
            process = stack.enter_context(
                server(spec["argv"], spec["port"], root / f"{name}.log", env=spec["env"])
            )
            spec["pid"] = process.pid
            spec["url"] = f"http://127.0.0.1:{spec['port']}/v2/models/iris/infer"
            spec["body"] = body(spec["input"])
            wrk(spec["url"], spec["body"], root, seconds=2, connections=args.connections,
                token=spec["token"])  # warm-up  # fmt: skip
        names = list(contenders)
        for run in range(args.runs):
            order = names[run % len(names) :] + names[: run % len(names)]
            for name in order:
                spec = contenders[name]
                quiet.append(c.wait_for_quiet(timeout=20))
                result = wrk(spec["url"], spec["body"], root, seconds=args.seconds,
                             connections=args.connections, token=spec["token"],
                             pid=spec["pid"])  # fmt: skip
                samples[name].append(result)
                print(
                    f"  round {run + 1} {name:9s} {result['rps']:8.0f} req/s  "
                    f"p99 {result['p99_ms']:6.1f} ms  cpu {result['cpu_us']:5.0f} us/req  "
                    f"failed {result['failed']}",
                    flush=True,
                )
    medians = {
        name: {
            k: statistics.median(s[k] for s in runs) for k in ("rps", "p50_ms", "p99_ms", "cpu_us")
        }
        | {"failed": sum(s["failed"] for s in runs)}
        for name, runs in samples.items()
    }
    return {"samples": samples, "medians": medians, "quiet": quiet,
            "connections": args.connections, "seconds": args.seconds}  # fmt: skip


def report(results: dict[str, Any]) -> None:
    """Tables and verdicts for the throughput phase."""
    med = results["medians"]
    rows = [[n, f"{m['rps']:.0f}", f"{m['p50_ms']:.1f}", f"{m['p99_ms']:.1f}",
             f"{m['cpu_us']:.0f}", m["failed"]] for n, m in med.items()]  # fmt: skip
    print(c.text_table(["server", "req/s", "p50 ms", "p99 ms", "CPU us/req", "failed"], rows))
    ours = med["modelseal"]
    floor_ratio = ours["rps"] / med["floor"]["rps"]
    results["floor_ratio"] = round(floor_ratio, 3)
    print(
        f"modelseal / floor throughput: {floor_ratio:.2f}x (target >= 0.90) "
        f"{c.verdict(floor_ratio >= 0.9)}"
    )
    if "mlserver" in med:
        peer = med["mlserver"]
        ratio = ours["rps"] / peer["rps"]
        p99_ok = ours["p99_ms"] <= peer["p99_ms"]
        results["mlserver_ratio"] = round(ratio, 3)
        print(
            f"modelseal / MLServer {MLSERVER} throughput: {ratio:.2f}x (target >= 1.5) "
            f"{c.verdict(ratio >= 1.5)}; p99 {ours['p99_ms']:.1f} vs {peer['p99_ms']:.1f} ms "
            f"{c.verdict(p99_ok)}"
        )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--phases", default="throughput,swap")
    parser.add_argument("--swap-gib", type=float, default=1.0)
    parser.add_argument("--no-mlserver", action="store_true", help="skip the MLServer peer")
    args, _unknown = parser.parse_known_args(argv)  # run_all passes the same args to all
    if shutil.which("wrk") is None:
        print("bench_serve: error: wrk is not installed (Debian package wrk: make bench)",
              file=sys.stderr)  # fmt: skip
        return 2
    c.exit_on_sigterm()
    phases = set(args.phases.split(","))
    results: dict[str, Any] = {"machine": c.machine_info()}
    if "throughput" in phases:
        with c.scratch_dir("ms-bench-serve-", need_bytes=64 * c.MiB) as root:
            results["throughput"] = throughput(root, args)
        report(results["throughput"])
    if "swap" in phases:
        from bench_serve_swap import swap

        need = int(args.swap_gib * 4 * c.GiB)
        with c.scratch_dir("ms-bench-swap-", need_bytes=need) as root:
            results["swap"] = swap(root, args)
    print(f"results: {c.write_results('serve', results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
