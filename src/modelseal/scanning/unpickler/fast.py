"""The quick pass: common data opcodes run inline, everything else through the exact handlers.

Numbers, short strings, memo traffic, marks, empty containers, small tuples and container
fills make up nearly every opcode of a model's pickle. :func:`run_fast` runs those straight off
the source buffer with local state; any opcode that is unusual (an import, a call, an error in
the making, a buffer edge) breaks out to its exact handler in ``Unpickler.table``. Its effect
on the machine is the exact walk's (``tests/scanning/test_fast_path.py`` proves it on
generated opcode streams); where it cannot be sure, it defers to the exact handler.
"""

from __future__ import annotations

import functools
import re
import struct
from collections.abc import Iterable
from itertools import islice, repeat
from typing import Any

from modelseal.scanning.unpickler.opcodes import Unpickler
from modelseal.scanning.unpickler.values import (
    ALLOC_CHECK,
    MAX_ITEMS,
    MAX_TEXT,
    NUMBER,
    LimitExceeded,
    Number,
    PickleError,
    Seq,
    Truncated,
)

_FAST_BATCH = frozenset({0x75, 0x65, 0x90})
_BATCH_KIND = {0x75: "dict", 0x65: "list", 0x90: "set"}
# Runs of one number-pushing opcode (big lists of ints/floats) are matched in C:
# opcode -> (regex for 16+ of them in a row, bytes per opcode).
_NUM_RUNS: dict[int, tuple[re.Pattern[bytes], int]] = {
    code: (
        re.compile(re.escape(bytes([code])).join([b"(?:", rb"[\s\S]{%d}){16,}" % (size - 1)])),
        size,
    )
    for code, size in ((0x4B, 2), (0x4D, 3), (0x4A, 5), (0x47, 9))
}
_MAX_PUSH_RUN = 1 << 16
_MISSING = object()


@functools.lru_cache(maxsize=64)
def _run_format(code: int, count: int) -> struct.Struct:
    return struct.Struct("<" + {0x4D: "xH", 0x4A: "xi"}[code] * count)


def _numbers(buf: bytes, pos: int, count: int, code: int) -> Iterable[int | float | Number]:
    """What a run of ``count`` number opcodes of one kind pushes.

    BININT1 and BINFLOAT push what their exact handlers push (the byte values; 0.0). A run of
    BININT2/BININT in which no value is a byte pushes :data:`NUMBER` per item (an int outside
    0..255: all the model needs to know, and allocation-free); otherwise the exact values.
    """
    end = pos + count * (3 if code == 0x4D else 5)
    if code == 0x4B:  # BININT1
        return buf[pos + 1 : pos + 2 * count : 2]
    if code == 0x47:  # BINFLOAT (its value never matters; the exact handler pushes 0.0 too)
        return repeat(0.0, count)
    if code == 0x4D:  # BININT2: a byte value has a zero high byte
        wide = buf[pos + 2 : end : 3].count(0) == 0
    else:  # BININT: a byte value has three zero high bytes; one column without a zero suffices
        wide = (
            not buf[pos + 3 : end : 5].count(0)
            or not buf[pos + 4 : end : 5].count(0)
            or not buf[pos + 2 : end : 5].count(0)
        )
    if wide:
        return repeat(NUMBER, count)
    values: tuple[int, ...] = _run_format(code, count).unpack_from(buf, pos)
    return values


