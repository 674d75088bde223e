"""``modelseal serve`` as a user runs it: a real process answering over HTTP, and one line
with exit code 2 for every mistake before it starts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.serving.conftest import Signed
from tests.serving.live import free_port


def _cli(*args: str, home: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODELSEAL_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "modelseal", "serve", *args],
        capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip


def test_serve_a_model_from_disk(models: Callable[[str], Signed], tmp_path: Path) -> None:
    model = models("lightgbm")
    port = free_port()
    env = {**os.environ, "MODELSEAL_HOME": str(tmp_path / "home")}
    args = [sys.executable, "-m", "modelseal", "serve", "--model", f"churn={model.path}",
            "--signature", str(model.signature), "--public-key", str(model.public_key),
            "--no-auth", "--port", str(port)]  # fmt: skip
    process = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/v2/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.2)
        row = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64",
                           "data": [0.1, 0.2, 0.3, 0.4]}]}  # fmt: skip
        answer = httpx.post(f"{base}/v2/models/churn/infer", json=row)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_name"] == "churn"
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--model", "MODEL"], "needs its signature"),
        (["--model", "MODEL", "--signature", "SIG", "--tls-cert", "SIG"], "go together"),
        (["--model", "MODEL", "--port", "70000"], "70000"),
        (["--model", "not a ref!"], "neither a model path that exists nor a registry"),
        (["--model", "MODEL", "--model", "MODEL", "--signature", "SIG"], "only one model"),
        (["--model", "MODEL", "--signature", "SIG", "--input-signature", "SIG"],
         "input signature"),
        (["--model", "fraud@prod", "--server", "http://127.0.0.1:9"], "database"),
        (["--model", "fraud@prod", "--no-auth", "--kek", "local:/nonexistent/kek.json"],
         "cannot read keyset"),
    ],
)  # fmt: skip
def test_mistakes_are_one_line(
    args: list[str], says: str, models: Callable[[str], Signed], tmp_path: Path
) -> None:
    model = models("xgboost")
    real = [str(model.path) if a == "MODEL" else str(model.signature) if a == "SIG" else a
            for a in args]  # fmt: skip
    result = _cli(*real, home=tmp_path / "home")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], result.stderr
    assert "Traceback" not in result.stderr
