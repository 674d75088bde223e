"""ordered_map: results in item order on several threads; the first failure is raised."""

from __future__ import annotations

import sys
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelseal.hashing.parallel import ordered_map


@settings(max_examples=50, deadline=None)
@given(items=st.lists(st.integers(), max_size=40), workers=st.integers(1, 6))
def test_results_come_back_in_item_order(items: list[int], workers: int) -> None:
    assert ordered_map(lambda x: x * 3 + 1, items, workers) == [x * 3 + 1 for x in items]


def test_work_runs_on_several_threads() -> None:
    barrier = threading.Barrier(2, timeout=30)  # both workers must be inside fn at once

    def fn(item: int) -> str:
        barrier.wait()
        return threading.current_thread().name

    names = ordered_map(fn, [0, 1], workers=2, name="t")
    assert sorted(names) == ["t-0", "t-1"]


def test_the_first_failing_item_in_order_is_raised_and_no_new_item_starts() -> None:
    started: list[int] = []
    lock = threading.Lock()
    both_failing = threading.Barrier(2, timeout=30)

    def fn(item: int) -> int:
        with lock:
            started.append(item)
        if item in (0, 1):
            both_failing.wait()  # items 0 and 1 fail together, on two threads
            raise ValueError(f"item {item}")
        return item

    with pytest.raises(ValueError, match="item 0"):
        ordered_map(fn, list(range(10)), workers=2)
    assert sorted(started) == [0, 1]


def test_one_worker_runs_inline() -> None:
    assert (
        ordered_map(lambda _: threading.current_thread().name, [1, 2], 1)
        == [threading.current_thread().name] * 2
    )


def test_no_concurrent_futures_on_the_hashing_path() -> None:
    """The engine does not pull in concurrent.futures (and logging) at import."""
    import subprocess

    code = (
        "import sys, modelseal.hashing.engine, modelseal.hashing.memory;"
        "print('concurrent.futures' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
