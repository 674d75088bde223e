"""A model of CPython's C unpickler (``Modules/_pickle.c``) that executes nothing.

The VM walks the opcode stream exactly as ``pickle.load`` would -- object stack plus mark stack,
memo (PUT/GET/MEMOIZE), PROTO, FRAME, STACK_GLOBAL fed by any string opcode, GLOBAL/INST/OBJ/
NEWOBJ/NEWOBJ_EX/REDUCE/BUILD, extension codes, persistent ids -- but pushes symbolic values
instead of objects. Every global the real unpickler would import is checked against the
allow-list. Where the real unpickler would raise, the error is recorded (the file is then
unscannable) and the walk goes on tolerantly, so payloads after a malformed region are still seen.
"""

from __future__ import annotations

import _compat_pickle
import contextlib
import dataclasses
import re
from collections.abc import Callable
from itertools import repeat
from typing import Any

from modelseal.scanning.allowlist import Allowlist
from modelseal.scanning.report import Finding, Location, Severity, Unscannable
from modelseal.scanning.severity import rank_global
from modelseal.scanning.source import Source

HIGHEST_PROTOCOL = 5
_MAX_TEXT = 1 << 16  # longest str/bytes value kept; longer ones become Opaque
_MAX_LINE = 1 << 20  # longest text-opcode line kept
_MAX_ITEMS = 256  # container items remembered (enough for dtype/shape descriptions)
_MAX_NESTED = 1 << 24  # bytes handed to a nested loader that we scan as a pickle
_SALVAGE_BYTES = 16 << 20  # bytes after a malformed region searched for payloads
_SALVAGE_WINDOW = 512  # bytes one re-synchronised parse may look at
_SALVAGE_PROBES = 1 << 20  # re-synchronised parses after one malformed region
_SALVAGE_OPS = 1 << 23  # opcodes those parses may walk in all
_RESYNC_START = frozenset(b"ci(\x80\x8c\x8dSVXUTB")
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


def _unhashable(value: Any, depth: int = 0) -> bool:
    if isinstance(value, Seq):
        if value.kind in ("list", "dict", "set", "bytearray"):
            return True
        return depth < 8 and any(_unhashable(v, depth + 1) for v in value.items)
    return False


_TARGET_KIND = {
    "APPEND": "list",
    "APPENDS": "list",
    "SETITEM": "dict",
    "SETITEMS": "dict",
    "ADDITEMS": "set",
}


class Number:
    """A number (or None/bool) pushed inside a long run; its value never matters to safety."""

    __slots__ = ()


NUMBER = Number()
_MISSING = object()
_SALVAGE_RULES = frozenset({"pickle.global", "pickle.dynamic-global", "pickle.extension"})


def _dotted(text: str) -> bool:
    """True for names the import system could resolve (identifiers joined by dots)."""
    return all(part.isidentifier() for part in text.split("."))


_LOADERS = frozenset(
    {
        ("pickle", "loads"),
        ("_pickle", "loads"),
        ("pickle", "load"),
        ("_pickle", "load"),
        ("dill", "loads"),
        ("cloudpickle", "loads"),
        ("marshal", "loads"),
        ("numpy", "loads"),
        ("numpy.core.numeric", "loads"),
        ("joblib", "load"),
        ("torch", "load"),
        ("torch.serialization", "load"),
        ("torch.storage", "_load_from_bytes"),
    }
)


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds that turn expansion and exhaustion attacks into findings instead of hangs."""

    max_memo: int = 1 << 23
    max_stack: int = 1 << 24
    max_marks: int = 1 << 20
    max_memo_index: int = 1 << 26
    max_pickles: int = 100_000
    max_nesting: int = 4


class GlobalRef:
    """What GLOBAL/STACK_GLOBAL/INST would import."""

    __slots__ = ("allowed", "module", "name")

    def __init__(self, module: str, name: str, allowed: bool) -> None:
        self.module = module
        self.name = name
        self.allowed = allowed

    def __repr__(self) -> str:
        return f"{self.module}.{self.name}"


class Made:
    """The result of calling something (REDUCE, NEWOBJ, OBJ, INST)."""

    __slots__ = ("args", "func", "state")

    def __init__(self, func: Any, args: Any) -> None:
        self.func = func
        self.args = args
        self.state: Any = None


class Seq:
    """A list/tuple/set/frozenset/dict; only the first few items are remembered."""

    __slots__ = ("items", "kind", "n")

    def __init__(self, kind: str, items: list[Any] | None = None) -> None:
        self.kind = kind
        self.items: list[Any] = items[:_MAX_ITEMS] if items else []
        self.n = len(items) if items else 0

    def extend(self, items: list[Any]) -> None:
        room = _MAX_ITEMS - len(self.items)
        if room > 0:
            self.items.extend(items[:room])
        self.n += len(items)

    def get(self, key: Any) -> Any:
        """Value for a str key of a dict (kept as [k, v] pairs), or None."""
        for pair in self.items:
            if isinstance(pair, list) and len(pair) == 2 and pair[0] == key:
                return pair[1]
        return None


class Opaque:
    """A value we do not track (huge strings, buffers, unknown extension objects)."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what


