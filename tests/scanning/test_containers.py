"""Containers and compressed streams: every wrapper is opened, nested combinations too, and any
container we cannot open is unscannable, never clean."""

from __future__ import annotations

import builtins
import os
import socket
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import modelseal
from modelseal.scanning.engine import Options, scan_bytes
from modelseal.scanning.report import FileReport
from tests.scanning import container_samples as cs


def _scan(data: bytes) -> FileReport:
    return scan_bytes(data, Options())


def _caught(report: FileReport) -> bool:
    return any(f.subject == "posix.system" for f in report.findings)


@pytest.mark.parametrize("wrapper", sorted(cs.WRAPPERS))
def test_malicious_pickle_in_every_wrapper_is_caught(wrapper: str) -> None:
    report = _scan(cs.WRAPPERS[wrapper](cs.EVIL_GLOBAL))
    assert _caught(report), report.to_dict()
    assert report.status == "unsafe", report.to_dict()


@pytest.mark.parametrize("wrapper", sorted(cs.WRAPPERS))
def test_benign_pickle_in_every_wrapper_is_clean(wrapper: str) -> None:
    report = _scan(cs.WRAPPERS[wrapper](cs.BENIGN))
    assert report.status == "clean", report.to_dict()
    assert "pickle" in report.formats


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(chain=st.lists(st.sampled_from(sorted(cs.WRAPPERS)), min_size=1, max_size=4))
def test_nested_combinations(chain: list[str]) -> None:
    evil, benign = cs.EVIL_GLOBAL, cs.BENIGN
    for name in chain:
        evil, benign = cs.WRAPPERS[name](evil), cs.WRAPPERS[name](benign)
    assert _caught(_scan(evil)), chain
    assert _scan(benign).status == "clean", (chain, _scan(benign).to_dict())


def test_seven_zip_with_several_members_and_a_nested_archive() -> None:
    data = cs.sevenzip(
        {"config.json": b'{"a": 1}', "inner.tgz": cs.tar({"x.pkl": cs.EVIL_GLOBAL}, mode="w:gz")}
    )
    report = _scan(data)
    assert _caught(report)
    hit = next(f for f in report.findings if f.subject == "posix.system")
    assert hit.location.members[:2] == ("inner.tgz", "<gzip stream>")


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        ("truncated gzip", cs.gz(cs.EVIL_GLOBAL * 50)[:-12]),
        ("truncated xz", cs.xz(cs.BENIGN)[:-20]),
        ("corrupt bz2", cs.bz(cs.BENIGN)[:12] + b"\xff" * 40),
        ("truncated zstd", cs.zst(cs.BENIGN * 20)[:-6]),
        ("gzip then garbage", cs.gz(cs.BENIGN) + b"garbage"),
        ("7z header only", cs.sevenzip({"a.pkl": cs.BENIGN})[:40]),
        ("zip with unknown method", b""),
    ],
)
def test_containers_we_cannot_open_are_unscannable(kind: str, data: bytes) -> None:
    if kind == "zip with unknown method":
        raw = bytearray(cs.zip_of({"m.pkl": cs.BENIGN}))
        cd = raw.rfind(b"PK\x01\x02")
        raw[8:10] = raw[cd + 10 : cd + 12] = (99).to_bytes(2, "little")
        data = bytes(raw)
    report = _scan(data)
    assert report.status == "unscannable", (kind, report.to_dict())


def test_encrypted_seven_zip_is_a_finding_and_unscannable() -> None:
    import io

    import py7zr

    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w", password="secret") as z:
        z.writestr(cs.BENIGN, "a.pkl")
    report = _scan(buf.getvalue())
    # A finding (exit 1); what the archive holds is listed as not analysed.
    assert report.status == "unsafe" and report.unscannable
    assert any(f.rule == "sevenzip.encrypted" for f in report.findings)


