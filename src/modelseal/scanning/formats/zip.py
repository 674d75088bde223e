"""Zip archives (PyTorch checkpoints, TorchScript, .npz, .keras, nested zips).

The central directory lists members (as torch's reader and Python's ``zipfile`` do); each member
is read from its local header ourselves, so local/central name mismatches, bad CRCs and odd flags
become findings instead of stopping the scan. Every member is recognised by content and decoded
as it streams, charged to the file's budget; tensor storage records are decoded too (a storage
can be a deflate bomb) and checked for content another reader would run.
"""

from __future__ import annotations

import re
import struct
import zipfile
import zlib
from typing import BinaryIO, cast

from modelseal.scanning import rules
from modelseal.scanning.codecs import decoded
from modelseal.scanning.context import Context, peek, scan_stream
from modelseal.scanning.formats.compressed import scan_forward
from modelseal.scanning.report import Location, Severity
from modelseal.scanning.sniff import sniff
from modelseal.scanning.streams import Forward, SliceFile, reader

_TORCH_STORAGE = re.compile(r"(?:^|/)data/\d+\Z")
_TS_CODE = re.compile(r"(?:^|/)code/.*\.py\Z")
# TorchScript ops that read or write files or load further models.
_TS_DANGEROUS = re.compile(
    r"\b(?:ops\.aten\.from_file|aten::from_file|torch\.from_file|torch\.save|torch\.load|"
    r"ops\.aten\.save|aten::save|torch\.ops\.(?!aten\b|prim\b|quantized\b)[A-Za-z_]\w*)"
)


def _name_problems(name: str) -> str | None:
    if "\x00" in name:
        return "contains a NUL byte"
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        return "is an absolute path"
    if any(part == ".." for part in re.split(r"[\\/]", name)):
        return "climbs out of the archive with '..'"
    if "\\" in name:
        return "uses backslashes, which readers split differently"
    if any(ord(c) < 32 or ord(c) == 0x7F for c in name):
        return "contains control characters"
    return None


def _storage_member(infos_prefixes: set[str], name: str) -> bool:
    return any(
        name.startswith(p) and _TORCH_STORAGE.search(name[len(p) :]) is not None
        for p in infos_prefixes
    )


def scan_zip(
    ctx: Context, stream: BinaryIO, size: int | None, location: Location, depth: int
) -> None:
    """Scan every member of a zip archive as Python's zipfile and torch's reader see it, plus
    what only other readers see (see :mod:`.zipviews`)."""
    ctx.saw("zip")
    try:
        zf = zipfile.ZipFile(stream)
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        ctx.fail(location, f"zip archive is unreadable: {exc}")
        return
    if len(infos) > ctx.options.max_members:
        ctx.find(
            rules.ZIP_TOO_MANY_MEMBERS,
            Severity.HIGH,
            location,
            "members",
            f"{len(infos)} members exceed the limit of {ctx.options.max_members}",
        )
        ctx.fail(location, "too many archive members to scan")
        return
    names = [i.filename for i in infos]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            ctx.find(
                rules.ZIP_DUPLICATE_NAME,
                Severity.HIGH,
                location.inside(name),
                name,
                "two members share this name; readers disagree on which one they load",
            )
        seen.add(name)
    prefixes = {n[: -len("data.pkl")] for n in names if n.endswith("data.pkl")}
    if prefixes:
        torchscript = any(n.startswith(p + "code/") for p in prefixes for n in names)
        ctx.saw("torchscript" if torchscript else "pytorch-zip")
    if any(n.endswith(".npy") for n in names) and all(n.endswith(".npy") for n in names):
        ctx.saw("npz")
    for info in infos:
        ctx.budget.check_time()
        _scan_member(ctx, stream, info, location, depth, prefixes)
    if size is not None:
        views = ctx.scanners.get("zip-views")
        if views is not None:
            views(ctx, stream, size, location, depth)