class PickleError(Exception):
    """The real unpickler would stop here (internal to the VM)."""


class Truncated(PickleError):
    """The stream ended inside an opcode."""


class LimitExceeded(PickleError):
    """A resource bound was hit."""


# Hook called after BUILD on a value; may consume bytes that follow in the stream (joblib).
BuildHook = Callable[["PickleVM", Made], None]


class PickleVM:
    """Scan every pickle in ``source`` from its current position to the end of the stream."""

    def __init__(
        self,
        source: Source,
        *,
        location: Location,
        allowlist: Allowlist,
        limits: Limits | None = None,
        build_hook: BuildHook | None = None,
        after_stop: Callable[[PickleVM], None] | None = None,
        depth: int = 0,
        single: bool = False,
    ) -> None:
        self.src = source
        self.location = location
        self.allowlist = allowlist
        self.limits = limits or Limits()
        self.build_hook = build_hook
        self.after_stop = after_stop
        self.last_value: Any = None
        self.depth = depth
        self.single = single
        self.findings: list[Finding] = []
        self.unscannable: list[Unscannable] = []
        self.persistent_ids: list[Any] = []
        self.pickles = 0
        self.ops = 0
        self.salvaging = False
        self.truncated = False
        # The exact walk up to the real unpickler's first error (used to recognise pickles).
        self.first_error: int | None = None
        self.clean_ops = 0  # opcodes executed before that error
        self.first_ops = 0  # opcodes of the first pickle, when it reached STOP
        self.acted = False  # imported, called or loaded a persistent id before that error
        self.cut_short = False  # that error is the data ending inside a valid walk
        self.proto_first = False  # the stream starts with a PROTO opcode
        self.salvaged_threat = False  # a known-dangerous global found after a malformed region
        self._ops_now = 0
        self._seen: set[tuple[str, str, str]] = set()
        self._reset()
        self._table = self._build_table()

    # ---- reporting -------------------------------------------------------------------------

    def find(self, rule: str, severity: Severity, subject: str, message: str, offset: int) -> None:
        """Record a finding (once per rule/subject/pickle, to keep reports readable)."""
        key = (rule, subject, str(self.pickles))
        if key in self._seen:
            return
        self._seen.add(key)
        self.findings.append(Finding(rule, severity, self.location.at(offset), subject, message))

    def fail(self, reason: str, offset: int) -> None:
        self.unscannable.append(Unscannable(self.location.at(offset), reason))

    # ---- state -----------------------------------------------------------------------------

    def _reset(self) -> None:
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.fence = 0
        self.memo: dict[int, Any] = {}
        self.proto = 0
        self.errors = 0
        self.op_start = 0

    def _error(self, reason: str) -> None:
        """The real unpickler raises here; note the first error of each pickle and go on."""
        if self.first_error is None and not self.salvaging:
            self.first_error = self.op_start
            self.clean_ops = self._ops_now
        if self.errors == 0 and not self.salvaging:
            self.fail(
                f"pickle is malformed: {reason} (the real unpickler stops here)", self.op_start
            )
        self.errors += 1

    def pop(self) -> Any:
        if len(self.stack) <= self.fence:
            self._error("unexpected MARK found" if self.marks else "unpickling stack underflow")
            return Opaque("underflow")
        return self.stack.pop()

    def top(self) -> Any:
        if len(self.stack) <= self.fence:
            self._error("unpickling stack underflow")
            return Opaque("underflow")
        return self.stack[-1]

    def push(self, value: Any) -> None:
        self.stack.append(value)
        if len(self.stack) > self.limits.max_stack:
            raise LimitExceeded(f"stack holds more than {self.limits.max_stack} items")

    def pop_mark(self) -> list[Any]:
        if not self.marks:
            self._error("could not find MARK")
            return []
        at = self.marks.pop()
        self.fence = self.marks[-1] if self.marks else 0
        items = self.stack[at:]
        del self.stack[at:]
        return items

    # ---- reading ---------------------------------------------------------------------------

    def need(self, n: int) -> bytes:
        data = self.src.take(n)
        if data is None:
            raise Truncated("pickle data was truncated")
        return data

    def uint(self, n: int) -> int:
        return int.from_bytes(self.need(n), "little")

    def line(self) -> bytes:
        data, length = self.src.readline(_MAX_LINE)
        if length < 0:
            raise Truncated("pickle data was truncated (no newline)")
        if data is None:
            self._error("text opcode argument longer than the scanner keeps")
            return b""
        return data

    def blob(self, n: int, kind: str) -> Any:
        """Read a length-prefixed argument, keeping it only if small."""
        if n <= _MAX_TEXT or (kind == "bytes" and n <= _MAX_NESTED):
            data = self.need(n)
            if kind == "bytes":
                return data
            if kind == "str":
                return data.decode("utf-8", "surrogatepass")
            return data.decode("latin-1")
        if not self.src.skip(n):
            raise Truncated("pickle data was truncated inside a large argument")
        return Opaque(f"{kind}[{n}]")

    # ---- the walk --------------------------------------------------------------------------

    def run(self) -> None:
        """Scan pickles until the stream ends; record findings and unscannable regions."""
        src = self.src
        while True:
            if src.at_eof():
                if self.pickles == 0:
                    self.fail("empty stream: no pickle found", src.tell())
                return
            if self.pickles >= self.limits.max_pickles:
                self.fail(f"more than {self.limits.max_pickles} pickles in one stream", src.tell())
                return
            start = src.tell()
            self._reset()
            self.pickles += 1
            try:
                self._run_one()
            except LimitExceeded as exc:
                self.find("pickle.limit", Severity.HIGH, "resource limit", str(exc), self.op_start)
                self.fail(f"scan stopped: {exc}", self.op_start)
                return
            except PickleError as exc:
                # Only a clean walk that ran out of data looks like a cut-off pickle.
                self.truncated = isinstance(exc, Truncated) and self.errors == 0
                self.cut_short = isinstance(exc, Truncated) and self.first_error is None
                self._error(str(exc))
                if self.pickles > 1 and self.op_start == start:
                    self.unscannable.pop()
                    self.fail("data after the last pickle is not a pickle", start)
                self._salvage()
                return
            if self.pickles == 1 and self.first_error is None:
                self.first_ops = self.ops
            if self.after_stop is not None:
                try:
                    self.after_stop(self)
                except PickleError as exc:
                    self.fail(str(exc), self.src.tell())
                    return
            if self.single:
                return

    def _run_one(self) -> None:
        """Walk one pickle up to STOP.

        The inner loop handles the common data opcodes with local state; anything unusual (an
        import, a call, an error, a buffer edge) goes through the exact per-opcode handlers.
        """
        src = self.src
        table = self._table
        stack = self.stack
        memo = self.memo
        marks = self.marks
        max_marks = self.limits.max_marks
        num_runs = _NUM_RUNS
        ops = 0
        try:
            while True:
                if len(src.buf) - src.pos < 64:
                    src.fill(64)
                buf = src.buf
                pos = src.pos
                end = len(buf) - 16
                fence = self.fence
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
                            stack.extend(repeat(NUMBER, count))
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
                            if n % 2:
                                break
                            if len(target.items) < _MAX_ITEMS:
                                items = stack[at:]
                                target.extend([[items[i], items[i + 1]] for i in range(0, n, 2)])
                            else:
                                target.n += n // 2
                        elif len(target.items) < _MAX_ITEMS:
                            target.extend(stack[at:])
                        else:
                            target.n += n
                        del stack[at:]
                        marks.pop()
                        fence = below
                        pos += 1
                    elif code == 0x7D:  # EMPTY_DICT
                        stack.append(Seq("dict"))
                        pos += 1
                    elif code == 0x5D:  # EMPTY_LIST
                        stack.append(Seq("list"))
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
                        if n > _MAX_TEXT or stop > len(buf):
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
                        pos += 1
                    elif code == 0x73 or code == 0x61:  # SETITEM / APPEND
                        k = 3 if code == 0x73 else 2
                        if len(stack) - k < fence:
                            break
                        target = stack[-k]
                        if type(target) is not Seq or target.kind != ("dict" if k == 3 else "list"):
                            break
                        if len(target.items) < _MAX_ITEMS:
                            target.extend([stack[-2:]] if k == 3 else [stack[-1]])
                        else:
                            target.n += 1
                        del stack[1 - k :]
                        pos += 1
                    else:
                        break
                    ops += 1
                src.pos = pos
                self.fence = fence
                if len(stack) > self.limits.max_stack:
                    raise LimitExceeded(f"stack holds more than {self.limits.max_stack} items")
                if len(memo) > self.limits.max_memo:
                    raise LimitExceeded(f"memo holds more than {self.limits.max_memo} entries")
                # One opcode through its exact handler.
                self.op_start = src.base + pos
                if pos < len(buf):
                    code = buf[pos]
                    src.pos = pos + 1
                else:
                    b = src.take(1)
                    if b is None:
                        self._ops_now = self.ops + ops
                        raise Truncated("pickle data was truncated (no STOP opcode)")
                    code = b[0]
                ops += 1
                self._ops_now = self.ops + ops - 1
                handler = table[code]
                if handler is None:
                    raise PickleError(f"invalid load key {bytes([code])!r}")
                if handler():
                    return
        finally:
            self.ops += ops

    def _salvage(self) -> None:
        """After a structural error, re-synchronise: try to parse from every later offset where
        an opcode that can import something could start, and report what those parses import.
        """
        if self.depth >= self.limits.max_nesting:
            return
        import io

        base = self.src.tell()
        region = bytearray()
        while len(region) < _SALVAGE_BYTES and self.src.fill(1):
            region += self.src.buf[self.src.pos :]
            self.src.pos = len(self.src.buf)
        if len(region) > _SALVAGE_BYTES:
            self.fail(
                f"only the first {_SALVAGE_BYTES} bytes after the malformed region were "
                "searched for payloads",
                base + _SALVAGE_BYTES,
            )
            del region[_SALVAGE_BYTES:]
            self.src.skip(1 << 62)
        data = bytes(region)
        seen = {(f.rule, f.subject) for f in self.findings}
        probe = PickleVM(
            Source(io.BytesIO(b"")),
            location=self.location,
            allowlist=self.allowlist,
            limits=self.limits,
            depth=self.limits.max_nesting,
            single=True,
        )
        probe.salvaging = True
        probes = 0
        for i in range(len(data)):
            if data[i] not in _RESYNC_START:
                continue
            probes += 1
            if probes > _SALVAGE_PROBES or probe.ops > _SALVAGE_OPS:
                self.fail(
                    "stopped searching the malformed region for payloads (work limit)", base + i
                )
                break
            chunk = data[i : i + _SALVAGE_WINDOW]
            probe.src = Source(io.BytesIO(chunk), size=len(chunk))
            probe._reset()
            probe.findings = []
            probe._seen = set()
            with contextlib.suppress(PickleError):
                probe._run_one()
            for f in probe.findings:
                if (f.rule, f.subject) not in seen and f.rule in _SALVAGE_RULES:
                    seen.add((f.rule, f.subject))
                    self.salvaged_threat |= f.severity >= Severity.HIGH
                    self.findings.append(
                        dataclasses.replace(
                            f,
                            location=self.location.at(base + i + (f.location.offset or 0)),
                            message=f.message + " (found after a malformed region)",
                        )
                    )

    # ---- globals ---------------------------------------------------------------------------

    def _check_global(self, module: str, name: str, offset: int, *, salvage: bool = False) -> bool:
        # Below protocol 3 the default unpickler (fix_imports=True) maps Python 2 names first.
        effective = (module, name)
        if self.proto < 3:
            mapped = _compat_pickle.NAME_MAPPING.get((module, name))
            if mapped is not None:
                effective = mapped
            elif module in _compat_pickle.IMPORT_MAPPING:
                effective = (_compat_pickle.IMPORT_MAPPING[module], name)
        if self.allowlist.allows(*effective):
            return True
        where = " in a region the unpickler never reaches cleanly" if salvage else ""
        severity, why = max(rank_global(module, name), rank_global(*effective), key=lambda r: r[0])
        subject = f"{effective[0]}.{effective[1]}"
        written = f" (written as {module}.{name})" if effective != (module, name) else ""
        self.find(
            "pickle.global", severity, subject, f"imports {subject}{written}{where}: {why}", offset
        )
        return False

    def _global(self, module: Any, name: Any, offset: int) -> Any:
        if not (isinstance(module, str) and isinstance(name, str)):
            unknown = (Opaque, Made, GlobalRef)
            if not all(isinstance(v, (str, *unknown)) for v in (module, name)):
                # Numbers, bytes or containers: the C unpickler refuses before importing.
                self._error("STACK_GLOBAL requires str")
                return Opaque("bad-global")
            self.find(
                "pickle.dynamic-global",
                Severity.CRITICAL,
                "STACK_GLOBAL",
                "imports a global whose name is computed at load time, so it cannot be checked",
                offset,
            )
            return GlobalRef("?", "?", False)
        if not _dotted(module) or not _dotted(name):
            # The import system cannot find such a name; the real unpickler fails here.
            self._error(f"cannot import {module[:80]!r}.{name[:80]!r}")
            return Opaque("bad-global")
        # Ranked first: a finding per rule and subject is kept, and the ranking is the worse one.
        allowed = self._check_global(module, name, offset)
        if self.proto < 4 and "." in name:
            self.find(
                "pickle.global",
                Severity.MEDIUM,
                f"{module}.{name}",
                "dotted name below protocol 4: some unpicklers resolve it attribute by attribute",
                offset,
            )
        self._act()
        return GlobalRef(module, name, allowed)

    def _act(self) -> None:
        if self.first_error is None:
            self.acted = True

    def looks_like_pickle(self, *, complete: bool = True) -> bool | None:
        """True when the walk shows a real pickle, not other data that happens to start with an
        opcode: the unpickler imported, called or loaded something before failing, read the whole
        stream, read a meaningful prefix (8 opcodes, or a first pickle of 3), or ran out of data
        with every opcode valid (a pickle cut short). With ``complete=False`` the stream was only
        a prefix of the data: None when running out of it is all that is known.
        """
        if self.acted or self.clean_ops >= 8 or self.first_ops >= 3:
            return True
        if self.proto_first and self.salvaged_threat:
            return True  # a pickle header, junk, then a payload: an evasion attempt
        if self.first_error is None:
            return self.pickles >= 1 and self.ops >= 2
        if self.cut_short:
            if not complete:
                return None
            return self.clean_ops >= 1 or self.proto_first
        return False

    def _called(self, func: Any, args: Any, how: str) -> Made:
        self._act()
        if not isinstance(func, GlobalRef):
            if isinstance(func, Made):
                self.find(
                    "pickle.call-result",
                    Severity.HIGH,
                    how,
                    f"{how} calls an object returned by another call (attribute-chain gadget)",
                    self.op_start,
                )
            elif not isinstance(func, Opaque):
                self._error(f"{how} on a value that is not callable")
        elif (func.module, func.name) in _LOADERS:
            self._nested(args)
        return Made(func, args)

    def _nested(self, args: Any) -> None:
        """A loader called on inline bytes: scan those bytes as a pickle too."""
        data = args.items[0] if isinstance(args, Seq) and args.items else None
        if not isinstance(data, bytes) or self.depth >= self.limits.max_nesting:
            return
        import io

        inner = PickleVM(
            Source(io.BytesIO(data), size=len(data)),
            location=self.location.inside(f"<nested pickle @ {self.op_start}>"),
            allowlist=self.allowlist,
            limits=self.limits,
            depth=self.depth + 1,
        )
        inner.run()
        self.findings.extend(inner.findings)
        # A nested blob that is not a pickle (marshal, npy) is not a scan failure of this file.

    # ---- opcode handlers (each returns True on STOP) ---------------------------------------

    def _build_table(self) -> list[Callable[[], bool | None] | None]:
        t: list[Callable[[], bool | None] | None] = [None] * 256
        ops: dict[bytes, Callable[[], bool | None]] = {
            b"(": self.op_mark,
            b".": self.op_stop,
            b"0": self.op_pop,
            b"1": self.op_pop_mark,
            b"2": self.op_dup,
            b"F": self.op_float,
            b"I": self.op_int,
            b"J": self.op_binint,
            b"K": self.op_binint1,
            b"L": self.op_long,
            b"M": self.op_binint2,
            b"N": self.op_none,
            b"P": self.op_persid,
            b"Q": self.op_binpersid,
            b"R": self.op_reduce,
            b"S": self.op_string,
            b"T": self.op_binstring,
            b"U": self.op_short_binstring,
            b"V": self.op_unicode,
            b"X": self.op_binunicode,
            b"a": self.op_append,
            b"b": self.op_build,
            b"c": self.op_global,
            b"d": self.op_dict,
            b"}": self.op_empty_dict,
            b"e": self.op_appends,
            b"g": self.op_get,
            b"h": self.op_binget,
            b"i": self.op_inst,
            b"j": self.op_long_binget,
            b"l": self.op_list,
            b"]": self.op_empty_list,
            b"o": self.op_obj,
            b"p": self.op_put,
            b"q": self.op_binput,
            b"r": self.op_long_binput,
            b"s": self.op_setitem,
            b"t": self.op_tuple,
            b")": self.op_empty_tuple,
            b"u": self.op_setitems,
            b"G": self.op_binfloat,
            b"\x80": self.op_proto,
            b"\x81": self.op_newobj,
            b"\x82": self.op_ext1,
            b"\x83": self.op_ext2,
            b"\x84": self.op_ext4,
            b"\x85": self.op_tuple1,
            b"\x86": self.op_tuple2,
            b"\x87": self.op_tuple3,
            b"\x88": self.op_true,
            b"\x89": self.op_false,
            b"\x8a": self.op_long1,
            b"\x8b": self.op_long4,
            b"B": self.op_binbytes,
            b"C": self.op_short_binbytes,
            b"\x8c": self.op_short_binunicode,
            b"\x8d": self.op_binunicode8,
            b"\x8e": self.op_binbytes8,
            b"\x8f": self.op_empty_set,
            b"\x90": self.op_additems,
            b"\x91": self.op_frozenset,
            b"\x92": self.op_newobj_ex,
            b"\x93": self.op_stack_global,
            b"\x94": self.op_memoize,
            b"\x95": self.op_frame,
            b"\x96": self.op_bytearray8,
            b"\x97": self.op_next_buffer,
            b"\x98": self.op_readonly_buffer,
        }
        for key, fn in ops.items():
            t[key[0]] = fn
        return t

    def op_mark(self) -> None:
        self.marks.append(len(self.stack))
        self.fence = len(self.stack)
        if len(self.marks) > self.limits.max_marks:
            raise LimitExceeded(f"more than {self.limits.max_marks} nested MARKs")

    def op_stop(self) -> bool:
        self.last_value = self.pop()
        return True

    def op_pop(self) -> None:
        # C unpickler: a POP right at a mark removes the mark (pickle.py does the same).
        if self.marks and self.marks[-1] == len(self.stack):
            self.marks.pop()
            self.fence = self.marks[-1] if self.marks else 0
        else:
            self.pop()

    def op_pop_mark(self) -> None:
        self.pop_mark()

    def op_dup(self) -> None:
        self.push(self.top())

    def op_float(self) -> None:
        text = self.line()
        try:
            self.push(float(text))
        except ValueError:
            self._error("could not convert FLOAT argument")
            self.push(0.0)

    def op_int(self) -> None:
        text = self.line()
        if text in (b"00", b"01"):
            self.push(text == b"01")
            return
        try:
            self.push(int(text) if len(text) < 4300 else Opaque("int"))
        except ValueError:
            self._error("invalid literal for INT")
            self.push(0)

    def op_long(self) -> None:
        text = self.line()
        if text.endswith(b"L"):
            text = text[:-1]
        try:
            self.push(int(text) if len(text) < 4300 else Opaque("int"))
        except ValueError:
            self._error("invalid literal for LONG")
            self.push(0)

    def op_binint(self) -> None:
        self.push(int.from_bytes(self.need(4), "little", signed=True))

    def op_binint1(self) -> None:
        self.push(self.need(1)[0])

    def op_binint2(self) -> None:
        self.push(self.uint(2))

    def op_long1(self) -> None:
        n = self.uint(1)
        self.push(int.from_bytes(self.need(n), "little", signed=True))

    def op_long4(self) -> None:
        n = int.from_bytes(self.need(4), "little", signed=True)
        if n < 0:
            self._error("LONG pickle has negative byte count")
            return
        if n < 4096:
            self.push(int.from_bytes(self.need(n), "little", signed=True))
        else:
            self.blob(n, "bytes")
            self.push(Opaque("int"))

    def op_none(self) -> None:
        self.push(None)

    def op_true(self) -> None:
        self.push(True)

    def op_false(self) -> None:
        self.push(False)

    def op_binfloat(self) -> None:
        self.need(8)
        self.push(0.0)

    def op_persid(self) -> None:
        pid = self.line()
        self._persistent(pid.decode("ascii", "replace"))

    def op_binpersid(self) -> None:
        self._persistent(self.pop())

    def _persistent(self, pid: Any) -> None:
        self._act()
        if len(self.persistent_ids) < 1_000_000:
            self.persistent_ids.append(pid)
        self.push(Opaque("persistent"))

    def op_reduce(self) -> None:
        args = self.pop()
        func = self.pop()
        if not (isinstance(args, Seq) and args.kind == "tuple") and not isinstance(args, Opaque):
            self._error("REDUCE argument must be a tuple")
        self.push(self._called(func, args, "REDUCE"))

    def op_string(self) -> None:
        text = self.line()
        if len(text) >= 2 and text[0] == text[-1] and text[:1] in (b"'", b'"'):
            try:
                value = text[1:-1].decode("unicode_escape", "strict")
            except UnicodeDecodeError:
                self._error("invalid escape in STRING argument")
                value = ""
            self.push(value)
        else:
            self._error("the STRING opcode argument must be quoted")
            self.push("")

    def op_binstring(self) -> None:
        n = int.from_bytes(self.need(4), "little", signed=True)
        if n < 0:
            self._error("BINSTRING pickle has negative byte count")
            return
        self.push(self.blob(n, "latin"))

    def op_short_binstring(self) -> None:
        self.push(self.blob(self.uint(1), "latin"))

    def op_unicode(self) -> None:
        text = self.line()
        try:
            self.push(text.decode("raw_unicode_escape"))
        except UnicodeDecodeError:
            self._error("invalid UNICODE argument")
            self.push("")

    def op_binunicode(self) -> None:
        self.push(self._text(self.uint(4)))

    def op_short_binunicode(self) -> None:
        self.push(self._text(self.uint(1)))

    def op_binunicode8(self) -> None:
        self.push(self._text(self.uint(8)))

    def _text(self, n: int) -> Any:
        try:
            return self.blob(n, "str")
        except UnicodeDecodeError:
            self._error("invalid UTF-8 in BINUNICODE")
            return Opaque("bad-str")

    def op_binbytes(self) -> None:
        self.push(self.blob(self.uint(4), "bytes"))

    def op_short_binbytes(self) -> None:
        self.push(self.blob(self.uint(1), "bytes"))

    def op_binbytes8(self) -> None:
        self.push(self.blob(self.uint(8), "bytes"))

    def op_bytearray8(self) -> None:
        self.blob(self.uint(8), "bytes")
        self.push(Seq("bytearray"))

    def op_next_buffer(self) -> None:
        self.push(Opaque("buffer"))

    def op_readonly_buffer(self) -> None:
        self.top()

    # do_append/do_setitems in _pickle.c: the target sits just below the items and must itself
    # be above the fence (``x <= fence`` is a stack underflow).

    def op_append(self) -> None:
        if len(self.stack) - 1 <= self.fence:
            self._error("unexpected MARK found" if self.marks else "unpickling stack underflow")
            return
        value = self.stack.pop()
        self._add_to(self.stack[-1], [value], "APPEND")

    def op_appends(self) -> None:
        self._batch("APPENDS")

    def op_setitem(self) -> None:
        if len(self.stack) - 2 <= self.fence:
            self._error("unexpected MARK found" if self.marks else "unpickling stack underflow")
            return
        value = self.stack.pop()
        key = self.stack.pop()
        self._add_to(self.stack[-1], [[key, value]], "SETITEM")

    def op_setitems(self) -> None:
        self._batch("SETITEMS")

    def op_additems(self) -> None:
        self._batch("ADDITEMS")

    def _batch(self, how: str) -> None:
        if not self.marks:
            self._error("could not find MARK")
            return
        at = self.marks[-1]
        items = self.pop_mark()
        if at <= self.fence:
            self._error("unexpected MARK found" if self.marks else "unpickling stack underflow")
            return
        if how == "SETITEMS":
            if len(items) % 2:
                self._error("odd number of items for SETITEMS")
            items = [[items[i], items[i + 1]] for i in range(0, len(items) - 1, 2)]
        self._add_to(self.stack[at - 1], items, how)

    def _add_to(self, target: Any, items: list[Any], how: str) -> None:
        if not items:
            return  # the C unpickler returns before looking at the target
        if isinstance(target, Seq):
            if target.kind == "bytearray" and how in ("APPEND", "APPENDS"):
                if not all(isinstance(i, int) and 0 <= i < 256 for i in items):
                    self._error(f"{how} of a non-byte to a bytearray")
            elif target.kind != _TARGET_KIND[how]:
                self._error(f"{how} on a {target.kind}")
            elif how != "APPEND" and how != "APPENDS":
                keys = [i[0] for i in items] if target.kind == "dict" else items
                self._hashable(keys)
            target.extend(items)
        elif isinstance(target, GlobalRef):
            self._mutates_global(target, how)
        elif not isinstance(target, (Made, Opaque)):
            self._error(f"{how} on a {type(target).__name__}")

    def _hashable(self, keys: list[Any]) -> None:
        for key in keys:
            if _unhashable(key):
                self._error("unhashable type used as a dict key or set item")
                return

    def _mutates_global(self, target: GlobalRef, how: str) -> None:
        self.find(
            "pickle.mutates-global",
            Severity.HIGH,
            f"{target!r}",
            f"{how} modifies the imported object {target!r} itself, which changes it for "
            "the whole process",
            self.op_start,
        )

    def op_build(self) -> None:
        state = self.pop()
        target = self.top()
        if isinstance(target, GlobalRef):
            self._mutates_global(target, "BUILD")
        elif isinstance(target, Made):
            target.state = state
            if self.build_hook is not None:
                self.build_hook(self, target)

    def op_global(self) -> None:
        offset = self.op_start
        module = self.line().decode("utf-8", "replace")
        name = self.line().decode("utf-8", "replace")
        self.push(self._global(module, name, offset))

    def op_stack_global(self) -> None:
        name = self.pop()
        module = self.pop()
        self.push(self._global(module, name, self.op_start))

    def op_inst(self) -> None:
        offset = self.op_start
        module = self.line().decode("utf-8", "replace")
        name = self.line().decode("utf-8", "replace")
        cls = self._global(module, name, offset)
        args = self.pop_mark()
        self.push(self._called(cls, Seq("tuple", args), "INST"))

    def op_obj(self) -> None:
        items = self.pop_mark()
        if not items:
            self._error("OBJ needs a class")
            self.push(Opaque("obj"))
            return
        self.push(self._called(items[0], Seq("tuple", items[1:]), "OBJ"))

    def op_newobj(self) -> None:
        args = self.pop()
        cls = self.pop()
        self.push(self._called(cls, args, "NEWOBJ"))

    def op_newobj_ex(self) -> None:
        kwargs = self.pop()
        args = self.pop()
        cls = self.pop()
        made = self._called(cls, args, "NEWOBJ_EX")
        made.state = kwargs
        self.push(made)

    def op_dict(self) -> None:
        items = self.pop_mark()
        if len(items) % 2:
            self._error("odd number of items for DICT")
        self._hashable(items[0::2])
        d = Seq("dict")
        d.extend([[items[i], items[i + 1]] for i in range(0, len(items) - 1, 2)])
        self.push(d)

    def op_empty_dict(self) -> None:
        self.push(Seq("dict"))

    def op_list(self) -> None:
        self.push(Seq("list", self.pop_mark()))

    def op_empty_list(self) -> None:
        self.push(Seq("list"))

    def op_tuple(self) -> None:
        self.push(Seq("tuple", self.pop_mark()))

    def op_empty_tuple(self) -> None:
        self.push(Seq("tuple"))

    def op_tuple1(self) -> None:
        a = self.pop()
        self.push(Seq("tuple", [a]))

    def op_tuple2(self) -> None:
        b = self.pop()
        a = self.pop()
        self.push(Seq("tuple", [a, b]))

    def op_tuple3(self) -> None:
        c = self.pop()
        b = self.pop()
        a = self.pop()
        self.push(Seq("tuple", [a, b, c]))

    def op_empty_set(self) -> None:
        self.push(Seq("set"))

    def op_frozenset(self) -> None:
        items = self.pop_mark()
        self._hashable(items)
        self.push(Seq("frozenset", items))

    def op_get(self) -> None:
        text = self.line()
        try:
            idx = int(text)
        except ValueError:
            self._error("invalid GET argument")
            self.push(Opaque("memo"))
            return
        self._get(idx)

    def op_binget(self) -> None:
        self._get(self.need(1)[0])

    def op_long_binget(self) -> None:
        self._get(self.uint(4))

    def _get(self, idx: int) -> None:
        value = self.memo.get(idx, self)
        if value is self:
            self._error(f"memo value not found at index {idx}")
            value = Opaque("memo")
        self.push(value)

    def op_put(self) -> None:
        text = self.line()
        try:
            idx = int(text)
        except ValueError:
            self._error("invalid PUT argument")
            return
        if idx < 0:
            self._error("negative PUT argument")
            return
        self._put(idx)

    def op_binput(self) -> None:
        self._put(self.need(1)[0])

    def op_long_binput(self) -> None:
        self._put(self.uint(4))

    def op_memoize(self) -> None:
        self._put(len(self.memo))

    def _put(self, idx: int) -> None:
        if len(self.stack) <= self.fence:  # the C unpickler checks the stack first
            self._error("unexpected MARK found" if self.marks else "unpickling stack underflow")
            return
        if idx > self.limits.max_memo_index:
            self.find(
                "pickle.memo-index",
                Severity.MEDIUM,
                f"memo[{idx}]",
                "a huge memo index makes the real unpickler allocate memory in proportion "
                "to it (denial of service)",
                self.op_start,
            )
        self.memo[idx] = self.stack[-1]
        if len(self.memo) > self.limits.max_memo:
            raise LimitExceeded(f"memo holds more than {self.limits.max_memo} entries")

    def op_proto(self) -> None:
        if self.op_start == self.src.start:
            self.proto_first = True
        proto = self.need(1)[0]
        if proto > HIGHEST_PROTOCOL:
            raise PickleError(f"unsupported pickle protocol: {proto}")
        self.proto = proto

    def op_frame(self) -> None:
        n = self.uint(8)
        # C unpickler: the whole frame must be readable now, then reading goes on linearly.
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
            self._error("FRAME length cannot be checked on this stream")

    def op_ext1(self) -> None:
        self._ext(self.need(1)[0])

    def op_ext2(self) -> None:
        self._ext(self.uint(2))

    def op_ext4(self) -> None:
        self._ext(self.uint(4))

    def _ext(self, code: int) -> None:
        self._act()
        self.find(
            "pickle.extension",
            Severity.HIGH,
            f"EXT {code}",
            "imports whatever global the loading process registered in copyreg under "
            "this extension code; it cannot be checked",
            self.op_start,
        )
        self.push(GlobalRef("copyreg._extension_registry", str(code), False))