def _without(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    real = builtins.__import__

    def fake(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == module or name.startswith(module + "."):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)


@pytest.mark.parametrize(
    ("module", "data"),
    [("py7zr", cs.sevenzip({"a.pkl": cs.EVIL_GLOBAL})), ("zstandard", cs.zst(cs.EVIL_GLOBAL))],
)
def test_missing_optional_decoder_is_unscannable_with_a_hint(
    monkeypatch: pytest.MonkeyPatch, module: str, data: bytes
) -> None:
    _without(monkeypatch, module)
    report = _scan(data)
    assert report.status == "unscannable"
    (reason,) = {u.reason for u in report.unscannable}
    assert "modelseal[scan]" in reason and "\n" not in reason


def test_legacy_torch_tar_storages_member_is_walked_as_torch_reads_it() -> None:
    clean = _scan(cs.legacy_torch_tar())
    assert clean.status == "clean", clean.to_dict()
    assert "torch-legacy-tar" in clean.formats
    # torch unpickles the storage views from the storages member: a payload there runs.
    evil = _scan(cs.legacy_torch_tar(views=cs.EVIL_GLOBAL))
    hit = next(f for f in evil.findings if f.subject == "posix.system")
    assert hit.location.members == ("storages",)


def test_tar_links_are_reported_and_never_followed(tmp_path: Path) -> None:
    secret = tmp_path / "outside.pkl"
    secret.write_bytes(cs.EVIL_GLOBAL)  # would be caught if the link were followed
    import io

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, target, kind in (
            ("storages", str(secret), tarfile.SYMTYPE),
            ("rel", "../../x", tarfile.LNKTYPE),
            ("ok", "pickle", tarfile.SYMTYPE),
        ):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tf.addfile(info)
        info = tarfile.TarInfo("pickle")
        info.size = len(cs.BENIGN)
        tf.addfile(info, io.BytesIO(cs.BENIGN))
    report = _scan(buf.getvalue())
    links = {
        f.location.members[-1]: f.severity.label for f in report.findings if f.rule == "tar.link"
    }
    assert links == {"storages": "high", "rel": "high", "ok": "medium"}
    assert not _caught(report)


def test_tar_data_after_the_archive_is_scanned() -> None:
    data = cs.tar({"a.pkl": cs.BENIGN}) + cs.EVIL_GLOBAL
    report = _scan(data)
    assert any(f.rule == "tar.trailing-data" for f in report.findings)
    assert _caught(report)


def test_duplicate_tar_members_are_flagged_and_both_scanned() -> None:
    import io

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for data in (cs.BENIGN, cs.EVIL_GLOBAL):
            info = tarfile.TarInfo("model.pkl")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    report = _scan(buf.getvalue())
    assert any(f.rule == "tar.duplicate-name" for f in report.findings)
    assert _caught(report)


def test_zip_storage_record_holding_a_pickle_is_reported() -> None:
    data = cs.torch_zip(cs.BENIGN, {"0": cs.EVIL_GLOBAL.replace(b"c", b"\x80\x02c", 1)})
    report = _scan(data)
    assert any(f.rule == "zip.storage-content" for f in report.findings), report.to_dict()
    assert _caught(report)
    plain = _scan(cs.torch_zip(cs.BENIGN, {"0": bytes(range(256)) * 16}))
    assert plain.status == "clean", plain.to_dict()


def test_deflated_storage_record_is_decoded() -> None:
    evil = cs.EVIL_GLOBAL.replace(b"c", b"\x80\x02c", 1)
    report = _scan(cs.torch_zip(cs.BENIGN, {"0": evil}, method=zipfile.ZIP_DEFLATED))
    assert _caught(report)


def _fifo_dir(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.pkl").write_bytes(cs.BENIGN)
    os.mkfifo(model / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(model / "sock"))
    sock.close()
    return model


def test_scan_directory_reports_fifos_and_sockets_as_unscannable(tmp_path: Path) -> None:
    report = modelseal.scan(_fifo_dir(tmp_path))
    assert report.exit_code == 2
    special = {Path(f.path).name: f.status for f in report.files}
    assert special == {"weights.pkl": "clean", "pipe": "unscannable", "sock": "unscannable"}


def test_cli_scan_directory_with_fifo_exits_2_without_blocking(tmp_path: Path) -> None:
    import subprocess
    import sys

    model = _fifo_dir(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "modelseal", "scan", str(model)],
        capture_output=True,
        text=True,
        timeout=300,  # a hang guard only: a blocking open of the FIFO would never return
        env={**os.environ, "PYTHONPATH": os.pathsep.join(__import__("sys").path)},
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr


_MUTABLE = {
    name: cs.WRAPPERS[name](cs.EVIL_GLOBAL)
    for name in ("gzip", "bz2", "xz", "zstd", "7z", "tar", "tar.gz", "zip-deflate", "zip64")
}


@settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    kind=st.sampled_from(sorted(_MUTABLE)),
    edits=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=6),
    cut=st.integers(0, 1 << 16),
)
def test_damaged_containers_never_crash_and_never_pass_a_payload(
    kind: str, edits: list[tuple[int, int]], cut: int
) -> None:
    """Flipped bytes and truncation anywhere: the scan returns a report (no exception), and
    if it calls the file clean, the payload really is gone from every reading."""
    data = bytearray(_MUTABLE[kind])
    for at, value in edits:
        data[at % len(data)] = value
    data = data[: max(1, len(data) - cut % len(data))]
    report = _scan(bytes(data))
    if report.status == "clean":
        assert not _decodes_to_payload(bytes(data)), kind


