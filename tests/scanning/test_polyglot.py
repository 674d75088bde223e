"""Polyglots: every reading a real loader can take of the same bytes is scanned, and a file with
readings that disagree is flagged."""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelseal.scanning.engine import Options, scan_bytes
from modelseal.scanning.report import FileReport
from tests.scanning import container_samples as cs


def _scan(data: bytes) -> FileReport:
    return scan_bytes(data, Options())


def _rules(report: FileReport) -> set[str]:
    return {f.rule for f in report.findings}


def _caught(report: FileReport) -> bool:
    return any(f.subject == "posix.system" for f in report.findings)


def _tar_header(name: bytes, size: int) -> bytes:
    info = tarfile.TarInfo(name.decode("latin-1"))
    info.size = size
    return info.tobuf(format=tarfile.USTAR_FORMAT, encoding="latin-1")


def tar_zip_polyglot(zip_payload: bytes, tar_payload: bytes) -> bytes:
    """Starts with a zip local header that is also a valid tar header.

    The local header's extra field fills the tar header's fields (size, checksum), so the first
    512 bytes read as both; the zip member is ``zip_payload``; after it, in a gap no zip reader
    looks at, a second tar member holds ``tar_payload``; the central directory comes last.
    """
    name = b"archive/data.pkl"
    extra_len = 512 - 30 - len(name)
    crc = zlib.crc32(zip_payload)
    local = struct.pack(
        "<4s5HLLLHH",
        b"PK\x03\x04",
        20,
        0,
        0,
        0,
        0,
        crc,
        len(zip_payload),
        len(zip_payload),
        len(name),
        extra_len,
    )
    header = bytearray(local + name + b"\0" * extra_len)
    # Tar fields past the zip header and name: mode, uid, gid, size, mtime, type, magic.
    header[100:108] = b"0000644\0"
    header[108:116] = b"0000000\0"
    header[116:124] = b"0000000\0"
    header[124:136] = b"%011o\0" % len(zip_payload)
    header[136:148] = b"00000000000\0"
    header[156:157] = b"0"
    header[257:265] = b"ustar\x0000"
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    body = bytes(header) + zip_payload + b"\0" * (-len(zip_payload) % 512)
    body += _tar_header(b"pickle", len(tar_payload)) + tar_payload
    body += b"\0" * (-len(tar_payload) % 512) + b"\0" * 1024
    central = struct.pack(
        "<4s6HLLLHHHHHLL",
        b"PK\x01\x02",
        20,
        20,
        0,
        0,
        0,
        0,
        crc,
        len(zip_payload),
        len(zip_payload),
        len(name),
        0,
        0,
        0,
        0,
        0,
        0,
    )
    eocd = struct.pack(
        "<4s4HLLH", b"PK\x05\x06", 0, 0, 1, 1, len(central) + len(name), len(body), 0
    )
    return body + central + name + eocd


def test_tar_zip_polyglot_both_readings_are_scanned() -> None:
    data = tar_zip_polyglot(cs.BENIGN, cs.EVIL_GLOBAL)
    assert zipfile.ZipFile(io.BytesIO(data)).read("archive/data.pkl") == cs.BENIGN
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        assert tf.extractfile("pickle").read() == cs.EVIL_GLOBAL  # type: ignore[union-attr]
    report = _scan(data)
    assert "polyglot.tar" in _rules(report)
    assert _caught(report)
    # and the other way round: the payload in the zip reading
    report = _scan(tar_zip_polyglot(cs.EVIL_GLOBAL, cs.BENIGN))
    assert "polyglot.tar" in _rules(report) and _caught(report)


@pytest.mark.parametrize(
    "front",
    [
        cs.BENIGN,
        cs.tar({"pickle": cs.BENIGN}),
        cs.gz(cs.BENIGN),
        b"\x89HDF\r\n\x1a\n" + b"\0" * 600,
    ],
    ids=["pickle", "tar", "gzip", "hdf5-like"],
)
def test_zip_with_prepended_data_is_read_as_zipfile_reads_it(front: bytes) -> None:
    data = front + cs.zip_of({"model.pkl": cs.EVIL_GLOBAL})
    assert zipfile.ZipFile(io.BytesIO(data)).read("model.pkl") == cs.EVIL_GLOBAL
    report = _scan(data)
    assert "polyglot.zip" in _rules(report), report.to_dict()
    assert _caught(report)


