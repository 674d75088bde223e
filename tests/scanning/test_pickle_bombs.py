"""Expansion bombs inside pickles are findings, found with bounded memory and without hanging.

Each bomb is built at run time in a child process, which scans it and reports its peak RSS
(``VmHWM`` on Linux, else ``resource.getrusage(...).ru_maxrss``): the scan must stop at its
budget, not materialise what the real unpickler would (a 15 MB pickle of list opcodes costs it
about 2 GB). The subprocess timeout only guards against a hang; nothing here asserts on time.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from modelseal.scanning.engine import Options, scan_bytes
from modelseal.scanning.unpickler.values import Limits

_SRC = str(Path(__file__).resolve().parents[2] / "src")
_MB = 15_000_000


def _laughs(levels: int, fan: int = 10) -> bytes:
    """Each level is a list of ``fan`` references to the level below (memo GETs)."""
    out = b"\x80\x04]\x94"
    for i in range(levels):
        out += b"(" + (b"j" + struct.pack("<I", i)) * fan + b"l\x94"
    return out + b"."


def _deep(levels: int) -> bytes:
    """L(k+1) = [L(k)] with a constant stack: EMPTY_LIST, LONG_BINGET k, APPEND, MEMOIZE, POP."""
    out = b"\x80\x04]\x94"
    for i in range(levels):
        out += b"]j" + struct.pack("<I", i) + b"a\x94" + b"0"
    return out + b"j" + struct.pack("<I", levels) + b"."


# name -> Python expression (evaluated in the child) building the bomb
BOMBS = {
    "empty-lists": f"b'\\x80\\x04' + b']' * {_MB} + b'.'",
    "list-of-lists": f"b'\\x80\\x04(' + b']' * {_MB} + b'l.'",
    "memoized-lists": f"b'\\x80\\x04' + b']\\x94' * {_MB // 2} + b'.'",
    "empty-dicts": f"b'\\x80\\x04' + b'}}' * {_MB} + b'.'",
    "empty-sets": f"b'\\x80\\x04' + b'\\x8f' * {_MB} + b'.'",
    "appended-lists": f"b'\\x80\\x04]' + b']a' * {_MB // 2} + b'.'",
    "protocol0-lists": f"b'(l' * {_MB // 2} + b'.'",
}

_CHILD = """
import json, resource, sys
sys.path.insert(0, {src!r})
from modelseal.scanning.engine import Options, scan_bytes


def peak_mb():
    # Linux keeps ru_maxrss across execve (the forking pytest process's peak would show):
    # VmHWM is this program's own peak. Elsewhere ru_maxrss is the child's own.
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


data = {expr}
report = scan_bytes(data, Options())
print(json.dumps({{
    "status": report.status,
    "rules": sorted({{f.rule for f in report.findings}}),
    "reasons": [u.reason for u in report.unscannable],
    "rss_mb": peak_mb(),
    "data_mb": len(data) // 1_000_000,
}}))
"""


def _scan_in_child(expr: str) -> dict[str, object]:
    code = _CHILD.format(src=_SRC, expr=expr)
    env = {**os.environ, "PYTHONPATH": _SRC}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BOMBS))
def test_list_and_memo_bombs_are_findings_in_bounded_memory(name: str) -> None:
    result = _scan_in_child(BOMBS[name])
    assert result["status"] == "unsafe", result
    assert "pickle.limit" in result["rules"]  # type: ignore[operator]
    assert any("expansion bomb" in r for r in result["reasons"]), result  # type: ignore[attr-defined]
    # The real unpickler needs 1-2 GB here; the scan holds the 15 MB input and little more.
    assert int(result["rss_mb"]) < 250, result  # type: ignore[call-overload]


def test_plain_data_of_the_same_size_is_not_a_bomb() -> None:
    # 15 MB of numbers, strings and nested dicts: under the ratio, clean.
    value = {
        "floats": [float(i) for i in range(600_000)],
        "ints": list(range(600_000)),
        "names": [f"layer{i}.weight" for i in range(100_000)],
        "nested": [{"k": [i, (i, i)], "s": {i}} for i in range(50_000)],
    }
    for protocol in (0, 2, 4):
        report = scan_bytes(pickle.dumps(value, protocol=protocol), Options())
        assert report.status == "clean", (protocol, report.to_dict()["files"][0]["unscannable"])


def test_shared_reference_expansion_is_a_finding() -> None:
    report = scan_bytes(_laughs(12), Options())
    assert report.status == "unsafe"
    assert any("billion-laughs" in u.reason for u in report.unscannable)
    # Ten levels of ten references expand to 10**10 containers; three levels do not matter.
    assert scan_bytes(_laughs(3), Options()).status == "clean"


def test_nesting_beyond_the_recursion_limit_is_a_finding() -> None:
    report = scan_bytes(_deep(5000), Options())
    assert report.status == "unsafe"
    assert any("recursion bomb" in u.reason for u in report.unscannable)
    # What pickle.dumps can write (it recurses too) stays clean.
    nested: list[object] = []
    for _ in range(200):
        nested = [nested]
    assert scan_bytes(pickle.dumps(nested, protocol=4), Options()).status == "clean"
    assert scan_bytes(_deep(200), Options()).status == "clean"


def test_huge_memo_index_is_an_expansion_bomb() -> None:
    report = scan_bytes(b"\x80\x04Nr\xff\xff\xff\x7f.", Options())
    assert {"pickle.limit", "pickle.memo-index"} <= {f.rule for f in report.findings}


def test_a_self_referencing_list_is_not_a_bomb() -> None:
    cyclic: list[object] = []
    for _ in range(100):
        cyclic.append(cyclic)
    assert scan_bytes(pickle.dumps(cyclic, protocol=4), Options()).status == "clean"


def test_the_budget_is_configurable() -> None:
    data = b"\x80\x04" + b"]" * 300_000 + b"."
    assert scan_bytes(data, Options()).status == "clean"  # 26 MB estimated: under the budget
    tight = Options(limits=Limits(max_alloc=1 << 20))
    assert scan_bytes(data, tight).status == "unsafe"
