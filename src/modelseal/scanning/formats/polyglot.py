"""Polyglots: one file that different readers take for different things.

A loader decides what a file is in its own way: ``torch.load`` takes a file that starts with a
local zip header for a zip and tries ``tarfile`` (which checks a header checksum, not a magic)
on anything else; Python's ``zipfile`` (Keras, and everything built on it) finds an archive by
the *last* end-of-central-directory record, wherever the data before it came from; a streaming
unzip walks local headers from the start and never reads the central directory. Every one of
these interpretations is scanned, and a file that has more than one is flagged.
"""

from __future__ import annotations

import itertools
import struct
import zipfile
from typing import BinaryIO

from modelseal.scanning import rules
from modelseal.scanning.context import Context, peek, scan_stream
from modelseal.scanning.formats.tar import scan_tar
from modelseal.scanning.formats.zip import scan_member, scan_zip
from modelseal.scanning.report import Location, Severity
from modelseal.scanning.sniff import is_tar_header, sniff
from modelseal.scanning.streams import SliceFile, reader

_EOCD = b"PK\x05\x06"
_TAIL = (1 << 16) + 22
_LOCAL = b"PK\x03\x04"


def _eocd_candidates(stream: BinaryIO, size: int) -> list[tuple[int, int]]:
    """(offset, end) of every complete end-of-central-directory record in the tail."""
    start = max(0, size - _TAIL)
    stream.seek(start)
    tail = stream.read(size - start)
    found = []
    at = tail.find(_EOCD)
    while at >= 0:
        if at + 22 <= len(tail):
            comment = struct.unpack("<H", tail[at + 20 : at + 22])[0]
            found.append((start + at, min(size, start + at + 22 + comment)))
        at = tail.find(_EOCD, at + 1)
    return found


def _infos(stream: BinaryIO, end: int) -> list[zipfile.ZipInfo] | None:
    try:
        return zipfile.ZipFile(reader(SliceFile(stream, 0, end))).infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        return None


def _key(info: zipfile.ZipInfo) -> tuple[str, int, int, int]:
    return (info.filename, info.header_offset, info.CRC, info.compress_size)


def scan_alternatives(
    ctx: Context, stream: BinaryIO, size: int | None, location: Location, depth: int
) -> None:
    """Scan the tar and zip readings of a stream whose content sniffs as something else."""
    head = peek(stream)
    fmt = sniff(head, size)
    if fmt != "tar" and is_tar_header(head):
        ctx.find(
            rules.POLYGLOT_TAR,
            Severity.HIGH,
            location,
            f"tar and {fmt}",
            f"the file is a valid tar archive and also {fmt} data: torch's legacy loader and "
            "tarfile read the tar, other loaders read something else",
        )
        stream.seek(0)
        scan_tar(ctx, stream, size, location.inside("<as tar>"), depth + 1)
    if fmt == "zip" or size is None or size < 22:
        return
    cands = _eocd_candidates(stream, size)
    if not cands:
        return
    infos = _infos(stream, size)
    if not infos:
        return
    if fmt == "tar" and _inside_one_tar_member(stream, infos, cands[-1][1]):
        return  # a zip stored as a tar member: the tar scan covered it, readers agree
    ctx.find(
        rules.POLYGLOT_ZIP,
        Severity.HIGH,
        location,
        f"zip and {fmt}",
        f"Python's zipfile finds a zip archive at the end of this {fmt} data (it reads the "
        "last end-of-central-directory record): loaders disagree on what the file holds",
    )
    stream.seek(0)
    scan_zip(ctx, stream, size, location.inside("<as zip>"), depth + 1)


def _inside_one_tar_member(stream: BinaryIO, infos: list[zipfile.ZipInfo], end: int) -> bool:
    import tarfile

    start = min(i.header_offset for i in infos)
    stream.seek(0)
    try:
        with tarfile.open(fileobj=stream, mode="r:") as tf:
            return any(
                m.offset_data <= start and end <= m.offset_data + m.size for m in tf if m.isfile()
            )
    except (tarfile.TarError, OSError, EOFError):
        return False


