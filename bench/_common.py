"""Shared helpers for modelseal's benchmarks: peer set-up, data, timing, machine facts, tables.

Every benchmark (``bench/bench_*.py``) runs as its own process, times whole programs as
subprocesses (wall time including interpreter start-up), reports medians and writes its
results to ``bench/out/<name>.json``. Nothing here asserts on a time: benchmarks report
PASS/MISS against their targets and leave the judgement to the reader.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import importlib.metadata
import json
import mmap
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
BIN = Path(sys.executable).parent  # the venv's console scripts sit next to its python
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


class BenchError(RuntimeError):
    """A benchmark cannot go on (a command failed, the peer is missing, no disk space)."""


# --------------------------------------------------------------------------- peer set-up


def ensure_requirements(required: Mapping[str, str | None], *, extra: str = "bench") -> None:
    """Make sure each distribution is installed (at the pinned version, if one is given).

    When one is missing or at another version, install the project's ``extra`` into this
    interpreter's environment with pip (``pip install -e ".[extra]"``), as ``make bench`` does,
    so a benchmark never depends on something installed by hand.
    """
    if not _missing(required):
        return
    print(f"installing the {extra!r} extra: {', '.join(_missing(required))}", flush=True)
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "-e", f"{REPO}[{extra}]"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"pip install of [{extra}] failed: {_last_line(done.stderr)}")
    still = _missing(required)
    if still:
        raise BenchError(f"still missing after installing [{extra}]: {', '.join(still)}")


def _missing(required: Mapping[str, str | None]) -> list[str]:
    missing = []
    for dist, pinned in required.items():
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            missing.append(dist)
            continue
        if pinned is not None and version != pinned:
            missing.append(f"{dist}=={pinned} (have {version})")
    return missing


def dist_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def script(name: str) -> str:
    """The path of a console script installed in this interpreter's environment."""
    path = BIN / name
    if not path.exists():
        raise BenchError(f"{name} is not installed in {BIN}")
    return str(path)


# ------------------------------------------------------------------------------- data


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so ``finally`` blocks (scratch clean-up) still run."""

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


@contextlib.contextmanager
def scratch_dir(prefix: str, *, need_bytes: int) -> Iterator[Path]:
    """A temporary directory under /tmp, checked for space first and always deleted (call
    :func:`exit_on_sigterm` first so a killed benchmark cleans up too)."""
    base = Path(tempfile.gettempdir())
    free = shutil.disk_usage(base).free
    if free < need_bytes + 2 * GiB:
        raise BenchError(f"{base} has {free / GiB:.1f} GiB free; need {need_bytes / GiB:.1f} GiB")
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def random_block(size: int = 64 * MiB, seed: int = 20240601) -> bytes:
    """Incompressible bytes, fast: numpy's generator when present, else os.urandom."""
    try:
        import numpy as np
    except ImportError:
        return os.urandom(size)
    return np.random.default_rng(seed).bytes(size)


