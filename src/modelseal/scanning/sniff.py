"""Recognise a model format from its first bytes, never from its name."""

from __future__ import annotations

import io
import json

HEAD = 4096

PICKLE_FIRST = frozenset(b"(.012FIJKLMNPQRSTUVXabcd}eghijl]opqrst)uGBC") | frozenset(
    range(0x80, 0x99)
)


def pickle_verdict(head: bytes, size: int | None, *, strict: bool = False) -> bool | None:
    """Whether ``head`` (the first bytes of a stream of ``size`` bytes) is a pickle, judged by
    walking it as the real unpickler would: True when it imports, calls or loads something, or
    parses as a meaningful pickle prefix; False when the unpickler fails first (text such as
    ``torch>=2.1``, random binary); None when ``head`` ends before that is decided.
    """
    if not head or head[0] not in PICKLE_FIRST:
        return False
    from modelseal.scanning.allowlist import Allowlist
    from modelseal.scanning.pickle_vm import Limits, PickleVM
    from modelseal.scanning.report import Location
    from modelseal.scanning.source import Source

    limits = Limits()
    # At the nesting limit the probe neither salvages after errors nor follows nested loads.
    vm = PickleVM(
        Source(io.BytesIO(head), size=len(head)),
        location=Location("<sniff>"),
        allowlist=Allowlist(),
        limits=limits,
        depth=limits.max_nesting,
    )
    # As an ML loader reads it: no extension code registered (none registers any); a
    # persistent_load hook unless strict (data such as a tensor's storage is read by none).
    vm.extensions_registered = False
    vm.persistent_hook = not strict
    vm.run()
    return vm.looks_like_pickle(complete=size is not None and size <= len(head), strict=strict)


def _looks_safetensors(head: bytes, size: int | None) -> bool:
    """u64 header length, then a JSON object (even if the length is a lie: that is a finding)."""
    if len(head) < 10:
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n < 1 << 40 and head[8:9] == b"{" and head[9:10] in (b'"', b"}", b" ", b"\n")


def _looks_protobuf(head: bytes) -> bool:
    """ONNX ModelProto / SavedModel start with a small varint or length-delimited field."""
    return len(head) >= 4 and head[0] in (0x08, 0x12, 0x0A, 0x3A, 0x42, 0x1A, 0x22, 0x2A, 0x32)


_KINDS = (
    (b"\x7fELF", "ELF"),
    (b"\xcf\xfa\xed\xfe", "Mach-O"),
    (b"\xce\xfa\xed\xfe", "Mach-O"),
    (b"\xfe\xed\xfa\xcf", "Mach-O"),
    (b"\xfe\xed\xfa\xce", "Mach-O"),
    (b"\xca\xfe\xba\xbe", "Mach-O universal"),
    (b"MZ", "PE (Windows)"),
)


def native_kind(head: bytes) -> str | None:
    """The kind of native binary (shared library, executable) ``head`` starts, if any."""
    for magic, kind in _KINDS:
        if head.startswith(magic):
            if magic == b"MZ" and not _is_pe(head):  # DOS stub alone: not enough
                return None
            return kind
    return None


def _is_pe(head: bytes) -> bool:
    if len(head) < 0x40:
        return False
    offset = int.from_bytes(head[0x3C:0x40], "little")
    return offset + 4 <= len(head) and head[offset : offset + 4] == b"PE\0\0"


def is_tar_header(head: bytes) -> bool:
    """True when ``head`` starts with a tar header that ``tarfile`` accepts: any variant (v7,
    ustar, GNU, pax), recognised by its checksum as tarfile does, not only by the magic."""
    if len(head) < 512 or head[:512].count(0) == 512:
        return False
    raw = head[148:156]
    if raw[:1] in (b"\x80", b"\xff"):
        return False  # base-256 checksums: no real tar writes one
    field = raw.split(b"\0", 1)[0].strip()
    if any(c not in b"01234567" for c in field):
        return False
    want = int(field or b"0", 8)
    unsigned = sum(head[:148]) + 256 + sum(head[156:512])
    signed = sum(b - 256 if b > 127 else b for b in head[:148] + head[156:512]) + 256
    return want in (unsigned, signed)


def sniff(head: bytes, size: int | None, *, strict: bool = False) -> str:
    """The format name for a stream starting with ``head``: one of ``zip``, ``gzip``, ``bz2``,
    ``xz``, ``lzma``, ``zlib``, ``zlib-joblib``, ``lz4``, ``zstd``, ``7z``, ``tar``, ``npy``,
    ``hdf5``, ``gguf``, ``safetensors``, ``pickle``, ``protobuf``, ``json``, ``lightgbm``,
    ``native``, ``empty`` or
    ``unknown``. ``strict``: see :func:`pickle_verdict` (for bytes that are data by default).
    """
    if not head:
        return "empty"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x5d\x00\x00") and len(head) >= 13:
        return "lzma"
    if len(head) >= 2 and head[0] == 0x78 and head[1] in (0x01, 0x5E, 0x9C, 0xDA):
        return "zlib"
    if head.startswith(b"ZF0x"):
        return "zlib-joblib"
    if head.startswith(b"\x04\x22\x4d\x18"):
        return "lz4"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "7z"
    if is_tar_header(head):
        return "tar"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    if head.startswith(b"GGUF"):
        return "gguf"
    if native_kind(head) is not None:
        return "native"
    if _looks_safetensors(head, size):
        return "safetensors"
    if pickle_verdict(head, size, strict=strict):
        return "pickle"  # by an opcode parse, never by the first byte alone
    if head.startswith(b"tree\nversion=v"):
        return "lightgbm"  # LightGBM's text model (its first byte is no pickle's first opcode)
    stripped = head.lstrip()
    if stripped[:1] in (b"{", b"[") and not head.startswith(b"}"):
        try:
            json.loads(head.decode("utf-8"))
        except RecursionError:
            return "json"  # nested too deeply for a parser: the JSON scanner reports it
        except (UnicodeDecodeError, ValueError):
            if size is not None and size > len(head):
                return "json"
        else:
            return "json"
    if _looks_protobuf(head):
        return "protobuf"
    return "unknown"
