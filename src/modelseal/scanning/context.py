"""What a format scanner works with: the scan's options, its state, and dispatch by content.

This module sits below every format scanner (``scanning/formats/*``) and below the engine that
walks paths (``scanning/engine.py``). Format scanners report into a :class:`Context` and hand
nested content back to :func:`scan_stream`, which recognises it and calls the scanner for its
format from the table the context carries (``scanning/formats/__init__.py`` builds it; the
engine passes it in), so no format module imports the engine and the engine imports no format
by name.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib
from collections.abc import Callable, Mapping
from typing import BinaryIO

from modelseal.scanning.allowlist import Allowlist
from modelseal.scanning.pickle_vm import BuildHook, Limits, PickleVM
from modelseal.scanning.report import Finding, Location, Severity, Unscannable
from modelseal.scanning.rules import ARCHIVE_BOMB, ARCHIVE_DEPTH, Rule
from modelseal.scanning.sniff import HEAD, sniff
from modelseal.scanning.source import Source
from modelseal.scanning.streams import Budget, BudgetExceeded, Forward

# Formats that hold no executable content and that the scanner accepts as plain data.
DATA_FORMATS = frozenset({"json", "empty", "data"})


@dataclasses.dataclass(frozen=True)
class Options:
    """How a scan behaves (see :func:`modelseal.scan`)."""

    allowlist: Allowlist = dataclasses.field(default_factory=Allowlist)
    limits: Limits = dataclasses.field(default_factory=Limits)
    strict: bool = False
    max_depth: int = 8
    # Decoding budgets per top-level file (containers and compressed streams, as they stream):
    # total decoded bytes, expansion ratio once ratio_floor bytes are out (deflate tops out
    # near 1032:1, so every deflate bomb and every bz2/xz/zstd bomb passes 200:1), wall time.
    max_expanded: int = 16 << 30
    max_ratio: float = 200.0
    ratio_floor: int = 32 << 20
    max_seconds: float = 300.0
    max_members: int = 100_000


class Context:
    """Mutable state of scanning one top-level file.

    ``scanners`` maps each format name :func:`~modelseal.scanning.sniff.sniff` returns to the
    scanner for it (:data:`modelseal.scanning.formats.SCANNERS`).
    """

    def __init__(
        self, options: Options, path: str, *, scanners: Mapping[str, Scanner] | None = None
    ) -> None:
        self.options = options
        self.path = path
        self.scanners: Mapping[str, Scanner] = scanners if scanners is not None else {}
        self.findings: list[Finding] = []
        self.unscannable: list[Unscannable] = []
        self.formats: list[str] = []
        self.budget = Budget(
            options.max_expanded,
            max_ratio=options.max_ratio,
            ratio_floor=options.ratio_floor,
            seconds=options.max_seconds,
        )
        self.fallback_pickle = False  # set when content of no known format parsed as a pickle
        self.last_json_kind = "json"  # what the JSON scanner recognised ("keras-config")

    def probe(self) -> Context:
        """A fresh context for a trial scan: same options, scanners and budget, no results."""
        probe = Context(self.options, self.path, scanners=self.scanners)
        probe.budget = self.budget
        return probe

    def find(
        self, rule: Rule, severity: Severity, location: Location, subject: str, message: str
    ) -> None:
        """Record a finding of ``rule`` (a constant of :mod:`modelseal.scanning.rules`)."""
        self.findings.append(Finding(rule.id, severity, location, subject, message))

    def fail(self, location: Location, reason: str) -> None:
        """Record a region that could not be scanned completely (never clean)."""
        self.unscannable.append(Unscannable(location, reason))

    def saw(self, fmt: str) -> None:
        """Note a format met in the file (reported once, in order)."""
        if fmt not in self.formats:
            self.formats.append(fmt)

    def scan_stream(
        self, stream: BinaryIO, size: int | None, location: Location, depth: int = 0
    ) -> str:
        """Recognise nested content and scan it (see :func:`scan_stream`)."""
        return scan_stream(self, stream, size, location, depth)

    def run_pickle(
        self,
        stream: BinaryIO,
        size: int | None,
        location: Location,
        *,
        build_hook: BuildHook | None = None,
        after_stop: Callable[[PickleVM], None] | None = None,
        single: bool = False,
        start: int = 0,
    ) -> PickleVM:
        """Scan every pickle in ``stream`` and merge its results."""
        vm = PickleVM(
            Source(stream, size=size, start=start),
            location=location,
            allowlist=self.options.allowlist,
            limits=self.options.limits,
            build_hook=build_hook,
            after_stop=after_stop,
            single=single,
        )
        vm.run()
        self.findings.extend(vm.findings)
        self.unscannable.extend(vm.unscannable)
        return vm


Scanner = Callable[[Context, BinaryIO, "int | None", Location, int], None]
"""A format scanner: ``scan_<format>(ctx, stream, size, location, depth)``."""


def peek(stream: BinaryIO, n: int = HEAD) -> bytes:
    """The first ``n`` bytes of a seekable stream, leaving its position unchanged."""
    pos = stream.tell()
    head = stream.read(n)
    stream.seek(pos)
    return head


# What reading hostile bytes raises, and what parsers of them (ours and the stdlib's) raise
# besides: each is a part that cannot be scanned, never a traceback.
_READ_FAILURES = (OSError, EOFError, ValueError)
_PARSER_FAILURES = (
    LookupError, TypeError, AttributeError, ArithmeticError, RuntimeError, MemoryError,
    struct.error, zlib.error,
)  # fmt: skip


def scan_stream(
    ctx: Context, stream: BinaryIO, size: int | None, location: Location, depth: int = 0
) -> str:
    """Recognise ``stream`` (seekable, positioned at its start) and scan it; returns the format."""
    if depth > ctx.options.max_depth:
        ctx.find(
            ARCHIVE_DEPTH,
            Severity.HIGH,
            location,
            "nesting",
            f"archives nested deeper than {ctx.options.max_depth} levels",
        )
        ctx.fail(location, f"archives nested deeper than {ctx.options.max_depth} levels")
        return "nested"
    head = peek(stream)
    fmt = sniff(head, size)
    if fmt in DATA_FORMATS:
        if fmt == "json":
            # Recognised by content: a Keras config is scanned, other JSON is data.
            ctx.last_json_kind = "json"
            ctx.scanners["json"](ctx, stream, size, location, depth)
            return ctx.last_json_kind
        return fmt
    ctx.fallback_pickle = False
    try:
        ctx.scanners[fmt](ctx, stream, size, location, depth)
    except BudgetExceeded as exc:
        _over_budget(ctx, location, exc)
    except _READ_FAILURES as exc:
        ctx.fail(location, f"cannot read {fmt} data: {exc}")
    except _PARSER_FAILURES as exc:
        # Parsers of hostile data (ours and the stdlib's) fail in many ways: fail closed.
        ctx.fail(location, f"{fmt} data could not be parsed ({type(exc).__name__}: {exc})")
    if fmt == "unknown":
        # Text may parse as a protocol-0 pickle and still be the YAML a loader reads.
        kind = _scan_text(ctx, stream, size, location, depth)
        result = "pickle" if ctx.fallback_pickle else kind
    elif fmt == "protobuf" and ctx.fallback_pickle:
        result = "pickle"
    else:
        result = fmt
    alternatives = ctx.scanners.get("alternatives")
    if alternatives is not None and size is not None and not isinstance(stream, Forward):
        # The same bytes as other readers take them (a tar header, a zip found from the end).
        try:
            stream.seek(0)
            alternatives(ctx, stream, size, location, depth)
        except BudgetExceeded as exc:
            _over_budget(ctx, location, exc)
        except (*_READ_FAILURES, *_PARSER_FAILURES) as exc:
            # zipfile and tarfile on hostile bytes fail in many ways: fail closed.
            ctx.fail(location, f"another reading of the data could not be parsed: {exc}")
    return result


def _over_budget(ctx: Context, location: Location, exc: BudgetExceeded) -> None:
    """A bomb finding (once per file) for size and ratio, and unscannable either way."""
    if exc.bomb and not any(f.rule == ARCHIVE_BOMB.id for f in ctx.findings):
        ctx.find(
            ARCHIVE_BOMB,
            Severity.HIGH,
            location,
            "decompression",
            f"{exc}: a decompression bomb, or a model larger than the scan budget",
        )
    if not any(u.reason == str(exc) for u in ctx.unscannable):
        ctx.fail(location, str(exc))


def _scan_text(
    ctx: Context, stream: BinaryIO, size: int | None, location: Location, depth: int
) -> str:
    """Content of no binary format may be a YAML or XML config that makes loaders run code
    (the ``text`` scanner records the kind of text it found in ``ctx.last_json_kind``)."""
    scanner = ctx.scanners.get("text")
    if scanner is None:
        return "unknown"
    ctx.last_json_kind = "unknown"
    try:
        stream.seek(0)  # a forward-only decoded stream may refuse: then it cannot be read again
        scanner(ctx, stream, size, location, depth)
    except (OSError, ValueError, LookupError, TypeError, RecursionError, MemoryError) as exc:
        ctx.fail(location, f"text could not be parsed ({type(exc).__name__}: {exc})")
        return "unknown"
    return ctx.last_json_kind