def write_file(path: Path, size: int, block: bytes) -> None:
    """Write ``size`` bytes by repeating ``block``; the first 8 bytes of every block carry a
    counter so no two blocks are equal (irrelevant to hashing speed, but keeps data honest)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    chunk = bytearray(block)
    with path.open("wb") as out:
        written, n = 0, 0
        while written < size:
            chunk[:8] = n.to_bytes(8, "little")
            take = min(len(chunk), size - written)
            out.write(memoryview(chunk)[:take])
            written += take
            n += 1


def make_model(root: Path, files: Mapping[str, int], block: bytes) -> int:
    """Create a model directory with the given relative file names and sizes; return its size."""
    for name, size in files.items():
        write_file(root / name, size, block)
    return sum(files.values())


def warm_cache(path: Path) -> int:
    """Read every file under ``path`` once (untimed) so the page cache is warm; return bytes."""
    total = 0
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        with file.open("rb", buffering=0) as src:
            while chunk := src.read(8 * MiB):
                total += len(chunk)
    return total


def back_memory(size: int) -> None:
    """Touch ``size`` bytes of fresh memory and free them again, just before a timed run.

    On a virtual machine that hands idle free memory back to its host (virtio-balloon free page
    reporting, as here), the first program to touch that memory afterwards waits for the host to
    back it again: a 2 GiB decrypt into tmpfs took 0.91 s right after this and 3.3-3.9 s after
    3 idle seconds, and the idle checks between runs are exactly such pauses. Backing the memory
    first gives every contender the machine as it is while in use; it costs nothing timed.
    """
    if size <= 0:
        return
    block = mmap.mmap(-1, size)
    with contextlib.suppress(OSError, AttributeError):
        block.madvise(mmap.MADV_HUGEPAGE)  # back whole 2 MiB pages: large allocations use them
    for offset in range(0, size, mmap.PAGESIZE):
        block[offset] = 1
    block.close()


def settle() -> None:
    """Flush dirty pages to disk so write-back does not run during timed commands."""
    os.sync()


# ----------------------------------------------------------------------------- timing


@dataclasses.dataclass
class Series:
    """Wall times of one command over several runs."""

    label: str
    argv: list[str]
    # Untimed, before every run (e.g. remove the previous run's output so each run writes anew).
    prepare: Callable[[], None] | None = None
    samples: list[float] = dataclasses.field(default_factory=list)
    cpu_samples: list[float] = dataclasses.field(default_factory=list)  # user + system, s

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu_samples) if self.cpu_samples else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "argv": self.argv,
            "samples_s": [round(s, 4) for s in self.samples],
            "median_s": round(self.median, 4),
            "min_s": round(min(self.samples), 4),
            "cpu_samples_s": [round(s, 4) for s in self.cpu_samples],
            "cpu_median_s": round(self.cpu_median, 4),
        }


def run_once(argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> tuple[float, float]:
    """Run a command to completion; return its wall time and CPU time (user + system, all
    threads); raise if it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(list(argv), capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        detail = _last_line(done.stderr) or _last_line(done.stdout)
        raise BenchError(f"{Path(argv[0]).name} exited {done.returncode}: {detail}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def time_rounds(
    commands: Sequence[Series],
    *,
    runs: int,
    warmup: int = 0,
    env: Mapping[str, str] | None = None,
    quiet_timeout: float = 20.0,
    memory: int = 0,
) -> list[Series]:
    """Time each command ``runs`` times, interleaved round by round so slow drifts in machine
    load hit every command alike. Commands run in the given order within a round (so a
    verify can follow the sign that wrote its bundle). ``warmup`` untimed rounds go first.
    Each round waits (up to ``quiet_timeout`` s; 0 to skip) for other work to calm down; with
    ``memory``, that many bytes are backed (:func:`back_memory`) before every timed run."""
    for _ in range(warmup):
        for series in commands:
            if series.prepare is not None:
                series.prepare()
            run_once(series.argv, env=env)
    for _ in range(runs):
        if quiet_timeout > 0:
            wait_for_quiet(timeout=quiet_timeout)
        for series in commands:
            if series.prepare is not None:
                series.prepare()
            back_memory(memory)
            wall, cpu = run_once(series.argv, env=env)
            series.samples.append(wall)
            series.cpu_samples.append(cpu)
    return list(commands)


def interleaved_medians(
    fns: Mapping[str, Callable[[], Any]], runs: int, memory: int = 0
) -> dict[str, float]:
    """Median time of each in-process function over ``runs`` rounds; each round runs every
    function once, so a change in machine load hits all of them alike. Every call waits (up to
    30 s) for other work to calm down, and ``memory`` bytes (say, what a loader allocates) are
    backed (:func:`back_memory`) before it."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            wait_for_quiet(timeout=30)
            back_memory(memory)
            start = time.perf_counter()
            result = fn()
            samples[name].append(time.perf_counter() - start)
            del result
    return {name: statistics.median(values) for name, values in samples.items()}


def sha256_core_rate(*, buffer_size: int = 64 * MiB, repeats: int = 4, runs: int = 5) -> float:
    """Single-core hashlib SHA-256 throughput (bytes/s) on an in-memory buffer: the median of
    ``runs`` passes over ``repeats`` x ``buffer_size`` bytes."""
    buf = random_block(buffer_size, seed=7)
    view = memoryview(buf)
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        hasher = hashlib.sha256()
        for _ in range(repeats):
            hasher.update(view)
        rates.append(buffer_size * repeats / (time.perf_counter() - start))
    return statistics.median(rates)


def cores() -> int:
    """Cores this process may use (affinity-aware), falling back to os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# ----------------------------------------------------------------------------- machine


def machine_info() -> dict[str, Any]:
    """Facts that make a result reproducible: CPU, cores, RAM, OS, Python, load, date."""
    return {
        "date_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": cores(),
        "ram_gib": round(_mem_total() / GiB, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_busy(interval: float = 1.0) -> float:
    """Fraction (0..1) of all cores busy over ``interval`` seconds, from /proc/stat."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields), idle

    try:
        total0, idle0 = sample()
        time.sleep(interval)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    spent = total1 - total0
    return 1.0 - (idle1 - idle0) / spent if spent > 0 else 0.0


def wait_for_quiet(*, max_busy: float = 0.25, timeout: float = 120.0) -> dict[str, Any]:
    """Wait (up to ``timeout`` s) until other work leaves the cores mostly idle, since it skews
    timings on a small machine; return what was seen so results can say how quiet it was."""
    deadline = time.monotonic() + timeout
    busy = cpu_busy()
    while busy > max_busy and time.monotonic() < deadline:
        busy = cpu_busy(2.0)
    quiet = busy <= max_busy
    if not quiet:
        print(f"  warning: machine still {busy:.0%} busy after {timeout:.0f} s; timing anyway")
    return {"cpu_busy": round(busy, 2), "quiet": quiet, "loadavg": load_average()}


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Model name":
            return value.strip()
    return "unknown"


def _mem_total() -> int:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * KiB
    return 0


# ------------------------------------------------------------------------------ output


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def text_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain table with aligned columns, for the terminal."""
    cells = [[str(h) for h in headers], *([str(c) for c in row] for row in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table."""
    head = "| " + " | ".join(str(h) for h in headers) + " |"
    rule = "|" + "|".join("---" for _ in headers) + "|"
    body = ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join([head, rule, *body])


def write_results(name: str, results: Mapping[str, Any]) -> Path:
    """Write ``bench/out/<name>.json`` and return its path."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""
