"""Walk paths, recognise each stream by content, and hand it to the scanner for its format."""

from __future__ import annotations

import dataclasses
import os
import stat
import struct
import zlib
from collections.abc import Callable, Iterable
from importlib import import_module
from pathlib import Path
from typing import Any, BinaryIO, cast

from modelseal.fsinput import NOT_REGULAR, NotRegularFileError, open_regular
from modelseal.scanning.allowlist import Allowlist
from modelseal.scanning.errors import ScanPathError
from modelseal.scanning.pickle_vm import BuildHook, Limits, PickleVM
from modelseal.scanning.report import (
    FileReport,
    Finding,
    Location,
    ScanReport,
    Severity,
    Unscannable,
    sort_findings,
)
from modelseal.scanning.sniff import HEAD, PICKLE_FIRST, sniff
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
    # total decoded bytes, expansion ratio of one stream once it has produced ratio_floor bytes
    # (deflate tops out near 1032:1, so only bz2/xz/zstd bombs and stacked layers pass 200:1
    # at that size), and wall time.
    max_expanded: int = 16 << 30
    max_ratio: float = 200.0
    ratio_floor: int = 32 << 20
    max_seconds: float = 300.0
    max_members: int = 100_000


class Context:
    """Mutable state of scanning one top-level file."""

    def __init__(self, options: Options, path: str) -> None:
        self.options = options
        self.path = path
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

    def find(
        self, rule: str, severity: Severity, location: Location, subject: str, message: str
    ) -> None:
        self.findings.append(Finding(rule, severity, location, subject, message))

    def fail(self, location: Location, reason: str) -> None:
        self.unscannable.append(Unscannable(location, reason))

    def saw(self, fmt: str) -> None:
        if fmt not in self.formats:
            self.formats.append(fmt)

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


_SCANNERS: dict[str, tuple[str, str]] = {
    "pickle": ("pickles", "scan_pickle_file"),
    "unknown": ("pickles", "scan_unknown"),
    "zip": ("zip", "scan_zip"),
    "gzip": ("compressed", "scan_compressed"),
    "bz2": ("compressed", "scan_compressed"),
    "xz": ("compressed", "scan_compressed"),
    "lzma": ("compressed", "scan_compressed"),
    "zlib-joblib": ("compressed", "scan_compressed"),
    "zlib": ("compressed", "scan_compressed"),
    "lz4": ("compressed", "scan_compressed"),
    "zstd": ("compressed", "scan_compressed"),
    "7z": ("sevenzip", "scan_7z"),
    "tar": ("tar", "scan_tar"),
    "zip-views": ("polyglot", "scan_zip_views"),
    "alternatives": ("polyglot", "scan_alternatives"),
    "npy": ("npy", "scan_npy"),
    "hdf5": ("hdf5", "scan_hdf5"),
    "gguf": ("gguf", "scan_gguf"),
    "safetensors": ("safetensors", "scan_safetensors"),
    "protobuf": ("protobuf", "scan_protobuf"),
    "lightgbm": ("lightgbm", "scan_lightgbm"),
    "native": ("native", "scan_native"),
    "json": ("keras", "scan_json"),
}


def _scanner(fmt: str) -> Scanner:
    module, attr = _SCANNERS[fmt]
    scanner: Scanner = getattr(import_module(f"modelseal.scanning.formats.{module}"), attr)
    return scanner


def peek(stream: BinaryIO, n: int = HEAD) -> bytes:
    """The first ``n`` bytes of a seekable stream, leaving its position unchanged."""
    pos = stream.tell()
    head = stream.read(n)
    stream.seek(pos)
    return head


