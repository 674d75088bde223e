"""Receiving an upload's file over HTTP: the request body streams from the event loop to a
worker thread that hashes and stores it, never held whole in memory."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.to_thread
from fastapi import Request

from modelseal.errors import InputError, ModelsealError
from modelseal.operation import Operation, runner
from modelseal.registry.core import RegistrySession

HANDOFF = 1 << 20  # bytes handed to the hashing thread at a time
_Item = list[bytes] | BaseException | None


async def receive_upload(
    session: RegistrySession, operation: Operation[Any], request: Request
) -> Any:
    """Run ``operation`` (an upload of one file) on the request's body as it arrives."""
    handoff: queue.Queue[_Item] = queue.Queue(maxsize=8)
    stop = threading.Event()
    path = str(getattr(operation, "path", ""))

    def chunks() -> Iterator[bytes]:
        while True:
            item = handoff.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            # Joined here, not on the event loop: the loop goes back to the socket sooner.
            yield item[0] if len(item) == 1 else b"".join(item)

    def work() -> Any:
        try:
            return runner(operation)(session, chunks())
        finally:
            stop.set()

    async def feed() -> None:
        pieces: list[bytes] = []
        held = 0
        try:
            async for piece in request.stream():
                if stop.is_set():
                    return
                pieces.append(piece)
                held += len(piece)
                if held >= HANDOFF:
                    await _hand_off(handoff, pieces, stop)
                    pieces = []
                    held = 0
            if pieces:
                await _hand_off(handoff, pieces, stop)
            await _hand_off(handoff, None, stop)
        except BaseException as exc:  # client went away: fail the hashing thread
            interrupted = InputError(f"upload of {path!r} was interrupted", hint="push again")
            _put(handoff, interrupted, stop)
            if not isinstance(exc, Exception):
                raise

    result: list[Any] = []

    async def run_work() -> None:
        result.append(await anyio.to_thread.run_sync(work))

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(run_work)
            await feed()
    except BaseExceptionGroup as group_error:
        raise _first_error(group_error) from None
    return result[0]


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to report from a task group: a modelseal error if there is one."""
    flat: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        current = stack.pop()
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        else:
            flat.append(current)
    for error in flat:
        if isinstance(error, ModelsealError):
            return error
    return flat[0] if flat else group


async def _hand_off(handoff: queue.Queue[_Item], item: list[bytes] | None,
                    stop: threading.Event) -> None:  # fmt: skip
    """Give ``item`` to the hashing thread: at once while its queue has room (the event loop
    goes straight back to reading the socket), else from a worker thread that waits."""
    try:
        handoff.put_nowait(item)
    except queue.Full:
        await anyio.to_thread.run_sync(_put, handoff, item, stop)


def _put(handoff: queue.Queue[_Item], item: _Item, stop: threading.Event) -> None:
    """Block until the hashing thread takes ``item``, unless it has already finished."""
    while not stop.is_set():
        try:
            handoff.put(item, timeout=0.2)
            return
        except queue.Full:
            continue
