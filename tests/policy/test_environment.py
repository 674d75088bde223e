"""Environments: captured from the interpreter or a lock file, compared line by line."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelseal.errors import InputError
from modelseal.policy.document import EnvironmentPolicy
from modelseal.policy.environment import Environment, Package, capture, compare

Run = Callable[..., tuple[int, str, str]]
H1, H2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def _env(source: str = "installed", python: str = "3.11.7", **packages: Package) -> Environment:
    return Environment(python=python, source=source, packages=packages)


def test_the_running_interpreter_is_captured_with_hashes() -> None:
    here = capture()
    assert here.source == "installed" and here.python.count(".") == 2
    assert here.packages["click"].version
    assert here.packages["click"].hashes[0].startswith("sha256:")
    assert "pyyaml" in here.packages  # names are compared as PEP 503 normalises them


def test_a_lock_file_gives_pins_and_hashes(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text(f"""# generated
Torch==2.13.0 \\
    --hash={H1} \\
    --hash={H2}
numpy[extra]==2.1.0 --hash={H1}  # a comment
requests>=2  # not a pin: ignored
""")
    env = capture(lock)
    assert env.source == "lock:requirements.lock"
    assert env.packages["torch"] == Package(version="2.13.0", hashes=[H1, H2])
    assert env.packages["numpy"] == Package(version="2.1.0", hashes=[H1])
    assert "requests" not in env.packages


@pytest.mark.parametrize(
    ("content", "message"),
    [("requests>=2\n", "pins no package"), (b"\xff\xfe", "cannot read lock file")],
)
def test_an_unusable_lock_file_is_one_line(
    tmp_path: Path, content: str | bytes, message: str
) -> None:
    lock = tmp_path / "lock.txt"
    lock.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(InputError, match=message):
        capture(lock)


def test_a_fifo_as_lock_file_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "lock.fifo"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="cannot read lock file"):
        capture(fifo)


def test_hashes_are_compared_only_like_with_like() -> None:
    policy = EnvironmentPolicy(packages=["torch"], hashes=True)
    same = compare(policy, _env(torch=Package(version="1", hashes=[H1])),
                   _env(torch=Package(version="1", hashes=[H1])))  # fmt: skip
    assert same.passed
    other = compare(policy, _env(torch=Package(version="1", hashes=[H1])),
                    _env(torch=Package(version="1", hashes=[H2])))  # fmt: skip
    assert other.lines == ["environment: torch 1: different files (hashes differ)"]
    none = compare(policy, _env(torch=Package(version="1")),
                   _env(torch=Package(version="1", hashes=[H2])))  # fmt: skip
    assert none.lines == ["environment: torch has no recorded hash in the training environment"]
    mixed = compare(policy, _env("lock:req.txt", torch=Package(version="1", hashes=[H1])),
                    _env(torch=Package(version="1", hashes=[H1])))  # fmt: skip
    assert not mixed.passed and "hashes of the same kind" in mixed.lines[0]
    # Without hashes: only versions count.
    assert compare(EnvironmentPolicy(packages=["torch"]), _env("lock:r", torch=Package(
        version="1", hashes=[H1])), _env(torch=Package(version="1"))).passed  # fmt: skip


versions = st.tuples(*(st.integers(0, 20) for _ in range(3))).map(lambda t: ".".join(map(str, t)))


@given(versions, versions, st.sampled_from(["exact", "minor", "major", "any"]))
def test_python_versions_match_to_the_level_the_policy_asks(a: str, b: str, level: str) -> None:
    parts = {"exact": 3, "minor": 2, "major": 1, "any": 0}[level]
    result = compare(EnvironmentPolicy(python=level), _env(python=a), _env(python=b))
    assert result.passed == (a.split(".")[:parts] == b.split(".")[:parts])
    if not result.passed:
        assert result.lines == [
            f"environment: Python {a} at training, {b} here "
            f"(the policy requires the {level} version to match)"
        ]


def test_env_capture_writes_a_file_and_refuses_to_overwrite(run_cli: Run, tmp_path: Path) -> None:
    out = tmp_path / "env.json"
    code, text, _ = run_cli("env", "capture", "--output", out)
    assert code == 0 and text.startswith("wrote ") and out.exists()
    code, _, err = run_cli("env", "capture", "--output", out)
    assert code == 2 and "exists" in err and len(err.strip().splitlines()) == 1
    assert run_cli("env", "capture", "--output", out, "--force")[0] == 0
    code, _, err = run_cli("env", "capture", "--lock", tmp_path / "missing.txt")
    assert code == 2 and "cannot read lock file" in err
