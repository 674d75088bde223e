"""The structural opcodes: marks, containers, memo, globals, calls, BUILD, framing, extensions.

Each handler does what the matching ``load_*`` function of ``Modules/_pickle.c`` does to the
stack, the marks and the memo, on symbolic values; imports, calls and modifications of imported
objects are handed to the events of :class:`~modelseal.scanning.unpickler.machine.Machine`.
Each handler returns True on STOP.
"""

from __future__ import annotations

import _compat_pickle
from typing import Any

from modelseal.scanning.source import Source
from modelseal.scanning.unpickler.machine import Handler, Machine
from modelseal.scanning.unpickler.table import HANDLERS
from modelseal.scanning.unpickler.values import (
    HIGHEST_PROTOCOL,
    GlobalRef,
    LimitExceeded,
    Limits,
    Made,
    Number,
    Opaque,
    PickleError,
    Seq,
    Truncated,
    dotted,
    unhashable,
)

TARGET_KIND = {
    "APPEND": "list",
    "APPENDS": "list",
    "SETITEM": "dict",
    "SETITEMS": "dict",
    "ADDITEMS": "set",
}


def _is(value: Any, kind: str) -> bool:
    """``value`` is a container of ``kind`` (or a value we do not track)."""
    return isinstance(value, Opaque) or (isinstance(value, Seq) and value.kind == kind)


def _plain_state(state: Any) -> bool:
    """A BUILD state that a value without ``__setstate__`` or ``__dict__`` accepts."""
    if state is None or isinstance(state, Opaque):
        return True
    if isinstance(state, Seq) and state.kind == "tuple" and state.n == 2:
        first, slots = state.items
        return first is None and isinstance(slots, Seq) and slots.kind == "dict" and slots.n == 0
    return False


# A PROTO number above today's highest that a later interpreter may accept (protocol 5 came in
# Python 3.8): still a pickle header, since a newer unpickler may run what follows.
_PLAUSIBLE_PROTOCOL = 15