def scan_zip_views(
    ctx: Context, stream: BinaryIO, size: int | None, location: Location, depth: int
) -> None:
    """What readers other than zipfile see in a zip: other end records, members only in the
    local headers, members sharing bytes."""
    if size is None:
        return
    primary = _infos(stream, size)
    if primary is None:
        return
    known = {_key(i) for i in primary}
    cands = _eocd_candidates(stream, size)
    spans = _data_spans(stream, primary) if len(cands) > 1 else []
    for _, end in cands[:-1]:
        other = _infos(stream, end)
        if other is None or {_key(i) for i in other} == known:
            continue
        start = min(i.header_offset for i in other)
        if any(a <= start and end <= b for a, b in spans):
            continue  # an archive stored inside a member: scanned as that member's content
        ctx.find(
            rules.ZIP_MULTIPLE_EOCD,
            Severity.HIGH,
            location,
            "end of central directory",
            "several end-of-central-directory records describe different members: readers "
            "that take another record than zipfile does load other content",
        )
        for info in other:
            if _key(info) not in known:
                known.add(_key(info))
                scan_member(ctx, stream, info, location.inside("<other directory>"), depth)
    if cands and cands[-1][1] < size:
        start = cands[-1][1]
        loc = location.inside(f"<data after the archive @ {start}>")
        ctx.find(
            rules.ZIP_TRAILING_DATA,
            Severity.MEDIUM,
            loc,
            "trailing data",
            "data after the zip's end record that no zip reader covers: another reader may "
            "take it for the file",
        )
        scan_stream(
            ctx, reader(SliceFile(stream, start, size - start)), size - start, loc, depth + 1
        )
    _walk_local_headers(ctx, stream, size, primary, location, depth)


def _data_spans(stream: BinaryIO, infos: list[zipfile.ZipInfo]) -> list[tuple[int, int]]:
    spans = []
    for info in infos:
        fields = _local(stream, info.header_offset)
        if fields is not None:
            start = info.header_offset + 30 + fields[8] + fields[9]
            spans.append((start, start + info.compress_size))
    return spans


def _local(stream: BinaryIO, pos: int) -> tuple[int, ...] | None:
    stream.seek(pos)
    header = stream.read(30)
    if len(header) < 30 or header[:4] != _LOCAL:
        return None
    return struct.unpack("<4x5HLLLHH", header)


def _walk_local_headers(
    ctx: Context,
    stream: BinaryIO,
    size: int,
    primary: list[zipfile.ZipInfo],
    location: Location,
    depth: int,
) -> None:
    """Walk local headers from the start, as a streaming reader does."""
    by_offset = {i.header_offset: i for i in primary}
    spans = []
    for info in primary:
        fields = _local(stream, info.header_offset)
        if fields is not None:
            start = info.header_offset
            spans.append((start, start + 30 + fields[8] + fields[9] + info.compress_size, info))
    spans.sort(key=lambda s: (s[0], s[1]))
    for (_, a_end, a), (b_start, _, b) in itertools.pairwise(spans):
        if a_end > b_start:
            ctx.find(
                rules.ZIP_OVERLAPPING_MEMBERS,
                Severity.HIGH,
                location.inside(b.filename),
                f"{a.filename} / {b.filename}",
                "members share bytes: a construction for decompression bombs and for content "
                "that differs by reader",
            )
            break
    pos = 0
    for _ in range(ctx.options.max_members):
        fields = _local(stream, pos)
        if fields is None:
            return
        _ver, flags, method, _t, _d, crc, csize, usize, n_len, e_len = fields
        known = by_offset.get(pos)
        if known is None:
            stream.seek(pos + 30)
            name = stream.read(n_len).decode("utf-8" if flags & 0x800 else "cp437", "replace")
            loc = location.inside(f"<local header @ {pos}> {name}")
            ctx.find(
                rules.ZIP_HIDDEN_MEMBER,
                Severity.HIGH,
                loc,
                name,
                "a member that only sequential readers see: it is in the local headers but "
                "not in the central directory",
            )
            if flags & 0x8 and csize == 0:
                ctx.fail(loc, "hidden zip member with a data descriptor cannot be delimited")
                return
            info = zipfile.ZipInfo(name)
            info.orig_filename = name
            info.header_offset = pos
            info.compress_type = method
            info.flag_bits = flags
            info.CRC = crc
            info.compress_size = csize
            info.file_size = usize
            scan_member(ctx, stream, info, loc, depth)
        else:
            csize = known.compress_size
        pos += 30 + n_len + e_len + csize
        if flags & 0x8:
            stream.seek(pos)
            sig = stream.read(4)
            pos += (4 if sig == b"PK\x07\x08" else 0) + (20 if csize > 0xFFFFFFFF else 12)
        if pos >= size:
            return
