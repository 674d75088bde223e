"""`make demo` runs end to end: the demo script, in a scratch folder, exits 0 (it checks every
exit code it expects along the way: the tampered model fails, the payload is caught, the rogue
version fails the gate and production refuses it, the good one is promoted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_demo_runs_end_to_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELSEAL_")}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["MODELSEAL_DEMO_OUT"] = str(tmp_path / "out")
    done = subprocess.run(["bash", str(ROOT / "demo" / "demo.sh")], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "gate FAILED: tiny-mlp:2" in done.stdout
    assert "tiny-mlp@production -> 1" in done.stdout
    assert not (tmp_path / "out" / "pwned").exists()