def test_multiple_end_records_each_reading_is_scanned() -> None:
    # zipfile reads the last directory (benign); a reader taking the first sees the payload.
    data = cs.zip_of({"model.pkl": cs.EVIL_GLOBAL}) + cs.zip_of({"model.pkl": cs.BENIGN})
    assert zipfile.ZipFile(io.BytesIO(data)).read("model.pkl") == cs.BENIGN
    report = _scan(data)
    assert "zip.multiple-eocd" in _rules(report), report.to_dict()
    assert _caught(report)


def test_member_only_in_local_headers_is_scanned() -> None:
    hidden = cs.zip_of({"evil.pkl": cs.EVIL_GLOBAL})
    hidden = hidden[: hidden.find(b"PK\x01\x02")]  # local header and data, no directory
    data = hidden + cs.zip_of({"model.pkl": cs.BENIGN})
    assert zipfile.ZipFile(io.BytesIO(data)).namelist() == ["model.pkl"]
    report = _scan(data)
    assert "zip.hidden-member" in _rules(report)
    assert _caught(report)


def test_local_header_disagreeing_with_the_directory() -> None:
    raw = bytearray(cs.zip_of({"model.pkl": cs.BENIGN}))
    raw[18:22] = struct.pack("<L", 7)  # local compressed size
    report = _scan(bytes(raw))
    assert "zip.header-mismatch" in _rules(report)


def test_duplicate_names_both_members_are_scanned() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", cs.BENIGN)
        with pytest.warns(UserWarning):
            zf.writestr("archive/data.pkl", cs.EVIL_GLOBAL)
    report = _scan(buf.getvalue())
    assert "zip.duplicate-name" in _rules(report) and _caught(report)


def test_overlapping_members_are_flagged() -> None:
    raw = cs.zip_of({"a.pkl": cs.BENIGN, "b.pkl": cs.BENIGN})
    cd = raw.find(b"PK\x01\x02")
    second = raw.find(b"PK\x01\x02", cd + 4)
    patched = bytearray(raw)
    patched[second + 42 : second + 46] = struct.pack("<L", 0)  # b.pkl's header -> a.pkl's
    patched[second + 28 : second + 30] = struct.pack("<H", 5)  # name length of "a.pkl"
    patched[second + 46 : second + 51] = b"a.pkl"
    report = _scan(bytes(patched))
    assert {"zip.overlapping-members", "zip.duplicate-name"} <= _rules(report)


def test_plain_archives_are_not_polyglots() -> None:
    for data in (
        cs.zip_of({"a.pkl": cs.BENIGN, "b.zip": cs.zip_of({"c.pkl": cs.BENIGN})}),
        cs.tar({"a.pkl": cs.BENIGN, "m.pt": cs.torch_zip(cs.BENIGN)}),
        cs.torch_zip(cs.BENIGN, {"0": bytes(4096)}),
    ):
        report = _scan(data)
        assert report.status == "clean", report.to_dict()


_PARTS: dict[str, Callable[[bytes], bytes]] = {
    "zip": lambda p: cs.zip_of({"m.pkl": p}),
    "tar": lambda p: cs.tar({"pickle": p}),
    "pickle": lambda p: p,
}


@settings(
    max_examples=20, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    first=st.sampled_from(sorted(_PARTS)),
    second=st.sampled_from(sorted(_PARTS)),
    evil_first=st.booleans(),
)
def test_concatenated_readings_never_hide_a_payload(
    first: str, second: str, evil_first: bool
) -> None:
    """Two formats glued together: whichever part a loader reads, the payload is found, or the
    file is at least not clean."""
    a = _PARTS[first](cs.EVIL_GLOBAL if evil_first else cs.BENIGN)
    b = _PARTS[second](cs.BENIGN if evil_first else cs.EVIL_GLOBAL)
    report = _scan(a + b)
    assert report.status != "clean", (first, second, evil_first)
    evil_part = first if evil_first else second
    if evil_part != "pickle" or evil_first:
        assert _caught(report) or report.status == "unscannable", report.to_dict()