def scan_member(
    ctx: Context, stream: BinaryIO, info: zipfile.ZipInfo, location: Location, depth: int
) -> None:
    """Scan one member described by ``info`` (a member only some readers see)."""
    _scan_member(ctx, stream, info, location, depth, set())


def _scan_member(
    ctx: Context,
    stream: BinaryIO,
    info: zipfile.ZipInfo,
    location: Location,
    depth: int,
    prefixes: set[str],
) -> None:
    loc = location.inside(info.filename)
    problem = _name_problems(info.filename)
    if problem:
        ctx.find(
            rules.ZIP_MEMBER_NAME,
            Severity.MEDIUM,
            loc,
            info.filename,
            f"member name {problem}; extraction or lookup may go somewhere unexpected",
        )
    if info.is_dir() and info.file_size == 0:
        return
    if info.flag_bits & 0x1:
        ctx.find(
            rules.ZIP_ENCRYPTED,
            Severity.HIGH,
            loc,
            info.filename,
            "encrypted member: its content cannot be inspected",
        )
        ctx.fail(loc, "encrypted zip member cannot be scanned")
        return
    stream.seek(info.header_offset)
    header = stream.read(30)
    if len(header) < 30 or header[:4] != b"PK\x03\x04":
        ctx.fail(loc, "zip member has no local header where the directory points")
        return
    (_, _, flags, method, _, _, crc, csize, usize, n_len, e_len) = struct.unpack(
        "<4s5HLLLHH", header
    )
    local_name = stream.read(n_len)
    central_name = info.orig_filename.encode(
        "utf-8" if info.flag_bits & 0x800 else "cp437", "replace"
    )
    if local_name != central_name:
        ctx.find(
            rules.ZIP_NAME_MISMATCH,
            Severity.HIGH,
            loc,
            local_name.decode("utf-8", "replace"),
            "local header name differs from the central directory: tools that read the "
            "archive sequentially see a different member than torch does",
        )
    # With a data descriptor the local sizes may be zero; 0xFFFFFFFF defers to the zip64 extra.
    sizes_differ = not flags & 0x8 and (
        crc != info.CRC
        or usize not in (info.file_size, 0xFFFFFFFF)
        or csize not in (info.compress_size, 0xFFFFFFFF)
    )
    if method != info.compress_type or (flags & 0x1) != (info.flag_bits & 0x1) or sizes_differ:
        ctx.find(
            rules.ZIP_HEADER_MISMATCH,
            Severity.MEDIUM,
            loc,
            "local header",
            "local header method, flags, sizes or CRC differ from the central directory: "
            "sequential readers see other data than the directory describes",
        )
    data_offset = info.header_offset + 30 + n_len + e_len
    raw = SliceFile(stream, data_offset, info.compress_size)
    storage = _storage_member(prefixes, info.filename)
    if info.compress_type == zipfile.ZIP_STORED:
        if info.compress_size != info.file_size:
            ctx.find(
                rules.ZIP_SIZE_MISMATCH,
                Severity.MEDIUM,
                loc,
                "size",
                "stored member whose sizes disagree",
            )
        if storage:
            # Unbuffered: a sniff reads 4 KiB of the record, not a 1 MiB buffer of it.
            _check_storage(ctx, raw, info.compress_size, loc, depth)  # type: ignore[arg-type]
            return
        member: BinaryIO = reader(raw)
        if _crc_of(member) != info.CRC:
            _bad_crc(ctx, loc)
        _scan_content(ctx, member, info.compress_size, info, loc, depth, prefixes)
        return
    codec = _CODECS.get(info.compress_type)
    if codec is None:
        ctx.fail(loc, f"zip compression method {info.compress_type} is not supported")
        return
    try:
        inner = decoded(codec, reader(raw), ctx.budget, f"zip member ({codec})", crc=True)
    except (OSError, EOFError, ValueError) as exc:
        ctx.fail(loc, f"zip member cannot be decompressed: {exc}")
        return
    try:
        if storage:
            _check_storage(ctx, cast(BinaryIO, inner), None, loc, depth)
        else:
            _scan_content(ctx, cast(BinaryIO, inner), None, info, loc, depth, prefixes)
        inner.seek(0, 2)  # decode the rest: a bomb past where the scanner stopped still counts
    except (zlib.error, OSError, EOFError, ValueError) as exc:
        ctx.fail(loc, f"zip member cannot be decompressed: {exc}")
        return
    finally:
        inner.close()
    if inner.crc != info.CRC:
        _bad_crc(ctx, loc)
    if inner.produced != info.file_size:
        ctx.find(
            rules.ZIP_SIZE_MISMATCH,
            Severity.MEDIUM,
            loc,
            "size",
            f"member expands to {inner.produced} bytes, the directory says {info.file_size}",
        )