def run_fast(m: Unpickler) -> None:
    """Walk one pickle up to STOP, common opcodes inline, the rest through ``m.table``."""
    src = m.src
    table = m.table
    stack = m.stack
    memo = m.memo
    marks = m.marks
    max_marks = m.limits.max_marks
    num_runs = _NUM_RUNS
    ops = 0
    made = 0
    try:
        while True:
            if src.base + src.pos >= m.next_check:
                m.ops += ops
                m.made += made
                ops = made = 0
                m.check_alloc()
            if len(src.buf) - src.pos < 64:
                src.fill(64)
            buf = src.buf
            pos = src.pos
            # At most ALLOC_CHECK bytes between two checks of the memory estimate.
            end = min(len(buf) - 16, pos + ALLOC_CHECK)
            # Stop at a frame's end, so an opcode running past it is noticed (framing.py).
            frame = m.frame_end - src.base
            if pos < frame < end:
                end = frame
            first = pos
            fence = m.fence
            while pos < end:
                code = buf[pos]
                if code == 0x94:  # MEMOIZE
                    if len(stack) <= fence:
                        break
                    memo[len(memo)] = stack[-1]
                    pos += 1
                elif code == 0x8C:  # SHORT_BINUNICODE
                    stop = pos + 2 + buf[pos + 1]
                    if stop > len(buf):
                        break
                    try:
                        stack.append(buf[pos + 2 : stop].decode("utf-8", "surrogatepass"))
                    except UnicodeDecodeError:
                        break
                    pos = stop
                elif code == 0x4B:  # BININT1
                    stack.append(buf[pos + 1])
                    pos += 2
                elif code == 0x4A:  # BININT
                    stack.append(int.from_bytes(buf[pos + 1 : pos + 5], "little", signed=True))
                    pos += 5
                elif code == 0x4D:  # BININT2
                    stack.append(buf[pos + 1] | buf[pos + 2] << 8)
                    pos += 3
                elif code == 0x71:  # BINPUT
                    if len(stack) <= fence:
                        break
                    memo[buf[pos + 1]] = stack[-1]
                    pos += 2
                elif code == 0x68:  # BINGET
                    value = memo.get(buf[pos + 1], _MISSING)
                    if value is _MISSING:
                        break
                    stack.append(value)
                    pos += 2
                elif code == 0x6A:  # LONG_BINGET
                    value = memo.get(int.from_bytes(buf[pos + 1 : pos + 5], "little"), _MISSING)
                    if value is _MISSING:
                        break
                    stack.append(value)
                    pos += 5
                elif code == 0x28:  # MARK
                    if len(marks) >= max_marks:
                        break
                    fence = len(stack)
                    marks.append(fence)
                    pos += 1
                    # Long runs of numbers (big lists) are matched in C.
                    while pos < end and buf[pos] in num_runs:
                        pattern, size = num_runs[buf[pos]]
                        run = pattern.match(buf, pos, min(end, pos + _MAX_PUSH_RUN))
                        if run is None:
                            break
                        count = (run.end() - pos) // size
                        stack.extend(_numbers(buf, pos, count, buf[pos]))
                        ops += count
                        pos = run.end()
                elif code in _FAST_BATCH:  # SETITEMS / APPENDS / ADDITEMS
                    if not marks:
                        break
                    at = marks[-1]
                    below = marks[-2] if len(marks) > 1 else 0
                    if at <= below:
                        break
                    target = stack[at - 1]
                    if type(target) is not Seq or target.kind != _BATCH_KIND[code]:
                        break
                    n = len(stack) - at
                    if code == 0x75:
                        if n % 2 or Seq in map(type, islice(stack, at, None, 2)):
                            break  # the exact handler fails as the unpickler does
                        if len(target.items) < MAX_ITEMS:
                            items = stack[at:]
                            target.extend([[items[i], items[i + 1]] for i in range(0, n, 2)])
                        else:
                            target.absorb(stack[at:])
                            target.n += n // 2
                    elif code == 0x90 and Seq in map(type, islice(stack, at, None)):
                        break  # maybe unhashable: the exact handler decides
                    elif len(target.items) < MAX_ITEMS:
                        target.extend(stack[at:])
                    else:
                        target.absorb(stack[at:])
                        target.n += n
                    del stack[at:]
                    marks.pop()
                    fence = below
                    pos += 1
                elif code == 0x7D:  # EMPTY_DICT
                    stack.append(Seq("dict"))
                    made += 1
                    pos += 1
                elif code == 0x5D:  # EMPTY_LIST
                    stack.append(Seq("list"))
                    made += 1
                    pos += 1
                elif code == 0x29:  # EMPTY_TUPLE
                    stack.append(Seq("tuple"))
                    pos += 1
                elif code == 0x4E:  # NONE
                    stack.append(None)
                    pos += 1
                elif code == 0x88 or code == 0x89:  # NEWTRUE / NEWFALSE
                    stack.append(code == 0x88)
                    pos += 1
                elif code == 0x47:  # BINFLOAT
                    stack.append(0.0)
                    pos += 9
                elif code == 0x58:  # BINUNICODE
                    n = int.from_bytes(buf[pos + 1 : pos + 5], "little")
                    stop = pos + 5 + n
                    if n > MAX_TEXT or stop > len(buf):
                        break
                    try:
                        stack.append(buf[pos + 5 : stop].decode("utf-8", "surrogatepass"))
                    except UnicodeDecodeError:
                        break
                    pos = stop
                elif 0x85 <= code <= 0x87:  # TUPLE1..3
                    k = code - 0x84
                    if len(stack) - k < fence:
                        break
                    items = stack[-k:]
                    del stack[-k:]
                    stack.append(Seq("tuple", items))
                    made += 1
                    pos += 1
                elif code == 0x73 or code == 0x61:  # SETITEM / APPEND
                    k = 3 if code == 0x73 else 2
                    if len(stack) - k < fence:
                        break
                    target = stack[-k]
                    if type(target) is not Seq or target.kind != ("dict" if k == 3 else "list"):
                        break
                    if k == 3 and type(stack[-2]) is Seq:
                        break  # maybe unhashable: the exact handler decides
                    if len(target.items) < MAX_ITEMS:
                        target.extend([stack[-2:]] if k == 3 else [stack[-1]])
                    else:
                        target.absorb(stack[-2:] if k == 3 else stack[-1:])
                        target.n += 1
                    del stack[1 - k :]
                    pos += 1
                else:
                    break
                ops += 1
            src.pos = pos
            m.fence = fence
            if first < frame < pos:
                m.diverged = True
            if len(stack) > m.limits.max_stack:
                raise LimitExceeded(f"stack holds more than {m.limits.max_stack} items")
            if len(memo) > m.limits.max_memo:
                raise LimitExceeded(f"memo holds more than {m.limits.max_memo} entries")
            # One opcode through its exact handler.
            m.op_start = src.base + pos
            if pos < len(buf):
                code = buf[pos]
                src.pos = pos + 1
            else:
                b = src.take(1)
                if b is None:
                    m.ops_now = m.ops + ops
                    raise Truncated("pickle data was truncated (no STOP opcode)")
                code = b[0]
            m.ops_now = m.ops + ops
            ops += 1
            handler: Any = table[code]
            if handler is None:
                raise PickleError(f"invalid load key {bytes([code])!r}")
            stop = handler()
            m.check_frame()
            if stop:
                return
    finally:
        m.ops += ops
        m.made += made
