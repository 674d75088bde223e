"""Run every benchmark in bench/ (each ``bench_*.py``, in name order) as its own process.

Stops at the first one that fails, with a one-line error. Extra arguments are passed to every
benchmark (e.g. ``--runs 3``). Results land in bench/out/<name>.json.

    .venv/bin/python bench/run_all.py [ARGS...]
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover() -> list[Path]:
    return sorted(HERE.glob("bench_*.py"))


def main(argv: list[str]) -> int:
    scripts = discover()
    if not scripts:
        print("run_all: error: no bench/bench_*.py found", file=sys.stderr)
        return 1
    for script in scripts:
        print(f"=== {script.name} ===", flush=True)
        start = time.perf_counter()
        code = subprocess.run([sys.executable, str(script), *argv], check=False).returncode
        if code != 0:
            print(f"run_all: error: {script.name} failed (exit {code})", file=sys.stderr)
            return 1
        print(f"=== {script.name}: done in {time.perf_counter() - start:.0f} s ===", flush=True)
    print(f"run_all: {len(scripts)} benchmark(s) done; results in {HERE / 'out'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