def _bad_crc(ctx: Context, loc: Location) -> None:
    ctx.find(
        rules.ZIP_BAD_CRC,
        Severity.MEDIUM,
        loc,
        "CRC-32",
        "member data does not match its CRC: readers that skip the check see content "
        "that others reject",
    )


def _scan_content(
    ctx: Context,
    member: BinaryIO,
    size: int | None,
    info: zipfile.ZipInfo,
    loc: Location,
    depth: int,
    prefixes: set[str],
) -> None:
    if _TS_CODE.search(info.filename):
        _scan_torchscript_code(ctx, member, loc)
        return
    if isinstance(member, Forward):
        fmt = scan_forward(ctx, member, loc, depth + 1)
    else:
        fmt = scan_stream(ctx, member, size, loc, depth + 1)
    if fmt != "pickle" and any(
        info.filename in (p + "data.pkl", p + "constants.pkl") for p in prefixes
    ):
        ctx.fail(loc, f"torch loads this member as a pickle, but it is {fmt}")


def _check_storage(
    ctx: Context, member: BinaryIO, size: int | None, loc: Location, depth: int
) -> None:
    """A PyTorch storage record is raw bytes torch copies without parsing; but whatever it holds
    is still decoded (bombs count), and content that another reader would run is reported."""
    head = peek(member)
    fmt = sniff(head, size, strict=True)  # numbers unless proven otherwise
    if fmt in ("unknown", "empty", "data", "json", "protobuf", "lightgbm", "safetensors"):
        return
    probe = ctx.probe()
    if isinstance(member, SliceFile):
        member = reader(member)
    if isinstance(member, Forward):
        scan_forward(probe, member, loc, depth + 1)
    else:
        scan_stream(probe, member, size, loc, depth + 1)
    if probe.findings:
        ctx.find(
            rules.ZIP_STORAGE_CONTENT,
            Severity.HIGH,
            loc,
            fmt,
            f"tensor storage record holds {fmt} data with unsafe content: torch copies it as "
            "raw bytes, a reader that takes the record for a file runs it",
        )
        ctx.findings.extend(probe.findings)


_CODECS = {
    zipfile.ZIP_DEFLATED: "deflate",
    zipfile.ZIP_BZIP2: "bz2",
    zipfile.ZIP_LZMA: "zip-lzma",
}


def _crc_of(stream: BinaryIO) -> int:
    crc = 0
    while chunk := stream.read(1 << 20):
        crc = zlib.crc32(chunk, crc)
    stream.seek(0)
    return crc


def _scan_torchscript_code(ctx: Context, member: BinaryIO, loc: Location) -> None:
    """TorchScript source is compiled, not imported, but some ops read/write files."""
    ctx.saw("torchscript")
    text = member.read(64 << 20).decode("utf-8", "replace")
    for m in _TS_DANGEROUS.finditer(text):
        ctx.find(
            rules.TORCHSCRIPT_OP,
            Severity.HIGH,
            loc.at(m.start()),
            m.group(0),
            "TorchScript code calls an op that reads or writes files, loads models or "
            "runs a custom (native) operator",
        )