def _decodes_to_payload(data: bytes) -> bool:
    """Whether a standard reader still finds the payload (a clean verdict would be wrong)."""
    import bz2
    import gzip
    import io
    import lzma

    import zstandard

    def from_tar(d: bytes, mode: Literal["r:", "r:gz"]) -> bytes:
        with tarfile.open(fileobj=io.BytesIO(d), mode=mode) as tf:
            member = tf.extractfile("model.pkl")
            return member.read() if member is not None else b""

    def from_zstd(d: bytes) -> bytes:
        out: bytes = zstandard.ZstdDecompressor().decompress(d)
        return out

    readers: list[Callable[[bytes], bytes]] = [
        gzip.decompress,
        bz2.decompress,
        lzma.decompress,
        from_zstd,
        lambda d: zipfile.ZipFile(io.BytesIO(d)).read("model.pkl"),
        lambda d: from_tar(d, "r:"),
        lambda d: from_tar(d, "r:gz"),
    ]
    for read in readers:
        try:
            if b"posix\nsystem" in read(data):
                return True
        except Exception:
            continue
    return False


@pytest.mark.parametrize("opcode", [b"\x82", b"\x83", b"\x84"])
def test_a_storage_record_of_numbers_starting_like_an_extension_code_is_clean(
    opcode: bytes,
) -> None:
    """Weights whose first byte is EXT1/EXT2/EXT4 (one storage in 85 of a real checkpoint) are
    numbers, not a pickle: the stock unpickler fails at an unregistered extension code."""
    import random

    rng = random.Random(opcode[0])
    for _ in range(20):
        record = opcode + bytes(rng.randrange(256) for _ in range(47))
        report = _scan(cs.torch_zip(cs.BENIGN, {"0": record}))
        assert report.status == "clean", (record.hex(), report.to_dict())
    # A real pickle in the record that uses an extension code is still reported.
    width = {0x82: 1, 0x83: 2, 0x84: 4}[opcode[0]]
    evil = b"\x80\x02" + opcode + (1).to_bytes(width, "little") + b"."
    report = _scan(cs.torch_zip(cs.BENIGN, {"0": evil}))
    assert any(f.rule == "pickle.extension" for f in report.findings), report.to_dict()


def test_numbers_that_walk_into_a_memo_bomb_are_data_in_a_storage_record() -> None:
    """EMPTY_DICT then LONG_BINPUT of a huge index (random weights do this) is not a pickle in
    a storage record; the same bytes as a file of their own are still a memo bomb."""
    import random

    rng = random.Random(7)
    record = (
        b"}r" + (0xA4233EC1).to_bytes(4, "little") + bytes(rng.randrange(256) for _ in range(90))
    )
    report = _scan(cs.torch_zip(cs.BENIGN, {"0": record}))
    assert report.status == "clean", report.to_dict()
    alone = _scan(b"}r\xff\xff\xff\x7f.")
    assert any(f.rule == "pickle.memo-index" for f in alone.findings), alone.to_dict()


def test_persistent_ids_are_no_disguise_and_text_lines_are_no_pickle() -> None:
    """A payload after a PERSID is found (a loader with persistent_load runs it); config text
    whose lines start with P and R (PERSID, PERSID, REDUCE) is text."""
    payload = _scan(b"Pabc\ncos\nsystem\n(S'id'\ntR.")
    assert any(f.rule == "pickle.global" for f in payload.findings), payload.to_dict()
    assert _scan(b"PORT=80\nPATH=/x\nROOT=/y\n").status == "clean"
