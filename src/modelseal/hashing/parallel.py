"""Run hashing tasks on a few threads, results in task order.

A small stand-in for ``ThreadPoolExecutor.map``: importing :mod:`concurrent.futures` also imports
:mod:`logging` and friends (about 4 ms of CPU), which every ``modelseal sign`` would pay before
its first hashed byte. The workers take the next task from a shared index, so the largest-first
order of the plan keeps every core busy until the end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(
    fn: Callable[[T], R], items: Sequence[T], workers: int, name: str = "modelseal-hash"
) -> list[R]:
    """``[fn(item) for item in items]`` on up to ``workers`` threads.

    If a call raises, no further items are started, the running ones finish, and the exception
    of the first failing item (in item order) is raised here, as ``ThreadPoolExecutor.map``
    would raise it.
    """
    count = len(items)
    workers = max(1, min(workers, count))
    if workers == 1:
        return [fn(item) for item in items]
    results: list[R | None] = [None] * count
    errors: dict[int, BaseException] = {}
    lock = threading.Lock()
    next_index = [0]

    def work() -> None:
        while True:
            with lock:
                index = next_index[0]
                if index >= count or errors:
                    return
                next_index[0] = index + 1
            try:
                results[index] = fn(items[index])
            except BaseException as exc:  # re-raised in the calling thread
                with lock:
                    errors[index] = exc
                return

    threads = [threading.Thread(target=work, name=f"{name}-{i}") for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[min(errors)]
    return results  # type: ignore[return-value]  # every slot was filled
