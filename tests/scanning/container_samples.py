"""Builders for container, polyglot and bomb samples, made at run time (no committed binaries)."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import pickle
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable

import py7zr
import zstandard

EVIL_GLOBAL = b"cposix\nsystem\n(S'true'\ntR."  # protocol 0: posix.system('true')
BENIGN = pickle.dumps({"weight": [0.5, 1.5], "step": 3}, protocol=4)


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def bz(data: bytes) -> bytes:
    return bz2.compress(data)


def xz(data: bytes) -> bytes:
    return lzma.compress(data)


def lzma_alone(data: bytes) -> bytes:
    return lzma.compress(data, format=lzma.FORMAT_ALONE)


def zlib_stream(data: bytes) -> bytes:
    return zlib.compress(data)


def zst(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


def sevenzip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(data, name)
    return buf.getvalue()


def tar(members: dict[str, bytes], *, fmt: int = tarfile.PAX_FORMAT, mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=fmt) as tf:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def v7_tar(name: str, data: bytes) -> bytes:
    """An old (pre-POSIX) tar: no magic at all, recognised only by its header checksum."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    header = bytearray(info.tobuf(format=tarfile.USTAR_FORMAT))
    header[257:265] = b"\0" * 8  # drop "ustar\x0000"
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    pad = b"\0" * (-len(data) % 512)
    return bytes(header) + data + pad + b"\0" * 1024


def zip_of(
    members: dict[str, bytes], *, method: int = zipfile.ZIP_STORED, zip64: bool = False
) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = method
            with zf.open(info, "w", force_zip64=zip64) as fh:
                fh.write(data)
    return buf.getvalue()


class _Unseekable(io.RawIOBase):
    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self.data += b
        return len(b)


def zip_streamed(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """Written to an unseekable stream: every member has a data descriptor."""
    out = _Unseekable()
    with zipfile.ZipFile(out, "w", compression=method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return bytes(out.data)


def torch_zip(pkl: bytes, storages: dict[str, bytes] | None = None, method: int = 0) -> bytes:
    """The layout of a torch.save zip: archive/data.pkl, storages under archive/data/N."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pkl)
        for key, data in (storages or {}).items():
            zf.writestr(f"archive/data/{key}", data, compress_type=method)
        zf.writestr("archive/version", b"3\n")
    return buf.getvalue()


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def legacy_torch_tar(*, views: bytes = b"", pickle_member: bytes = BENIGN) -> bytes:
    """A legacy torch tar: ``storages`` holds a count, one float storage record and its data,
    then the storage views pickle (``views``; an empty list by default)."""
    record = (
        b"\x80\x02(X\x01\x00\x00\x000X\x03\x00\x00\x00cpu" + _global("torch", "FloatStorage")
    ) + b"t."
    storages = (
        pickle.dumps(1, protocol=2)
        + record
        + struct.pack("<q", 2)
        + struct.pack("<2f", 1.0, 2.0)
        + (views or pickle.dumps([], protocol=2))
    )
    return tar(
        {
            "sys_info": pickle.dumps({"little_endian": True}, protocol=2),
            "storages": storages,
            "tensors": pickle.dumps(0, protocol=2),
            "pickle": pickle_member,
        }
    )


WRAPPERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gz,
    "bz2": bz,
    "xz": xz,
    "lzma": lzma_alone,
    "zlib": zlib_stream,
    "zstd": zst,
    "7z": lambda d: sevenzip({"model.pkl": d}),
    "tar": lambda d: tar({"model.pkl": d}),
    "tar-gnu": lambda d: tar({"m/" + "n" * 120 + ".pkl": d}, fmt=tarfile.GNU_FORMAT),
    "tar-ustar": lambda d: tar({"model.pkl": d}, fmt=tarfile.USTAR_FORMAT),
    "tar-v7": lambda d: v7_tar("model.pkl", d),
    "tar.gz": lambda d: tar({"model.pkl": d}, mode="w:gz"),
    "tar.bz2": lambda d: tar({"model.pkl": d}, mode="w:bz2"),
    "tar.xz": lambda d: tar({"model.pkl": d}, mode="w:xz"),
    "tar.zst": lambda d: zst(tar({"model.pkl": d})),
    "zip-stored": lambda d: zip_of({"model.pkl": d}),
    "zip-deflate": lambda d: zip_of({"model.pkl": d}, method=zipfile.ZIP_DEFLATED),
    "zip-bz2": lambda d: zip_of({"model.pkl": d}, method=zipfile.ZIP_BZIP2),
    "zip-lzma": lambda d: zip_of({"model.pkl": d}, method=zipfile.ZIP_LZMA),
    "zip64": lambda d: zip_of({"model.pkl": d}, method=zipfile.ZIP_DEFLATED, zip64=True),
    "zip-descriptor": lambda d: zip_streamed({"model.pkl": d}),
}


def bz2_multistream_bomb(streams: int = 300) -> bytes:
    """Concatenated bz2 streams of 20 MiB of zeros each (~50 bytes apiece): about 15 KB that
    decode to 6 GB, the shape of the issue's 12.6 KB multi-stream sample."""
    one = bz2.compress(bytes(20 << 20))
    return one * streams


def deflate_bomb(size: int = 96 << 20) -> bytes:
    """``size`` zero bytes at deflate's best ratio (about 1030:1)."""
    return zlib.compress(bytes(size), 9)