def scan_stream(
    ctx: Context, stream: BinaryIO, size: int | None, location: Location, depth: int = 0
) -> str:
    """Recognise ``stream`` (seekable, positioned at its start) and scan it; returns the format."""
    if depth > ctx.options.max_depth:
        ctx.find(
            "archive.depth",
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
            _scanner("json")(ctx, stream, size, location, depth)
            return ctx.last_json_kind
        return fmt
    ctx.fallback_pickle = False
    try:
        _scanner(fmt)(ctx, stream, size, location, depth)
    except BudgetExceeded as exc:
        if exc.bomb and not any(f.rule == "archive.bomb" for f in ctx.findings):
            ctx.find(
                "archive.bomb",
                Severity.HIGH,
                location,
                "decompression",
                f"{exc}: a decompression bomb, or a model larger than the scan budget",
            )
        if not any(u.reason == str(exc) for u in ctx.unscannable):
            ctx.fail(location, str(exc))
    except (OSError, EOFError, ValueError) as exc:
        ctx.fail(location, f"cannot read {fmt} data: {exc}")
    except (
        LookupError,
        TypeError,
        AttributeError,
        ArithmeticError,
        RuntimeError,
        MemoryError,
        UnicodeError,
        struct.error,
        zlib.error,
    ) as exc:
        # Parsers of hostile data (ours and the stdlib's) fail in many ways: fail closed.
        ctx.fail(location, f"{fmt} data could not be parsed ({type(exc).__name__}: {exc})")
    result = "pickle" if fmt in ("unknown", "protobuf") and ctx.fallback_pickle else fmt
    if size is not None and not isinstance(stream, Forward):
        # The same bytes as other readers take them (a tar header, a zip at the end).
        try:
            stream.seek(0)
            _scanner("alternatives")(ctx, stream, size, location, depth)
        except BudgetExceeded as exc:
            ctx.fail(location, str(exc))
        except (OSError, EOFError, ValueError, LookupError, struct.error, zlib.error) as exc:
            ctx.fail(location, f"alternative reading could not be parsed: {exc}")
    return result


def _special(path: Path) -> bool:
    """True for a FIFO, device or socket (opening a socket fails with ENXIO, not a type)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def scan_file(path: Path, display: str, options: Options) -> FileReport:
    ctx = Context(options, display)
    location = Location(display)
    try:
        fd = open_regular(path)
    except OSError as exc:
        if isinstance(exc, NotRegularFileError) or _special(path):
            # A FIFO, device or socket inside a scanned directory: never opened for reading (it
            # could block or never end), never skipped in silence.
            ctx.fail(location, f"{NOT_REGULAR}: not scanned")
            return FileReport(display, ("special",), (), tuple(ctx.unscannable), 0)
        raise ScanPathError(
            f"cannot read {display!r}: {exc.strerror or exc}",
            hint="check the path and its permissions",
        ) from None
    try:
        with os.fdopen(fd, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            ctx.budget.file_size = size
            fmt = scan_stream(ctx, fh, size, location)
    except OSError as exc:
        raise ScanPathError(
            f"cannot read {display!r}: {exc.strerror or exc}",
            hint="check the path and its permissions",
        ) from None
    if fmt == "unknown" and options.strict:
        ctx.fail(location, "format not recognised (--strict treats this as unscannable)")
    formats = tuple(ctx.formats) or (fmt,)
    return FileReport(display, formats, sort_findings(ctx.findings), tuple(ctx.unscannable), size)


def iter_files(paths: Iterable[str | os.PathLike[str]]) -> Iterable[tuple[Path, str]]:
    """Every file under ``paths`` (directories recursively, symlinks to directories not
    followed); FIFOs, devices and sockets found in a directory are yielded too, so the scan
    reports them as unscannable instead of skipping them."""
    for raw in paths:
        path = Path(raw)
        if path.is_symlink() and path.is_dir():
            raise ScanPathError(
                f"{str(raw)!r} is a symlink to a directory", hint="pass the directory itself"
            )
        if path.is_file():
            yield path, str(raw)
        elif path.is_dir():
            for root, dirs, files in os.walk(path, followlinks=False):
                dirs.sort()
                for name in sorted(files):
                    full = Path(root) / name
                    if full.is_file() or (full.exists() and not full.is_dir()):
                        # a link to a file is scanned: loaders follow it; a dangling link is
                        # nothing a loader can read
                        yield full, str(full)
        elif path.exists():
            raise ScanPathError(
                f"{str(raw)!r} is not a regular file or directory",
                hint="scan model files or directories",
            )
        else:
            raise ScanPathError(f"{str(raw)!r} does not exist", hint="check the path")


def scan_paths(paths: Iterable[str | os.PathLike[str]], options: Options) -> ScanReport:
    files = [scan_file(p, d, options) for p, d in iter_files(paths)]
    return ScanReport(tuple(files))


def scan_bytes(data: Any, options: Options, name: str = "<bytes>") -> FileReport:
    """Scan an in-memory blob (bytes, bytearray, mmap, memoryview) without copying it; used by
    verified loading, tests and fuzzing."""
    from modelseal.memio import ViewReader

    ctx = Context(options, name)
    size = memoryview(data).nbytes
    ctx.budget.file_size = size
    fmt = scan_stream(ctx, cast(BinaryIO, ViewReader(data)), size, Location(name))
    if fmt == "unknown" and options.strict:
        ctx.fail(Location(name), "format not recognised (--strict treats this as unscannable)")
    return FileReport(
        name,
        tuple(ctx.formats) or (fmt,),
        sort_findings(ctx.findings),
        tuple(ctx.unscannable),
        size,
    )


__all__ = ["PICKLE_FIRST", "Context", "Options", "scan_bytes", "scan_paths", "scan_stream"]
