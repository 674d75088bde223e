"""Judge what the unpickler model sees: the allow-list, severities, findings.

:class:`PickleVM` walks every pickle of a stream with the interpreter of
:mod:`modelseal.scanning.unpickler` (which executes nothing) and turns its events into findings:
every global the real unpickler would import is checked against the allow-list and ranked,
calls of call results, modifications of imported objects, extension codes and memo abuse are
reported, and bytes handed to a known loader (``pickle.loads``...) are scanned as pickles too.
Where the real unpickler would raise, the file is unscannable and the walk goes on tolerantly,
so payloads after a malformed region are still seen.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
from collections.abc import Callable
from typing import Any

from modelseal.scanning.allowlist import Allowlist
from modelseal.scanning.report import Finding, Location, Severity, Unscannable
from modelseal.scanning.rules import (
    PICKLE_CALL_RESULT,
    PICKLE_DYNAMIC_GLOBAL,
    PICKLE_EXTENSION,
    PICKLE_FRAME_DIVERGENCE,
    PICKLE_GLOBAL,
    PICKLE_LIMIT,
    PICKLE_MEMO_INDEX,
    PICKLE_MUTATES_GLOBAL,
    Rule,
)
from modelseal.scanning.severity import rank_global
from modelseal.scanning.source import Source
from modelseal.scanning.unpickler.fast import run_fast
from modelseal.scanning.unpickler.framing import contiguous_view, file_view
from modelseal.scanning.unpickler.opcodes import Unpickler
from modelseal.scanning.unpickler.values import (
    HIGHEST_PROTOCOL,
    NUMBER,
    GlobalRef,
    LimitExceeded,
    Limits,
    Made,
    Number,
    Opaque,
    PickleError,
    Seq,
    Truncated,
)

__all__ = [
    "HIGHEST_PROTOCOL",
    "NUMBER",
    "BuildHook",
    "GlobalRef",
    "LimitExceeded",
    "Limits",
    "Made",
    "Number",
    "Opaque",
    "PickleError",
    "PickleVM",
    "Seq",
    "Truncated",
]

_SALVAGE_BYTES = 16 << 20  # bytes after a malformed region searched for payloads
_SALVAGE_WINDOW = 512  # bytes one re-synchronised parse may look at
_SALVAGE_PROBES = 1 << 20  # re-synchronised parses after one malformed region
_SALVAGE_OPS = 1 << 23  # opcodes those parses may walk in all
_RESYNC_START = frozenset(b"ci(\x80\x8c\x8dSVXUTB")
_SALVAGE_RULES = frozenset(r.id for r in (PICKLE_GLOBAL, PICKLE_DYNAMIC_GLOBAL, PICKLE_EXTENSION))
_REPLAY_BYTES = 256 << 20  # a pickle whose frames diverge is re-read as a file reader sees it

# Callables that unpickle (or unmarshal) their bytes argument: the bytes are scanned too.
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

# Hook called after BUILD on a value; may consume bytes that follow in the stream (joblib).
BuildHook = Callable[["PickleVM", Made], None]


class PickleVM(Unpickler):
    """Scan every pickle in ``source`` from its current position to the end of the stream.

    ``fast=False`` walks every opcode through its exact handler (the reference the quick pass
    is tested against).
    """

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
        fast: bool = True,
    ) -> None:
        super().__init__(source, limits=limits)
        self.location = location
        self.allowlist = allowlist
        self.build_hook = build_hook
        self.after_stop = after_stop
        self.depth = depth
        self.single = single
        self.fast = fast
        self.findings: list[Finding] = []
        self.unscannable: list[Unscannable] = []
        self.pickles = 0
        self.truncated = False
        self.salvaged_threat = False  # a known-dangerous global found after a malformed region
        self.limited = False  # the walk stopped at a resource limit (a bomb)
        self._seen: set[tuple[str, str, str]] = set()

    @property
    def salvaging(self) -> bool:
        """True for a probe re-synchronising after a malformed region (errors not reported)."""
        return self.quiet

    @salvaging.setter
    def salvaging(self, value: bool) -> None:
        self.quiet = value

    # ---- reporting -------------------------------------------------------------------------

    def find(self, rule: Rule, severity: Severity, subject: str, message: str, offset: int) -> None:
        """Record a finding (once per rule/subject/pickle, to keep reports readable)."""
        key = (rule.id, subject, str(self.pickles))
        if key in self._seen:
            return
        self._seen.add(key)
        self.findings.append(Finding(rule.id, severity, self.location.at(offset), subject, message))

    def fail(self, reason: str, offset: int) -> None:
        """Record a region that could not be scanned."""
        self.unscannable.append(Unscannable(self.location.at(offset), reason))

    # ---- the walk --------------------------------------------------------------------------

    def run(self) -> None:
        """Scan pickles until the stream ends; record findings and unscannable regions.

        When FRAME lengths do not match the opcodes, ``pickle.load(file)`` reads other bytes
        than ``pickle.loads``: that is a finding, and the file reader's view is scanned too.
        """
        self._run_all()
        if self.diverged and not self.salvaging:
            self._diverged()

    def _run_all(self) -> None:
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
            self.reset()
            self.pickles += 1
            try:
                self.run_one()
            except LimitExceeded as exc:
                self.limited = True
                self.find(PICKLE_LIMIT, Severity.HIGH, "resource limit", str(exc), self.op_start)
                self.fail(f"scan stopped: {exc}", self.op_start)
                return
            except PickleError as exc:
                self.check_frame()
                # Only a clean walk that ran out of data looks like a cut-off pickle.
                self.truncated = isinstance(exc, Truncated) and self.errors == 0
                self.cut_short = isinstance(exc, Truncated) and self.first_error is None
                self.error(str(exc))
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

    def _diverged(self) -> None:
        """An opcode ran past its frame's end or STOP came early: if a peek-less file reader
        really reads other bytes than ``pickle.loads``, report it and scan its view too."""
        data = self.src.replay(_REPLAY_BYTES) if self.depth == 0 else None
        view = b""
        if data is not None:
            view = file_view(data)
            if view == contiguous_view(data):
                return  # e.g. a byte string's length read past the frame: same bytes
        self.find(
            PICKLE_FRAME_DIVERGENCE,
            Severity.HIGH,
            "FRAME",
            "FRAME lengths do not match the opcodes, so pickle.loads and pickle.load(file) "
            "read different content (no pickler writes this: a scanner-evasion technique)",
            self.op_start,
        )
        if data is None:
            if self.depth == 0:
                self.fail("the file reader's view of diverging FRAMEs could not be re-read", 0)
            return
        other = PickleVM(
            Source(io.BytesIO(view), size=len(view)),
            location=self.location.inside("<as pickle.load(file) reads it>"),
            allowlist=self.allowlist,
            limits=self.limits,
            build_hook=self.build_hook,
            depth=self.depth + 1,
            single=self.single,
            fast=self.fast,
        )
        other._run_all()
        seen = {(f.rule, f.subject) for f in self.findings}
        self.findings.extend(f for f in other.findings if (f.rule, f.subject) not in seen)
        self.unscannable.extend(other.unscannable)

    def looks_like_pickle(self, *, complete: bool = True, strict: bool = False) -> bool | None:
        """True when the walk shows a real pickle, not other data that happens to start with an
        opcode: the unpickler imported or called something before failing, read the whole
        stream, read a meaningful prefix (8 opcodes, or a first pickle of 3 after a PROTO
        header: text never starts with one), ran out of data after a PROTO header with every
        opcode valid (a pickle cut short), or a pickle header is followed by junk and a
        known-dangerous payload. With ``complete=False`` the stream was only a prefix of the
        data: None when running out of it is all that is known. ``strict`` (bytes that are
        numbers unless proven otherwise, such as a tensor's storage) does not count a walk a
        resource limit stopped within its first opcodes, with no PROTO header.
        """
        if self.acted or self.clean_ops >= 8 or (self.proto_first and self.first_ops >= 3):
            return True
        if self.proto_first and self.salvaged_threat:
            return True
        if strict and self.limited and not self.proto_first and self.ops < 8:
            # Stopped by a budget a few opcodes in, with no header: random bytes do that
            # (EMPTY_DICT then LONG_BINPUT of a huge index), too little to call it a pickle.
            return False
        if self.first_error is None:
            return self.pickles >= 1 and self.ops >= 2
        if self.cut_short:
            if not complete:
                return None
            return self.proto_first
        return False

    def run_one(self) -> None:
        """Walk one pickle up to STOP (the quick pass unless ``fast`` is off)."""
        if self.fast:
            run_fast(self)
        else:
            self.run_exact()

    def _salvage(self) -> None:
        """After a structural error, re-synchronise: try to parse from every later offset where
        an opcode that can import something could start, and report what those parses import.
        """
        if self.depth >= self.limits.max_nesting:
            return
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
            fast=self.fast,
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
            probe.reset()
            probe.findings = []
            probe._seen = set()
            with contextlib.suppress(PickleError):
                probe.run_one()
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

    def _nested(self, args: Any) -> None:
        """A loader called on inline bytes: scan those bytes as a pickle too."""
        data = args.items[0] if isinstance(args, Seq) and args.items else None
        if not isinstance(data, bytes) or self.depth >= self.limits.max_nesting:
            return
        inner = PickleVM(
            Source(io.BytesIO(data), size=len(data)),
            location=self.location.inside(f"<nested pickle @ {self.op_start}>"),
            allowlist=self.allowlist,
            limits=self.limits,
            depth=self.depth + 1,
            fast=self.fast,
        )
        inner.run()
        self.findings.extend(inner.findings)
        # A nested blob that is not a pickle (marshal, npy) is not a scan failure of this file.

    # ---- judging the interpreter's events --------------------------------------------------

    def on_malformed(self, reason: str, offset: int) -> None:
        """The file is unscannable from here (the real unpickler stops)."""
        self.fail(f"pickle is malformed: {reason} (the real unpickler stops here)", offset)

    def on_global(self, module: str, name: str, effective: tuple[str, str], offset: int) -> bool:
        """Check an import against the allow-list; rank and report what it refuses."""
        allowed = self.allowlist.allows(*effective)
        if not allowed:
            # Ranked first: one finding per rule and subject is kept, and it must be the worst.
            severity, why = max(
                rank_global(module, name), rank_global(*effective), key=lambda r: r[0]
            )
            subject = f"{effective[0]}.{effective[1]}"
            written = f" (written as {module}.{name})" if effective != (module, name) else ""
            self.find(
                PICKLE_GLOBAL, severity, subject, f"imports {subject}{written}: {why}", offset
            )
        if self.proto < 4 and "." in name:
            self.find(
                PICKLE_GLOBAL,
                Severity.MEDIUM,
                f"{module}.{name}",
                "dotted name below protocol 4: some unpicklers resolve it attribute by attribute",
                offset,
            )
        return allowed

    def on_dynamic_global(self, offset: int) -> None:
        """A name computed at load time cannot be checked: critical."""
        self.find(
            PICKLE_DYNAMIC_GLOBAL,
            Severity.CRITICAL,
            "STACK_GLOBAL",
            "imports a global whose name is computed at load time, so it cannot be checked",
            offset,
        )

    def on_call(self, func: GlobalRef | Made, args: Any, how: str) -> None:
        """Report a call of a call's result; scan bytes handed to a loader."""
        if isinstance(func, Made):
            self.find(
                PICKLE_CALL_RESULT,
                Severity.HIGH,
                how,
                f"{how} calls an object returned by another call (attribute-chain gadget)",
                self.op_start,
            )
        elif (func.module, func.name) in _LOADERS:
            self._nested(args)

    def on_mutate_global(self, target: GlobalRef, how: str) -> None:
        """Modifying an imported object changes it for the whole process."""
        self.find(
            PICKLE_MUTATES_GLOBAL,
            Severity.HIGH,
            f"{target!r}",
            f"{how} modifies the imported object {target!r} itself, which changes it for "
            "the whole process",
            self.op_start,
        )

    def on_build(self, made: Made) -> None:
        """Hand the built value to the format's hook (joblib's inline arrays)."""
        if self.build_hook is not None:
            self.build_hook(self, made)

    def on_memo_index(self, idx: int) -> None:
        """A huge memo index is a denial of service on the real unpickler."""
        self.find(
            PICKLE_MEMO_INDEX,
            Severity.MEDIUM,
            f"memo[{idx}]",
            "a huge memo index makes the real unpickler allocate memory in proportion "
            "to it (denial of service)",
            self.op_start,
        )

    def on_extension(self, code: int) -> None:
        """An extension code imports whatever the process registered: unknowable."""
        self.find(
            PICKLE_EXTENSION,
            Severity.HIGH,
            f"EXT {code}",
            "imports whatever global the loading process registered in copyreg under "
            "this extension code; it cannot be checked",
            self.op_start,
        )
