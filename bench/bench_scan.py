"""Scan speed and memory: modelseal vs picklescan, modelscan and fickling, same files, same run.

Cases (benign files; the issue's targets):

* ``bytes-1g``: a 1 GiB pickle holding one bytes object -- no slower than the fastest peer, and
  peak memory <= 10% of the file size;
* ``ops-10m``: a pickle of 10 million opcodes (a list of 10 million ints) -- >= 2x faster than
  the fastest peer; ``dict-strings`` (a 1.5M-entry str -> float dict) is reported alongside;
* ``torch-1g``: a 1 GiB PyTorch zip checkpoint -- no slower than the fastest peer.

Each command runs as a subprocess, each tool through its own console script (wall time includes
interpreter start-up); the table shows the median of ``--runs`` runs (at least ``SHORT_RUNS``
when every command of a case takes under a second, where a few ms of noise would decide) and the
ratio peer time / our time. Peak memory is the child's max RSS.
Peers come from ``bench/scan_peers.py`` (their own virtualenv). Nothing here asserts on time.

    .venv/bin/python bench/bench_scan.py [--runs 3] [--scale 1.0] [--cases a,b]
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import (  # noqa: E402
    GiB,
    MiB,
    machine_info,
    markdown_table,
    script,
    text_table,
    verdict,
    wait_for_quiet,
    write_results,
)
from scan_peers import VENV, ensure_peers  # noqa: E402

_MAXRSS = (
    "import resource, subprocess, sys, time;"
    "t = time.perf_counter();"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL,"
    " stderr=subprocess.DEVNULL).returncode;"
    "t = time.perf_counter() - t;"
    "print(code, t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def make_bytes_pickle(path: Path, size: int) -> None:
    """Protocol 4: BINBYTES8 header, ``size`` bytes, MEMOIZE, STOP -- written in chunks."""
    chunk = bytes(range(256)) * (4 * MiB // 256)
    with path.open("wb") as fh:
        fh.write(b"\x80\x04\x8e" + struct.pack("<Q", size))
        left = size
        while left:
            n = min(left, len(chunk))
            fh.write(chunk[:n])
            left -= n
        fh.write(b"\x94.")


def make_ops_pickle(path: Path, n: int) -> None:
    path.write_bytes(pickle.dumps(list(range(n)), protocol=4))


def make_dict_pickle(path: Path, n: int) -> None:
    path.write_bytes(pickle.dumps({f"key{i}": i * 0.5 for i in range(n)}, protocol=4))


def make_torch_zip(path: Path, size: int) -> None:
    import torch

    torch.save({"weight": torch.zeros(size // 4, dtype=torch.float32), "step": 1}, path)


CASES = {
    "bytes-1g": (make_bytes_pickle, 1 * GiB, "no slower; peak RSS <= 10% of file"),
    "ops-10m": (make_ops_pickle, 10_000_000, ">= 2x faster than the fastest peer"),
    "dict-strings": (make_dict_pickle, 1_500_000, "reported (no target)"),
    "torch-1g": (make_torch_zip, 1 * GiB, "no slower than the fastest peer"),
}


SHORT_RUNS = 15


def commands(path: Path) -> dict[str, list[str]]:
    ours = [script("modelseal"), "scan", "--format", "json", str(path)]
    bin_dir = VENV / "bin"
    return {
        "modelseal": ours,
        "picklescan": [str(bin_dir / "picklescan"), "--path", str(path)],
        "modelscan": [str(bin_dir / "modelscan"), "-p", str(path)],
        "fickling": [str(bin_dir / "fickling"), "--check-safety", str(path)],
    }


def measure(argv: list[str], timeout: float) -> tuple[int, float, int]:
    """(exit code, wall seconds, peak RSS bytes) of one run, in the scanned file's directory
    (fickling writes safety_results.json into its working directory)."""
    try:
        out = subprocess.run(
            [sys.executable, "-c", _MAXRSS, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=Path(argv[-1]).parent,
        ).stdout.split()
    except subprocess.TimeoutExpired:
        return -9, timeout, 0
    return int(out[0]), float(out[1]), int(out[2]) * 1024


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="shrink files for a smoke run")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args(argv)
    ensure_peers()
    # Byte-compile modelseal as a wheel install does (the peers were compiled by pip); this
    # environment sets PYTHONDONTWRITEBYTECODE, so an editable install would recompile per run.
    import compileall

    import modelseal

    compileall.compile_dir(str(Path(modelseal.__file__).parent), quiet=1)
    results: dict[str, Any] = {"machine": machine_info(), "runs": args.runs, "cases": {}}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-scan-") as tmp:
        for name in args.cases.split(","):
            make, amount, target = CASES[name]
            # Conventional extensions: the peers choose their scanner by file name.
            path = Path(tmp) / f"{name}{'.pt' if name.startswith('torch') else '.pkl'}"
            make(path, max(1, int(amount * args.scale)))
            size = path.stat().st_size
            cmds = commands(path)
            samples: dict[str, list[tuple[int, float, int]]] = {k: [] for k in cmds}
            rounds, done = args.runs, 0
            while done < rounds:
                wait_for_quiet(timeout=60)
                for tool, cmd in cmds.items():
                    samples[tool].append(measure(cmd, args.timeout))
                done += 1
                if done == 1 and all(v[0][1] < 1.0 for v in samples.values()):
                    rounds = max(rounds, SHORT_RUNS)
            med = {t: statistics.median(s[1] for s in v) for t, v in samples.items()}
            rss = {t: max(s[2] for s in v) for t, v in samples.items()}
            codes = {t: sorted({s[0] for s in v}) for t, v in samples.items()}
            # A peer that failed or refused the file (exit not 0/1) is not a competitor here.
            peers = {t: med[t] for t in med if t != "modelseal" and set(codes[t]) <= {0, 1}}
            fastest = min(peers, key=lambda t: peers[t]) if peers else None
            ratio = peers[fastest] / med["modelseal"] if fastest else float("nan")
            ok = ratio >= (2.0 if name == "ops-10m" else 1.0)
            if name == "bytes-1g":
                ok = ok and rss["modelseal"] <= 0.10 * size
            results["cases"][name] = {
                "size": size,
                "runs": rounds,
                "target": target,
                "median_s": med,
                "peak_rss": rss,
                "exit_codes": codes,
                "fastest_peer": fastest,
                "ratio": ratio,
                "samples": samples,
            }
            row = [name, f"{size / MiB:.0f} MiB"]
            row += [
                f"{med[t]:.{2 if med[t] >= 1 else 3}f}s/{rss[t] / MiB:.0f}M"
                f"{'' if codes[t] in ([0], [1]) else '*'}"
                for t in cmds
            ]
            row += [f"{ratio:.2f}x vs {fastest}", target, verdict(ok)]
            rows.append(row)
            print(text_table(["case", "size", *cmds, "ratio", "target", ""], [row]), flush=True)
            path.unlink()
    headers = [
        "case",
        "size",
        "modelseal",
        "picklescan",
        "modelscan",
        "fickling",
        "peer/ours",
        "target",
        "",
    ]
    print("\n" + text_table(headers, rows))
    print("\n" + markdown_table(headers, rows))
    print("\n(* = exit code other than 0/1: the tool failed or refused the file)")
    write_results("bench_scan", json.loads(json.dumps(results, default=str)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
