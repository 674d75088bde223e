"""Decompression bombs in containers: decoded as they stream, stopped by the budget (size,
expansion ratio, decoder memory, time), reported as a bomb finding with the rest listed as not
analysed (a time budget alone: unscannable); never clean and never
materialised. Peak memory is asserted in a child process; time is not asserted anywhere (only a
generous timeout guards against a hang)."""

from __future__ import annotations

import json
import lzma
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from modelseal.scanning.engine import Options, scan_bytes
from modelseal.scanning.report import FileReport
from tests.scanning import container_samples as cs

MiB = 1 << 20


def _scan(data: bytes, **options: float) -> FileReport:
    return scan_bytes(data, Options(**options))  # type: ignore[arg-type]


def _big_dict_lzma() -> bytes:
    data = bytearray(lzma.compress(b"weights" * 100, format=lzma.FORMAT_ALONE))
    data[1:5] = (0xF0000000).to_bytes(4, "little")  # a 3.75 GiB dictionary, size unknown
    return bytes(data)


BOMBS: dict[str, Callable[[], bytes]] = {
    "bz2-multistream": cs.bz2_multistream_bomb,
    "bz2-single": lambda: cs.bz(bytes(40 * MiB)),
    "gzip-members": lambda: cs.gz(bytes(8 * MiB)) * 40,
    "xz-streams": lambda: cs.xz(bytes(8 * MiB)) * 40,
    "zstd-frames": lambda: cs.zst(bytes(8 * MiB)) * 40,
    "zip-deflate-member": lambda: cs.zip_of(
        {"model.pkl": bytes(64 * MiB)}, method=zipfile.ZIP_DEFLATED
    ),
    "torch-storage-deflated": lambda: cs.torch_zip(
        cs.BENIGN, {"0": bytes(64 * MiB)}, method=zipfile.ZIP_DEFLATED
    ),
    "7z": lambda: cs.sevenzip({"model.pkl": bytes(64 * MiB)}),
    "tar.bz2": lambda: cs.tar({"model.pkl": bytes(64 * MiB)}, mode="w:bz2"),
    "lzma-dictionary": _big_dict_lzma,
}


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_bomb_is_reported_and_unscannable(kind: str) -> None:
    report = _scan(BOMBS[kind]())
    # A bomb is a finding (exit 1) and the rest of the file is listed as not analysed.
    assert report.status == "unsafe", report.to_dict()
    assert report.unscannable, report.to_dict()
    assert any(f.rule == "archive.bomb" for f in report.findings), report.to_dict()


def test_many_members_each_under_the_floor_add_up() -> None:
    """No single member passes the per-stream floor; the file as a whole expands 1000:1."""
    members = {f"part{i}.bin": bytes(12 * MiB) for i in range(4)}
    report = _scan(cs.zip_of(members, method=zipfile.ZIP_DEFLATED))
    assert any(f.rule == "archive.bomb" for f in report.findings), report.to_dict()
    assert "the file's archives" in " ".join(u.reason for u in report.unscannable)


def test_expansion_under_the_ratio_floor_is_not_a_bomb() -> None:
    report = _scan(cs.gz(cs.BENIGN + bytes(4 * MiB)))
    assert not any(f.rule == "archive.bomb" for f in report.findings), report.to_dict()


def test_total_size_budget_is_a_bomb() -> None:
    report = _scan(cs.gz(cs.BENIGN * 100), max_expanded=1000)
    assert any(f.rule == "archive.bomb" for f in report.findings)
    assert report.status == "unsafe" and report.unscannable


def test_time_budget_is_unscannable_not_a_bomb() -> None:
    report = _scan(cs.gz(cs.BENIGN), max_seconds=1e-9)
    assert report.status == "unscannable"
    assert not report.findings
    assert any("time budget" in u.reason for u in report.unscannable)


def test_a_bomb_after_the_pickle_still_counts() -> None:
    """The pickle stops early, the stream goes on: the rest is decoded and charged too."""
    report = _scan(cs.gz(cs.BENIGN) + cs.gz(bytes(48 * MiB)))
    assert any(f.rule == "archive.bomb" for f in report.findings), report.to_dict()


_SCAN = """
import json, sys
from modelseal.scanning.engine import Options, scan_paths
report = scan_paths(sys.argv[1:], Options())
print(json.dumps({
    "status": [f.status for f in report.files],
    "bombs": [any(x.rule == "archive.bomb" for x in f.findings) for f in report.files],
}))
"""
# The scan runs as a grandchild: Linux keeps a process's peak RSS across exec, so a child forked
# from this (large) test process would report the parent's memory; a small launcher's children
# (RUSAGE_CHILDREN) start clean.
_LAUNCHER = """
import json, resource, subprocess, sys
out = subprocess.run(sys.argv[1:], capture_output=True, text=True, check=True).stdout
result = json.loads(out)
result["rss"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps(result))
"""


@pytest.mark.slow
def test_peak_memory_of_scanning_bombs_stays_small(tmp_path: Path) -> None:
    """Four bombs in a fresh process: the peak RSS stays below what any one of them expands
    to (192 MiB each; the bz2 one to 6 GB)."""
    big = bytes(192 * MiB)  # each bomb expands past the memory limit asserted below
    bombs = {
        "bz2": cs.bz2_multistream_bomb(),
        "zip": cs.zip_of({"model.pkl": big}, method=zipfile.ZIP_DEFLATED),
        "storage": cs.torch_zip(cs.BENIGN, {"0": big}, method=zipfile.ZIP_DEFLATED),
        "7z": cs.sevenzip({"model.pkl": big}),
    }
    del big
    paths = []
    for kind, data in bombs.items():
        path = tmp_path / kind
        path.write_bytes(data)
        paths.append(str(path))
    done = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, sys.executable, "-c", _SCAN, *paths],
        capture_output=True,
        text=True,
        timeout=600,  # hang guard only
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        check=True,
    )
    result = json.loads(done.stdout)
    assert result["status"] == ["unsafe"] * 4
    assert all(result["bombs"])
    assert result["rss"] < 128 * MiB, result["rss"] / MiB