class Unpickler(Machine):
    """The whole opcode set; :meth:`Machine.run_exact` walks a pickle with it."""

    def __init__(self, source: Source, *, limits: Limits | None = None) -> None:
        super().__init__(source, limits=limits)
        table: list[Handler | None] = [None] * 256
        for code, method in HANDLERS.items():
            table[code[0]] = getattr(self, method)
        self.table = table

    # ---- imports and calls -----------------------------------------------------------------

    def effective_name(self, module: str, name: str) -> tuple[str, str]:
        """What is imported: below protocol 3 the default unpickler (``fix_imports=True``) maps
        Python 2 names first."""
        if self.proto < 3:
            mapped = _compat_pickle.NAME_MAPPING.get((module, name))
            if mapped is not None:
                return mapped
            if module in _compat_pickle.IMPORT_MAPPING:
                return (_compat_pickle.IMPORT_MAPPING[module], name)
        return (module, name)

    def load_global(self, module: Any, name: Any, offset: int) -> Any:
        """The value GLOBAL/STACK_GLOBAL/INST pushes for ``module``/``name``."""
        if not (isinstance(module, str) and isinstance(name, str)):
            unknown = (Opaque, Made, GlobalRef)
            if not all(isinstance(v, (str, *unknown)) for v in (module, name)):
                # Numbers, bytes or containers: the C unpickler refuses before importing.
                self.error("STACK_GLOBAL requires str")
                return Opaque("bad-global")
            self.on_dynamic_global(offset)
            return GlobalRef("?", "?", False)
        if not dotted(module) or not dotted(name):
            # The import system cannot find such a name; the real unpickler fails here.
            self.error(f"cannot import {module[:80]!r}.{name[:80]!r}")
            return Opaque("bad-global")
        allowed = self.on_global(module, name, self.effective_name(module, name), offset)
        self.acting()
        return GlobalRef(module, name, allowed)

    def called(self, func: Any, args: Any, how: str) -> Made:
        """The value a call of ``func`` pushes (REDUCE, NEWOBJ, NEWOBJ_EX, OBJ, INST)."""
        if not (isinstance(func, Opaque) and func.what == "persistent"):
            # (Calling what a persistent_load hook returned imports nothing by itself: text
            # such as "PORT=..\nPATH=..\nROOT=.." walks as PERSID, PERSID, REDUCE.)
            self.acting()
        if isinstance(func, (GlobalRef, Made)):
            self.on_call(func, args, how)
        elif not isinstance(func, Opaque):
            self.error(f"{how} on a value that is not callable")
        return Made(func, args)

    # ---- marks and the stack ---------------------------------------------------------------

    def op_mark(self) -> None:
        """MARK."""
        self.marks.append(len(self.stack))
        self.fence = len(self.stack)
        if len(self.marks) > self.limits.max_marks:
            raise LimitExceeded(f"more than {self.limits.max_marks} nested MARKs")

    def op_stop(self) -> bool:
        """STOP: the pickle's value is the top of the stack."""
        self.last_value = self.pop()
        if self.frame_end > self.src.tell():
            self.diverged = True  # a file reader starts the next pickle at the frame's end
        return True

    def op_pop(self) -> None:
        """POP; right at a mark it removes the mark (as both unpicklers do)."""
        if self.marks and self.marks[-1] == len(self.stack):
            self.marks.pop()
            self.fence = self.marks[-1] if self.marks else 0
        else:
            self.pop()

    def op_pop_mark(self) -> None:
        """POP_MARK."""
        self.pop_mark()

    def op_dup(self) -> None:
        """DUP."""
        self.push(self.top())

    # ---- calls -----------------------------------------------------------------------------

    def op_reduce(self) -> None:
        """REDUCE: call the callable below the argument tuple."""
        args = self.pop()
        func = self.pop()
        if not (isinstance(args, Seq) and args.kind == "tuple") and not isinstance(args, Opaque):
            self.error("REDUCE argument must be a tuple")
        self.push(self.called(func, args, "REDUCE"))

    def op_build(self) -> None:
        """BUILD: set the state of the object below (``__setstate__`` or ``__dict__``)."""
        state = self.pop()
        target = self.top()
        if not isinstance(target, (GlobalRef, Made, Opaque)) and not _plain_state(state):
            # Plain values have no __setstate__ and no __dict__: _pickle.c only accepts a
            # state of None or (None, {}).
            self.error("BUILD state a plain value cannot take")
        if isinstance(target, GlobalRef):
            self.on_mutate_global(target, "BUILD")
        elif isinstance(target, Made):
            target.state = state
            if self.frame_end <= self.src.tell():
                # The frame is done: bytes a hook reads next (joblib's inline arrays) follow it.
                self.frame_end = -1
            self.on_build(target)

    def op_global(self) -> None:
        """GLOBAL: module and name as text lines."""
        offset = self.op_start
        module = self.line().decode("utf-8", "replace")
        name = self.line().decode("utf-8", "replace")
        self.push(self.load_global(module, name, offset))

    def op_stack_global(self) -> None:
        """STACK_GLOBAL: module and name from the stack."""
        name = self.pop()
        module = self.pop()
        self.push(self.load_global(module, name, self.op_start))

    def op_inst(self) -> None:
        """INST: import a class by text and call it with the items above the mark."""
        offset = self.op_start
        marked = bool(self.marks)  # _pickle.c looks for the MARK before reading the names
        raw = self.line(), self.line()
        if not marked:
            self.error("could not find MARK")
            self.push(Opaque("bad-global"))
            return
        if not all(part.isascii() for part in raw):
            self.error("INST names must be ASCII")
            self.push(Opaque("bad-global"))
            return
        cls = self.load_global(raw[0].decode(), raw[1].decode(), offset)
        args = self.pop_mark()
        self.push(self.called(cls, Seq("tuple", args), "INST"))

    def op_obj(self) -> None:
        """OBJ: call the first item above the mark with the rest."""
        items = self.pop_mark()
        if not items:
            self.error("OBJ needs a class")
            self.push(Opaque("obj"))
            return
        self.push(self.called(items[0], Seq("tuple", items[1:]), "OBJ"))

    def op_newobj(self) -> None:
        """NEWOBJ: ``cls.__new__(cls, *args)``."""
        args = self.pop()
        cls = self.pop()
        if not _is(args, "tuple"):
            self.error("NEWOBJ expected an arg tuple")
        self.push(self.called(cls, args, "NEWOBJ"))

    def op_newobj_ex(self) -> None:
        """NEWOBJ_EX: ``cls.__new__(cls, *args, **kwargs)``."""
        kwargs = self.pop()
        args = self.pop()
        cls = self.pop()
        if not (_is(args, "tuple") and _is(kwargs, "dict")):
            self.error("NEWOBJ_EX args must be a tuple and kwargs a dict")
        made = self.called(cls, args, "NEWOBJ_EX")
        made.state = kwargs
        self.push(made)

    # ---- containers ------------------------------------------------------------------------
    # do_append/do_setitems in _pickle.c: the target sits just below the items and must itself
    # be above the fence (``x <= fence`` is a stack underflow).

    def op_append(self) -> None:
        """APPEND."""
        if len(self.stack) - 1 <= self.fence:
            self.underflow()
            return
        value = self.stack.pop()
        self.add_to(self.stack[-1], [value], "APPEND")

    def op_appends(self) -> None:
        """APPENDS."""
        self.batch("APPENDS")

    def op_setitem(self) -> None:
        """SETITEM."""
        if len(self.stack) - 2 <= self.fence:
            self.underflow()
            return
        value = self.stack.pop()
        key = self.stack.pop()
        self.add_to(self.stack[-1], [[key, value]], "SETITEM")

    def op_setitems(self) -> None:
        """SETITEMS."""
        self.batch("SETITEMS")

    def op_additems(self) -> None:
        """ADDITEMS."""
        self.batch("ADDITEMS")

    def batch(self, how: str) -> None:
        """APPENDS/SETITEMS/ADDITEMS: the items above the mark go into the object below it."""
        if not self.marks:
            self.error("could not find MARK")
            return
        at = self.marks[-1]
        items = self.pop_mark()
        if at <= self.fence:
            self.underflow()
            return
        if how == "SETITEMS":
            if len(items) % 2:
                self.error("odd number of items for SETITEMS")
            items = [[items[i], items[i + 1]] for i in range(0, len(items) - 1, 2)]
        self.add_to(self.stack[at - 1], items, how)

    def add_to(self, target: Any, items: list[Any], how: str) -> None:
        """Add ``items`` to ``target`` as the real unpickler would (or fail as it would)."""
        if not items:
            return  # the C unpickler returns before looking at the target
        if isinstance(target, Seq):
            if target.kind in ("list", "bytearray") and how in ("SETITEM", "SETITEMS"):
                # obj[key] = value: an index within the sequence (a byte for a bytearray).
                for key, value in items:
                    byte = isinstance(value, int) and 0 <= value < 256
                    if not (type(key) in (int, bool) and -target.n <= key < target.n) or (
                        target.kind == "bytearray" and not byte
                    ):
                        self.error(f"{how} with a bad index or value on a {target.kind}")
                        return
                return
            if target.kind == "bytearray" and how in ("APPEND", "APPENDS"):
                if not all(isinstance(i, int) and 0 <= i < 256 for i in items):
                    self.error(f"{how} of a non-byte to a bytearray")
            elif target.kind != TARGET_KIND[how]:
                self.error(f"{how} on a {target.kind}")
            elif how != "APPEND" and how != "APPENDS":
                keys = [i[0] for i in items] if target.kind == "dict" else items
                self.hashable(keys)
            target.extend(items)
        elif isinstance(target, GlobalRef):
            self.on_mutate_global(target, how)
        elif not isinstance(target, (Made, Opaque)):
            kind = "int" if isinstance(target, Number) else type(target).__name__
            self.error(f"{how} on a {kind}")

    def hashable(self, keys: list[Any]) -> None:
        """Fail as the real unpickler does on an unhashable dict key or set item."""
        for key in keys:
            if unhashable(key):
                self.error("unhashable type used as a dict key or set item")
                return

    def op_dict(self) -> None:
        """DICT: a dict of the pairs above the mark."""
        items = self.pop_mark()
        if len(items) % 2:
            self.error("odd number of items for DICT")
        self.hashable(items[0::2])
        d = Seq("dict")
        self.made += 1
        d.extend([[items[i], items[i + 1]] for i in range(0, len(items) - 1, 2)])
        self.push(d)

    def op_empty_dict(self) -> None:
        """EMPTY_DICT."""
        self.made += 1
        self.push(Seq("dict"))

    def op_list(self) -> None:
        """LIST: a list of the items above the mark."""
        self.made += 1
        self.push(Seq("list", self.pop_mark()))

    def op_empty_list(self) -> None:
        """EMPTY_LIST."""
        self.made += 1
        self.push(Seq("list"))

    def op_tuple(self) -> None:
        """TUPLE: a tuple of the items above the mark."""
        self.made += 1
        self.push(Seq("tuple", self.pop_mark()))

    def op_empty_tuple(self) -> None:
        """EMPTY_TUPLE."""
        self.push(Seq("tuple"))

    def op_tuple1(self) -> None:
        """TUPLE1."""
        a = self.pop()
        self.made += 1
        self.push(Seq("tuple", [a]))

    def op_tuple2(self) -> None:
        """TUPLE2."""
        b = self.pop()
        a = self.pop()
        self.made += 1
        self.push(Seq("tuple", [a, b]))

    def op_tuple3(self) -> None:
        """TUPLE3."""
        c = self.pop()
        b = self.pop()
        a = self.pop()
        self.made += 1
        self.push(Seq("tuple", [a, b, c]))

    def op_empty_set(self) -> None:
        """EMPTY_SET."""
        self.made += 3  # an empty set is 216 bytes
        self.push(Seq("set"))

    def op_frozenset(self) -> None:
        """FROZENSET: a frozenset of the items above the mark."""
        items = self.pop_mark()
        self.hashable(items)
        self.made += 3
        self.push(Seq("frozenset", items))

    # ---- memo ------------------------------------------------------------------------------

    def op_get(self) -> None:
        """GET: a memo index as text."""
        text = self.line()
        try:
            idx = int(text)
        except ValueError:
            self.error("invalid GET argument")
            self.push(Opaque("memo"))
            return
        self.get(idx)

    def op_binget(self) -> None:
        """BINGET."""
        self.get(self.need(1)[0])

    def op_long_binget(self) -> None:
        """LONG_BINGET."""
        self.get(self.uint(4))

    def get(self, idx: int) -> None:
        """Push memo entry ``idx``."""
        value = self.memo.get(idx, self)
        if value is self:
            self.error(f"memo value not found at index {idx}")
            value = Opaque("memo")
        self.push(value)

    def op_put(self) -> None:
        """PUT: a memo index as text."""
        text = self.line()
        try:
            idx = int(text)
        except ValueError:
            self.error("invalid PUT argument")
            return
        if idx < 0:
            self.error("negative PUT argument")
            return
        self.put(idx)

    def op_binput(self) -> None:
        """BINPUT."""
        self.put(self.need(1)[0])

    def op_long_binput(self) -> None:
        """LONG_BINPUT."""
        self.put(self.uint(4))

    def op_memoize(self) -> None:
        """MEMOIZE: the next memo index."""
        self.put(len(self.memo))

    def put(self, idx: int) -> None:
        """Store the top of the stack as memo entry ``idx``."""
        if len(self.stack) <= self.fence:  # _pickle.c checks the stack before the index
            self.underflow()
            return
        if idx > self.limits.max_memo_index:
            self.on_memo_index(idx)
            self.memo_top = max(self.memo_top, idx)
            self.check_alloc()  # the real memo grows to twice the index at once
        self.memo[idx] = self.stack[-1]
        if len(self.memo) > self.limits.max_memo:
            raise LimitExceeded(f"memo holds more than {self.limits.max_memo} entries")

    # ---- framing and extensions ------------------------------------------------------------

    def op_proto(self) -> None:
        """PROTO (a header only with a protocol the real unpickler knows: it stops at any
        other)."""
        at_start = self.op_start == self.src.start
        self.proto_first = self.proto_first or at_start  # (a header cut short still is one)
        proto = self.need(1)[0]
        if proto > HIGHEST_PROTOCOL:
            if at_start and proto > _PLAUSIBLE_PROTOCOL:
                self.proto_first = False  # data that starts with 0x80, not a pickle header
            raise PickleError(f"unsupported pickle protocol: {proto}")
        self.proto = proto

    def op_frame(self) -> None:
        """FRAME: the whole frame must be readable now, then reading goes on linearly."""
        n = self.uint(8)
        if self.frame_end > self.op_start:
            self.diverged = True  # a frame inside an unfinished frame
        self.frame_end = self.src.tell() + n
        left = self.src.remaining()
        if n >= 1 << 63:
            raise PickleError("FRAME length exceeds system's maximum")
        if left is not None:
            if n > left:
                raise Truncated("pickle data was truncated (FRAME longer than the data)")
        elif n <= 1 << 26:
            if not self.src.fill(n):
                raise Truncated("pickle data was truncated (FRAME longer than the data)")
        else:
            self.error("FRAME length cannot be checked on this stream")

    def op_ext1(self) -> None:
        """EXT1."""
        self.ext(self.need(1)[0])

    def op_ext2(self) -> None:
        """EXT2."""
        self.ext(self.uint(2))

    def op_ext4(self) -> None:
        """EXT4."""
        self.ext(self.uint(4))

    def ext(self, code: int) -> None:
        """Push what the copyreg extension ``code`` names (unknown until load time)."""
        self.needs_hook(self.extensions_registered, f"extension code {code} is not registered")
        self.acting()  # (not after that error: a stock unpickler got no further)
        self.on_extension(code)
        self.push(GlobalRef("copyreg._extension_registry", str(code), False))
