"""Zip archives (PyTorch checkpoints, TorchScript, .npz, .keras, nested zips).

The central directory lists members (as torch's reader and Python's ``zipfile`` do); each member
is read from its local header ourselves, so local/central name mismatches, bad CRCs and odd flags
become findings instead of stopping the scan. Every member is recognised by content.
"""

from __future__ import annotations

import re
import struct
import zipfile
import zlib
from typing import BinaryIO, Protocol

from modelseal.scanning import rules
from modelseal.scanning.context import Context, scan_stream
from modelseal.scanning.report import Location, Severity
from modelseal.scanning.streams import SliceFile, reader

_SPOOL = 32 << 20
_TORCH_STORAGE = re.compile(r"(?:^|/)data/\d+\Z")
_TS_CODE = re.compile(r"(?:^|/)code/.*\.py\Z")
# TorchScript ops that read or write files or load further models.
_TS_DANGEROUS = re.compile(
    r"\b(?:ops\.aten\.from_file|aten::from_file|torch\.from_file|torch\.save|torch\.load|"
    r"ops\.aten\.save|aten::save|torch\.ops\.(?!aten\b|prim\b|quantized\b)[A-Za-z_]\w*)"
)


class _Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


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


def _spool(
    ctx: Context, source: _Readable, expected: int, loc: Location, crc_expected: int
) -> BinaryIO:
    """Copy a decompressed member to a spooled temp file, charging the budget, checking CRC."""
    import tempfile

    out = tempfile.SpooledTemporaryFile(max_size=_SPOOL)  # noqa: SIM115 - returned to caller
    crc = 0
    total = 0
    from modelseal.scanning.streams import BudgetExceeded

    while True:
        chunk = source.read(1 << 20)
        if not chunk:
            break
        total += len(chunk)
        if not ctx.budget.spend(len(chunk)):
            out.close()
            raise BudgetExceeded(f"decompressed data exceeds {ctx.budget.limit} bytes")
        crc = zlib.crc32(chunk, crc)
        out.write(chunk)
    if crc != crc_expected:
        ctx.find(
            rules.ZIP_BAD_CRC,
            Severity.MEDIUM,
            loc,
            "CRC-32",
            "member data does not match its CRC: readers that skip the check see content "
            "that others reject",
        )
    if total != expected:
        ctx.find(
            rules.ZIP_SIZE_MISMATCH,
            Severity.MEDIUM,
            loc,
            "size",
            f"member expands to {total} bytes, the directory says {expected}",
        )
    out.seek(0)
    return out  # type: ignore[return-value]


class _Inflate:
    """A raw-deflate stream over a slice of the archive."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._z = zlib.decompressobj(-15)
        self._done = False

    def read(self, n: int = -1) -> bytes:
        out = b""
        while not out and not self._done:
            chunk = self._raw.read(1 << 18)
            if not chunk:
                out = self._z.flush()
                self._done = True
            else:
                out = self._z.decompress(chunk)
                if self._z.eof:
                    self._done = True
        return out


def _crc_of(stream: BinaryIO) -> int:
    crc = 0
    while chunk := stream.read(1 << 20):
        crc = zlib.crc32(chunk, crc)
    stream.seek(0)
    return crc


def scan_zip(
    ctx: Context, stream: BinaryIO, size: int | None, location: Location, depth: int
) -> None:
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
        _scan_member(ctx, stream, info, location, depth, prefixes)


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
    if info.is_dir():
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
    (_, _, flags, method, _, _, _, _, _, n_len, e_len) = struct.unpack("<4s5HLLLHH", header)
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
    if method != info.compress_type or (flags & 0x1) != (info.flag_bits & 0x1):
        ctx.find(
            rules.ZIP_HEADER_MISMATCH,
            Severity.MEDIUM,
            loc,
            "local header",
            "local header flags or method differ from the central directory",
        )
    if any(
        p is not None
        and info.filename.startswith(p)
        and _TORCH_STORAGE.search(info.filename[len(p) :])
        for p in prefixes
    ):
        return  # raw tensor bytes: torch.load copies them, it never parses them
    data_offset = info.header_offset + 30 + n_len + e_len
    raw = SliceFile(stream, data_offset, info.compress_size)
    try:
        if info.compress_type == zipfile.ZIP_STORED:
            member: BinaryIO = reader(raw)
            if not ctx.budget.spend(info.compress_size):
                ctx.fail(loc, "scan budget exhausted")
                return
            if _crc_of(member) != info.CRC:
                ctx.find(
                    rules.ZIP_BAD_CRC,
                    Severity.MEDIUM,
                    loc,
                    "CRC-32",
                    "member data does not match its CRC: readers that skip the check see "
                    "content that others reject",
                )
            if info.compress_size != info.file_size:
                ctx.find(
                    rules.ZIP_SIZE_MISMATCH,
                    Severity.MEDIUM,
                    loc,
                    "size",
                    "stored member whose sizes disagree",
                )
            size: int = info.compress_size
        elif info.compress_type == zipfile.ZIP_DEFLATED:
            member = _spool(
                ctx,
                _Inflate(reader(raw)),
                info.file_size,
                loc,
                info.CRC,
            )
            size = _size_of(member)
        elif info.compress_type in (zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
            import bz2
            import lzma

            if info.compress_type == zipfile.ZIP_BZIP2:
                dec: BinaryIO = bz2.BZ2File(reader(raw))  # type: ignore[assignment]
            else:
                dec = _lzma_member(reader(raw), lzma)
            member = _spool(ctx, dec, info.file_size, loc, info.CRC)
            size = _size_of(member)
        else:
            ctx.fail(loc, f"zip compression method {info.compress_type} is not supported")
            return
    except (zlib.error, OSError, EOFError, ValueError) as exc:
        ctx.fail(loc, f"zip member cannot be decompressed: {exc}")
        return
    if _TS_CODE.search(info.filename):
        _scan_torchscript_code(ctx, member, loc)
        return
    fmt = scan_stream(ctx, member, size, loc, depth + 1)
    if fmt != "pickle" and any(
        info.filename in (p + "data.pkl", p + "constants.pkl") for p in prefixes
    ):
        ctx.fail(loc, f"torch loads this member as a pickle, but it is {fmt}")


def _size_of(stream: BinaryIO) -> int:
    end = stream.seek(0, 2)
    stream.seek(0)
    return end


def _lzma_member(raw: BinaryIO, lzma: object) -> BinaryIO:
    """Zip's LZMA members carry a 4-byte version/size prefix and raw LZMA1 properties."""
    import lzma as lz

    head = raw.read(4)
    psize = int.from_bytes(head[2:4], "little")
    props = raw.read(psize)
    filt = lz._decode_filter_properties(lz.FILTER_LZMA1, props)  # type: ignore[attr-defined]
    dec = lz.LZMADecompressor(lz.FORMAT_RAW, filters=[filt])

    class _R:
        def read(self, n: int = -1) -> bytes:
            while True:
                chunk = raw.read(1 << 18)
                if not chunk or dec.eof:
                    return b""
                out = dec.decompress(chunk)
                if out:
                    return out

    return _R()  # type: ignore[return-value]


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
