"""The floor for any Python signing command: a bare program that only hashes one file with
SHA-256 over 256 MiB shards on every core (pread into a 512 KiB buffer per thread, as modelseal
does), nothing imported but the standard library. Compares its whole-process wall time with the
2-core limit of bench_seal (single-core hashlib rate x cores).

    .venv/bin/python bench/hash_floor.py FILE [--runs 5]
"""

from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    size = args.file.stat().st_size
    c.warm_cache(args.file)
    limit = c.sha256_core_rate() * c.cores()
    times = []
    for _ in range(args.runs):
        c.wait_for_quiet(timeout=30)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", PROGRAM, str(args.file)], check=True)
        times.append(time.perf_counter() - start)
    best = size / limit
    median = statistics.median(times)
    print(f"file {size / c.GiB:.2f} GiB; limit {limit / c.GiB:.2f} GiB/s = {best:.3f} s")
    print("bare Python hashing, whole process: " + ", ".join(f"{t:.3f}" for t in times) + " s")
    share, top = best / median, best / min(times)
    print(f"median {median:.3f} s = {share:.1%} of the limit (best run {top:.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
