"""Scanning a 1 GiB PyTorch zip: modelseal vs the peers and vs the floor, same file, same run.

Issue 15's target is >= 1.5x the fastest peer. On this file every tool is mostly interpreter
start-up, so the benchmark also times two floors, bare programs that do only what any scanner
of this file cannot avoid:

* ``floor-python``: start Python (with ``site``, as every console script does) and exit;
* ``floor-read``: start Python, read the zip's central directory with ``zipfile`` and read every
  member that is not a storage record (the pickle, version, byteorder) plus the first 4 KiB of
  each storage record, the reads modelseal's scan needs.

The table gives the median wall time of ``--runs`` rounds (interleaved, idle check before each
round) and peak RSS; the ratios are fastest peer / modelseal and modelseal / each floor.
Nothing asserts on time.

    .venv/bin/python bench/bench_scan_torch.py [--runs 15] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import json
import statistics
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
    text_table,
    wait_for_quiet,
    write_results,
)
from bench_scan import commands, make_torch_zip, measure  # noqa: E402
from scan_peers import ensure_peers  # noqa: E402

FLOOR_READ = (
    "import sys, zipfile\n"
    "z = zipfile.ZipFile(sys.argv[1])\n"
    "for i in z.infolist():\n"
    "    with z.open(i) as f:\n"
    "        f.read(4096 if '/data/' in i.filename else -1)\n"
)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--scale", type=float, default=1.0, help="shrink the file for a smoke run")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    ensure_peers()
    import compileall

    import modelseal

    compileall.compile_dir(str(Path(modelseal.__file__).parent), quiet=1)
    with tempfile.TemporaryDirectory(prefix="bench-scan-torch-") as tmp:
        path = Path(tmp) / "torch-1g.pt"
        make_torch_zip(path, max(4096, int(GiB * args.scale)))
        size = path.stat().st_size
        cmds = commands(path)
        cmds["floor-python"] = [sys.executable, "-c", "pass"]
        cmds["floor-read"] = [sys.executable, "-c", FLOOR_READ, str(path)]
        samples: dict[str, list[tuple[int, float, int]]] = {k: [] for k in cmds}
        quiet = []
        for _ in range(args.runs):
            quiet.append(wait_for_quiet(timeout=60))
            for tool, cmd in cmds.items():
                samples[tool].append(measure(cmd, args.timeout))
    med = {t: statistics.median(s[1] for s in v) for t, v in samples.items()}
    rss = {t: max(s[2] for s in v) for t, v in samples.items()}
    codes = {t: sorted({s[0] for s in v}) for t, v in samples.items()}
    peers = {
        t: med[t]
        for t in ("picklescan", "modelscan", "fickling")
        if set(codes[t]) <= {0, 1}  # a peer that failed or refused the file does not count
    }
    fastest = min(peers, key=lambda t: peers[t]) if peers else None
    ratio = peers[fastest] / med["modelseal"] if fastest else float("nan")
    rows = [
        [t, f"{med[t]:.3f} s", f"{rss[t] / MiB:.0f} MiB", ",".join(map(str, codes[t]))]
        for t in cmds
    ]
    print(text_table(["command", "median", "peak RSS", "exit"], rows))
    summary = [
        ["fastest counted peer / modelseal", f"{ratio:.2f}x ({fastest})", ">= 1.5x"],
        ["modelseal / floor-read", f"{med['modelseal'] / med['floor-read']:.2f}x", "-"],
        ["modelseal / floor-python", f"{med['modelseal'] / med['floor-python']:.2f}x", "-"],
        [
            "fastest counted peer / floor-read (the best ratio any scanner can reach)",
            f"{peers[fastest] / med['floor-read']:.2f}x" if fastest else "-",
            "-",
        ],
    ]
    print("\n" + text_table(["ratio", "measured", "target"], summary))
    print("\n" + markdown_table(["command", "median", "peak RSS", "exit"], rows))
    print("\n" + markdown_table(["ratio", "measured", "target"], summary))
    results: dict[str, Any] = {
        "machine": machine_info(),
        "runs": args.runs,
        "size": size,
        "median_s": med,
        "peak_rss": rss,
        "exit_codes": codes,
        "fastest_peer": fastest,
        "ratio": ratio,
        "quiet": quiet,
        "samples": samples,
    }
    write_results("bench_scan_torch", json.loads(json.dumps(results, default=str)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
