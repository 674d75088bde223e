"""The unpickler's state, how it reads its arguments, its events, and the data opcodes.

:class:`Machine` holds what ``_pickle.c``'s ``UnpicklerObject`` holds (stack, mark stack, memo,
protocol) and reads opcode arguments from a bounded :class:`~modelseal.scanning.source.Source`.
It decides nothing: what the real unpickler would import, call or modify is handed to the
``on_*`` event methods, which a judge (:class:`~modelseal.scanning.pickle_vm.PickleVM`) overrides.
Where the real unpickler would raise, the first error of each pickle is handed to
:meth:`Machine.on_malformed` and the walk goes on tolerantly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modelseal.scanning.source import Source
from modelseal.scanning.unpickler.values import (
    ALLOC_CHECK,
    MAX_LINE,
    MAX_NESTED,
    MAX_TEXT,
    GlobalRef,
    LimitExceeded,
    Limits,
    Made,
    Opaque,
    PickleError,
    Seq,
    Truncated,
)

Handler = Callable[[], "bool | None"]


class Machine:
    """Unpickler state, argument reading, stack primitives, events and the data opcodes."""

    def __init__(self, source: Source, *, limits: Limits | None = None) -> None:
        self.src = source
        self.limits = limits or Limits()
        self.last_value: Any = None
        self.persistent_ids: list[Any] = []
        self.ops = 0
        self.quiet = False  # a probe: errors are counted, not reported
        # Python 2 strings (STRING, BINSTRING): loaders decode them with their own encoding
        # (numpy and joblib pass latin-1, so anything goes); True models pickle.load's default
        # ASCII, which refuses other bytes. The scanner keeps the permissive model.
        self.ascii_strings = False
        # What the loading process may have that a plain ``pickle.loads`` in a stock
        # interpreter has not: copyreg extension codes (no ML loader registers any) and a
        # persistent_load hook (torch has one). Where one is missing, EXT1/2/4 or PERSID/
        # BINPERSID without a PROTO header is where the real unpickler fails: how bytes that
        # are data (one in 85 random weights starts with an EXT opcode) are told from pickles.
        self.extensions_registered = True
        self.persistent_hook = True
        # The exact walk up to the real unpickler's first error (to recognise pickles).
        self.first_error: int | None = None  # its offset
        self.clean_ops = 0  # opcodes executed before it
        self.first_ops = 0  # opcodes of the first pickle, when it reached STOP cleanly
        self.acted = False  # imported, called or loaded a persistent id before it
        self.cut_short = False  # it is the data ending inside a valid walk
        self.proto_first = False  # the stream starts with a PROTO opcode
        self.ops_now = 0  # opcodes before the current one (kept by the walkers)
        # FRAME lengths that do not match the opcodes: pickle.load(file) reads other bytes
        # than pickle.loads (see unpickler.framing).
        self.diverged = False
        # What the real unpickler allocates, estimated as the walk goes (expansion bombs):
        # containers made (about 80 bytes each), one 8-byte reference per opcode, memo slots.
        self.made = 0
        self.memo_top = 0  # the largest memo index beyond limits.max_memo_index
        self.alloc_from = source.tell()
        self.next_check = self.alloc_from + ALLOC_CHECK
        self.reset()

    # ---- events (a judge overrides these) --------------------------------------------------

    def on_malformed(self, reason: str, offset: int) -> None:
        """The real unpickler raises here (first error of the pickle only)."""

    def on_global(self, module: str, name: str, effective: tuple[str, str], offset: int) -> bool:
        """GLOBAL/STACK_GLOBAL/INST imports ``effective`` (written ``module.name``); allowed?"""
        return False

    def on_dynamic_global(self, offset: int) -> None:
        """STACK_GLOBAL imports a name computed at load time (not a string we know)."""

    def on_call(self, func: GlobalRef | Made, args: Any, how: str) -> None:
        """REDUCE/NEWOBJ/NEWOBJ_EX/OBJ/INST calls ``func`` (an import or a call's result)."""

    def on_mutate_global(self, target: GlobalRef, how: str) -> None:
        """BUILD/APPEND/SETITEM... modifies an imported object itself."""

    def on_build(self, made: Made) -> None:
        """BUILD set ``made.state``; may read what follows in the stream (joblib arrays)."""

    def on_memo_index(self, idx: int) -> None:
        """A PUT index above ``limits.max_memo_index``."""

    def on_extension(self, code: int) -> None:
        """EXT1/EXT2/EXT4 imports whatever the loading process registered under ``code``."""

    # ---- state -----------------------------------------------------------------------------

    def reset(self) -> None:
        """Start a new pickle: empty stack, marks and memo, protocol 0."""
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.fence = 0
        self.memo: dict[int, Any] = {}
        self.proto = 0
        self.errors = 0
        self.op_start = 0
        self.frame_end = -1  # absolute end of the last FRAME

    def error(self, reason: str) -> None:
        """The real unpickler raises here; note the first error of each pickle and go on."""
        if self.first_error is None and not self.quiet:
            self.first_error = self.op_start
            self.clean_ops = self.ops_now
        if self.errors == 0 and not self.quiet:
            self.on_malformed(reason, self.op_start)
        self.errors += 1

    def allocated(self) -> int:
        """Bytes the real unpickler holds by now (an estimate that never undercounts much)."""
        return 8 * self.ops + 80 * self.made + 8 * len(self.memo) + 16 * self.memo_top

    def check_alloc(self) -> None:
        """Stop with LimitExceeded when the real unpickler would need far more memory than the
        data's size explains: ``limits.max_alloc`` and ``limits.max_alloc_ratio`` times the
        bytes read (a list or memo bomb), checked every ``ALLOC_CHECK`` bytes as the walk goes."""
        here = self.src.tell()
        self.next_check = here + ALLOC_CHECK
        used = self.allocated()
        read = max(here - self.alloc_from, 1)
        if used > self.limits.max_alloc and used > self.limits.max_alloc_ratio * read:
            raise LimitExceeded(
                f"loading needs about {used >> 20} MiB for {read >> 10} KiB of pickle "
                f"(over {self.limits.max_alloc_ratio}x): an expansion bomb"
            )

    def check_frame(self) -> None:
        """After an opcode: one that started inside a frame and ended past it is read
        differently by ``pickle.load(file)``."""
        if self.op_start < self.frame_end < self.src.tell():
            self.diverged = True

    def underflow(self) -> None:
        """A pop below the fence: the message ``_pickle.c`` gives."""
        self.error("unexpected MARK found" if self.marks else "unpickling stack underflow")

    def pop(self) -> Any:
        """Pop the top of the stack (above the fence)."""
        if len(self.stack) <= self.fence:
            self.underflow()
            return Opaque("underflow")
        return self.stack.pop()

    def top(self) -> Any:
        """The top of the stack (above the fence)."""
        if len(self.stack) <= self.fence:
            self.error("unpickling stack underflow")
            return Opaque("underflow")
        return self.stack[-1]

    def push(self, value: Any) -> None:
        """Push ``value``, bounded by ``limits.max_stack``."""
        self.stack.append(value)
        if len(self.stack) > self.limits.max_stack:
            raise LimitExceeded(f"stack holds more than {self.limits.max_stack} items")

    def pop_mark(self) -> list[Any]:
        """Pop everything above the last MARK, and the MARK."""
        if not self.marks:
            self.error("could not find MARK")
            return []
        at = self.marks.pop()
        self.fence = self.marks[-1] if self.marks else 0
        items = self.stack[at:]
        del self.stack[at:]
        return items

    # ---- reading ---------------------------------------------------------------------------

    def need(self, n: int) -> bytes:
        """Exactly ``n`` bytes of argument (Truncated when the stream ends)."""
        data = self.src.take(n)
        if data is None:
            raise Truncated("pickle data was truncated")
        return data

    def uint(self, n: int) -> int:
        """An ``n``-byte little-endian unsigned argument."""
        return int.from_bytes(self.need(n), "little")

    def line(self) -> bytes:
        """A newline-terminated text argument."""
        data, length = self.src.readline(MAX_LINE)
        if length < 0:
            raise Truncated("pickle data was truncated (no newline)")
        if data is None:
            self.error("text opcode argument longer than the scanner keeps")
            return b""
        return data

    def blob(self, n: int, kind: str) -> Any:
        """Read a length-prefixed argument, keeping it only if small."""
        if n <= MAX_TEXT or (kind == "bytes" and n <= MAX_NESTED):
            data = self.need(n)
            if kind == "bytes":
                return data
            if kind == "str":
                return data.decode("utf-8", "surrogatepass")
            if self.ascii_strings and not data.isascii():
                self.error("Python 2 string is not ASCII (pickle.load's default encoding)")
            return data.decode("latin-1")
        if not self.src.skip(n):
            raise Truncated("pickle data was truncated inside a large argument")
        return Opaque(f"{kind}[{n}]")

    # ---- the exact walk --------------------------------------------------------------------

    table: list[Handler | None]

    def run_exact(self) -> None:
        """Walk one pickle up to STOP, every opcode through its handler in :attr:`table`."""
        src = self.src
        table = self.table
        while True:
            self.op_start = src.tell()
            if self.op_start >= self.next_check:
                self.check_alloc()
            b = src.take(1)
            self.ops_now = self.ops
            if b is None:
                raise Truncated("pickle data was truncated (no STOP opcode)")
            self.ops += 1
            handler = table[b[0]]
            if handler is None:
                raise PickleError(f"invalid load key {b!r}")
            stop = handler()
            self.check_frame()
            if stop:
                return

    # ---- data opcodes ----------------------------------------------------------------------

    def op_float(self) -> None:
        """FLOAT: a float as text."""
        text = self.line()
        try:
            self.push(float(text))
        except ValueError:
            self.error("could not convert FLOAT argument")
            self.push(0.0)

    def op_int(self) -> None:
        """INT: an int (or ``00``/``01`` for a bool) as text."""
        text = self.line()
        if text in (b"00", b"01"):
            self.push(text == b"01")
            return
        try:
            self.push(int(text) if len(text) < 4300 else Opaque("int"))
        except ValueError:
            self.error("invalid literal for INT")
            self.push(0)

    def op_long(self) -> None:
        """LONG: an int as text, with an optional ``L``."""
        text = self.line()
        if text.endswith(b"L"):
            text = text[:-1]
        try:
            self.push(int(text) if len(text) < 4300 else Opaque("int"))
        except ValueError:
            self.error("invalid literal for LONG")
            self.push(0)

    def op_binint(self) -> None:
        """BININT: a signed 4-byte int."""
        self.push(int.from_bytes(self.need(4), "little", signed=True))

    def op_binint1(self) -> None:
        """BININT1: an unsigned 1-byte int."""
        self.push(self.need(1)[0])

    def op_binint2(self) -> None:
        """BININT2: an unsigned 2-byte int."""
        self.push(self.uint(2))

    def op_long1(self) -> None:
        """LONG1: a signed int of up to 255 bytes."""
        n = self.uint(1)
        self.push(int.from_bytes(self.need(n), "little", signed=True))

    def op_long4(self) -> None:
        """LONG4: a signed int with a 4-byte length."""
        n = int.from_bytes(self.need(4), "little", signed=True)
        if n < 0:
            self.error("LONG pickle has negative byte count")
            return
        if n < 4096:
            self.push(int.from_bytes(self.need(n), "little", signed=True))
        else:
            self.blob(n, "bytes")
            self.push(Opaque("int"))

    def op_none(self) -> None:
        """NONE."""
        self.push(None)

    def op_true(self) -> None:
        """NEWTRUE."""
        self.push(True)

    def op_false(self) -> None:
        """NEWFALSE."""
        self.push(False)

    def op_binfloat(self) -> None:
        """BINFLOAT: an 8-byte float (its value never matters)."""
        self.need(8)
        self.push(0.0)

    def op_persid(self) -> None:
        """PERSID: a persistent id as text."""
        pid = self.line()
        if not pid.isascii():
            self.error("persistent IDs in protocol 0 must be ASCII strings")
        self.persistent(pid.decode("ascii", "replace"))

    def op_binpersid(self) -> None:
        """BINPERSID: a persistent id from the stack."""
        self.persistent(self.pop())

    def needs_hook(self, present: bool, reason: str) -> None:
        """An opcode only a loader's hook or registry makes work: without it (``present``
        False), an error for bytes with no PROTO header (see ``extensions_registered``)."""
        if not present and not self.proto_first:
            self.error(reason)

    def acting(self) -> None:
        """The real unpickler imports, calls or loads something here (if it got this far)."""
        if self.first_error is None:
            self.acted = True

    def persistent(self, pid: Any) -> None:
        """Remember a persistent id (torch storages) and push what the loader would return.
        (Not "acting": the id is handed to the loader's hook, which imports nothing itself.)"""
        self.needs_hook(self.persistent_hook, "no persistent_load hook is given")
        if len(self.persistent_ids) < 1_000_000:
            self.persistent_ids.append(pid)
        self.push(Opaque("persistent"))

    def op_string(self) -> None:
        """STRING: a quoted, backslash-escaped Python 2 str as text."""
        import codecs

        text = self.line()
        if len(text) >= 2 and text[0] == text[-1] and text[:1] in (b"'", b'"'):
            try:
                raw: bytes = codecs.escape_decode(text[1:-1])[0]
            except ValueError:
                self.error("invalid escape in STRING argument")
                raw = b""
            if self.ascii_strings and not raw.isascii():
                self.error("Python 2 string is not ASCII (pickle.load's default encoding)")
            self.push(raw.decode("latin-1"))
        else:
            self.error("the STRING opcode argument must be quoted")
            self.push("")

    def op_binstring(self) -> None:
        """BINSTRING: latin-1 text with a signed 4-byte length."""
        n = int.from_bytes(self.need(4), "little", signed=True)
        if n < 0:
            self.error("BINSTRING pickle has negative byte count")
            return
        self.push(self.blob(n, "latin"))

    def op_short_binstring(self) -> None:
        """SHORT_BINSTRING: latin-1 text with a 1-byte length."""
        self.push(self.blob(self.uint(1), "latin"))

    def op_unicode(self) -> None:
        """UNICODE: raw-unicode-escaped text."""
        text = self.line()
        try:
            self.push(text.decode("raw_unicode_escape"))
        except UnicodeDecodeError:
            self.error("invalid UNICODE argument")
            self.push("")

    def op_binunicode(self) -> None:
        """BINUNICODE: UTF-8 with a 4-byte length."""
        self.push(self.text(self.uint(4)))

    def op_short_binunicode(self) -> None:
        """SHORT_BINUNICODE: UTF-8 with a 1-byte length."""
        self.push(self.text(self.uint(1)))

    def op_binunicode8(self) -> None:
        """BINUNICODE8: UTF-8 with an 8-byte length."""
        self.push(self.text(self.uint(8)))

    def text(self, n: int) -> Any:
        """``n`` bytes of UTF-8 (surrogates allowed, as the C unpickler does)."""
        try:
            return self.blob(n, "str")
        except UnicodeDecodeError:
            self.error("invalid UTF-8 in BINUNICODE")
            return Opaque("bad-str")

    def op_binbytes(self) -> None:
        """BINBYTES: bytes with a 4-byte length."""
        self.push(self.blob(self.uint(4), "bytes"))

    def op_short_binbytes(self) -> None:
        """SHORT_BINBYTES: bytes with a 1-byte length."""
        self.push(self.blob(self.uint(1), "bytes"))

    def op_binbytes8(self) -> None:
        """BINBYTES8: bytes with an 8-byte length."""
        self.push(self.blob(self.uint(8), "bytes"))

    def op_bytearray8(self) -> None:
        """BYTEARRAY8: a bytearray with an 8-byte length."""
        n = self.uint(8)
        self.blob(n, "bytes")
        array = Seq("bytearray")
        array.n = n  # its length decides which indices SETITEM may use
        self.push(array)

    def op_next_buffer(self) -> None:
        """NEXT_BUFFER: an out-of-band buffer; loaders pass none (pickle.load(buffers=None))."""
        self.error("pickle stream refers to out-of-band data but no buffers argument was given")
        self.push(Opaque("buffer"))

    def op_readonly_buffer(self) -> None:
        """READONLY_BUFFER: makes the top of the stack read-only (it must be a buffer)."""
        value = self.top()
        buffer = isinstance(value, (bytes, Opaque)) or (
            isinstance(value, Seq) and value.kind == "bytearray"
        )
        if not buffer:
            self.error("READONLY_BUFFER needs an object with the buffer protocol")
