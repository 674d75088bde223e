"""The floor for any Python signing command: a bare program that only hashes one file with
SHA-256 over 256 MiB shards on every core (pread into a 512 KiB buffer per thread, as modelseal
does), nothing imported but the standard library. Compares its whole-process wall time with the
2-core limit of bench_seal (single-core hashlib rate x cores).

    .venv/bin/python bench/hash_floor.py [FILE] [--runs 5]

Also times ``modelseal sign --shard-size 256MiB`` of the same file, alternating with the bare
program, and prints the ratio (target: our time within 1/0.95 of the floor). Wall time on a
shared 2-core machine is noisy, so it also prints each side's CPU seconds (user + system of the
whole process): their difference is the work ``modelseal sign`` does beyond hashing (interpreter
start-up is the same on both sides), which competes with the hashing for the cores.
Before timing it byte-compiles the modelseal package, as an installed package is: where
PYTHONDONTWRITEBYTECODE is set, every run would otherwise compile ~20 modules (~40 ms of CPU).
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

# The measured program: standard library only, so its start-up is the interpreter's alone.
PROGRAM = """
import hashlib, os, sys, threading
path = sys.argv[1]
fd = os.open(path, os.O_RDONLY)
size = os.fstat(fd).st_size
shard = 256 << 20
todo = list(range(0, size, shard))
lock = threading.Lock()
def work():
    view = memoryview(bytearray(1 << 19))
    while True:
        with lock:
            if not todo:
                return
            start = todo.pop()
        h, off, end = hashlib.sha256(), start, min(size, start + shard)
        while off < end:
            n = os.preadv(fd, [view[: min(len(view), end - off)]], off)
            h.update(view[:n])
            off += n
threads = [threading.Thread(target=work) for _ in range(os.cpu_count() or 1)]
for t in threads: t.start()
for t in threads: t.join()
"""

# What the ``modelseal`` console script runs (pyproject's [project.scripts]); spelled out so an
# environment installed before the entry point moved still measures the current one.
CONSOLE_SCRIPT = "import sys; from modelseal.cli.entry import main; sys.exit(main())"


def main(argv: list[str] | None = None) -> int:
    c.exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, nargs="?", help="default: a 2 GiB scratch file")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, default=2048, help="scratch file size in MiB")
    args = parser.parse_args(argv)
    if args.file is not None:
        return _measure(args.file, args.runs, args.file.parent)
    with c.scratch_dir("hash-floor-", need_bytes=(args.size + 64) * c.MiB) as tmp:
        path = tmp / "model.bin"
        c.write_file(path, args.size * c.MiB, c.random_block())
        return _measure(path, args.runs, tmp)


def _measure(path: Path, runs: int, tmp: Path) -> int:
    """Time the bare program and ``modelseal sign`` alternately, so both see the same machine."""
    size = path.stat().st_size
    key, sig = tmp / "floor-key.pem", tmp / "floor.sig"
    subprocess.run(
        [c.script("modelseal"), "keygen", "--private-key", str(key),
         "--public-key", str(tmp / "floor-key.pub"), "--no-passphrase", "--force"],
        check=True, capture_output=True,
    )  # fmt: skip
    sign = [sys.executable, "-c", CONSOLE_SCRIPT, "sign", str(path), "--private-key", str(key),
            "--signature", str(sig), "--shard-size", "256MiB", "--force"]  # fmt: skip
    _byte_compile("modelseal")
    c.warm_cache(path)
    limit = c.sha256_core_rate() * c.cores()
    floor: list[float] = []
    ours: list[float] = []
    floor_cpu: list[float] = []
    our_cpu: list[float] = []
    for _ in range(runs):
        c.wait_for_quiet(timeout=30)
        _timed([sys.executable, "-c", PROGRAM, str(path)], floor, floor_cpu)
        _timed(sign, ours, our_cpu)
    best = size / limit
    print(f"file {size / c.GiB:.2f} GiB; limit {limit / c.GiB:.2f} GiB/s = {best:.3f} s")
    for label, times in (("bare Python hashing", floor), ("modelseal sign", ours)):
        median = statistics.median(times)
        print(f"{label}, whole process: " + ", ".join(f"{t:.3f}" for t in times) + " s")
        print(f"  median {median:.3f} s = {best / median:.1%} of the limit")
    ratio = statistics.median(floor) / statistics.median(ours)
    print(f"modelseal sign / bare program (floor time / our time): {ratio:.3f}x (target >= 0.95x)")
    extra = statistics.median(b - a for a, b in zip(floor_cpu, our_cpu, strict=True))
    print(
        f"CPU seconds (user+sys), median: bare {statistics.median(floor_cpu):.3f}, "
        f"modelseal sign {statistics.median(our_cpu):.3f}; extra work {extra * 1e3:.0f} ms"
    )
    return 0


def _timed(command: list[str], walls: list[float], cpus: list[float]) -> None:
    """Run ``command``; append its wall time and its CPU time (user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    walls.append(time.perf_counter() - start)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)


def _byte_compile(package: str) -> None:
    """Write the bytecode cache of ``package`` (where the measured command imports it from)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return
    for folder in spec.submodule_search_locations:
        subprocess.run([sys.executable, "-m", "compileall", "-q", folder], check=True,
                       capture_output=True)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
