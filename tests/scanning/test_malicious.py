"""Every malicious kind is caught, by the API and the CLI, and nothing in it ever runs."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import modelseal
from modelseal.cli.main import main
from tests.scanning.format_samples import FORMAT_SAMPLES
from tests.scanning.scan_samples import SAMPLES as PICKLE_SAMPLES
from tests.scanning.scan_samples import Sample, _os_system

SAMPLES = PICKLE_SAMPLES + FORMAT_SAMPLES


def _write(sample: Sample, tmp_path: Path) -> tuple[Path, Path]:
    canary = tmp_path / "canary"
    target = tmp_path / "sample"  # no extension: formats are recognised by content
    target.write_bytes(sample.build(canary))
    return target, canary


def test_corpus_is_broad() -> None:
    kinds = {s.kind for s in SAMPLES}
    assert len(kinds) == len(SAMPLES) >= 40
    assert {s.category for s in SAMPLES} >= {
        "exec",
        "eval",
        "import",
        "nested",
        "network",
        "file",
        "runner",
        "installer",
        "gadget",
        "opcode",
        "container",
        "numpy",
        "joblib",
        "safetensors",
        "gguf",
        "onnx",
        "savedmodel",
        "keras",
    }


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.kind)
def test_sample_is_caught(sample: Sample, tmp_path: Path) -> None:
    target, canary = _write(sample, tmp_path)
    report = modelseal.scan(target)
    assert report.exit_code == sample.exit_code, report.to_dict()
    assert not report.clean
    texts = [f"{f.rule} {f.subject} {f.message}" for f in report.findings]
    if sample.expect == "unscannable":
        assert report.unscannable
    else:
        assert any(sample.expect in t for t in texts), texts
    assert not canary.exists()


@pytest.mark.parametrize("sample", SAMPLES[::7], ids=lambda s: s.kind)
def test_cli_exit_code_and_one_line(
    sample: Sample, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target, canary = _write(sample, tmp_path)
    code = main(["scan", "--format", "json", str(target)])
    out, err = capsys.readouterr()
    assert code == sample.exit_code
    doc = json.loads(out)
    assert doc["exit_code"] == sample.exit_code
    assert err.count("\n") == 1 and err.startswith("modelseal: error: ")
    assert "Traceback" not in err
    assert not canary.exists()


def test_canary_payloads_are_live(tmp_path: Path) -> None:
    """The canary really is created when such a file is unpickled, so its absence means
    something: the scan did not execute the payload."""
    canary = tmp_path / "canary"
    blob = tmp_path / "blob"
    blob.write_bytes(_os_system(canary))
    code = f"import pickle; pickle.loads(open({str(blob)!r}, 'rb').read())"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert canary.exists()


def test_nested_pickle_findings_are_located(tmp_path: Path) -> None:
    sample = next(s for s in SAMPLES if s.kind == "pickle.loads-nested")
    target, _ = _write(sample, tmp_path)
    report = modelseal.scan(target)
    inner = [f for f in report.findings if f.subject == "os.system"]
    assert inner and inner[0].location.members[0].startswith("<nested pickle")
    assert any(f.subject == "pickle.loads" for f in report.findings)


def test_zip_member_location_is_reported(tmp_path: Path) -> None:
    sample = next(s for s in SAMPLES if s.kind == "zip-nested-3")
    target, _ = _write(sample, tmp_path)
    finding = next(f for f in modelseal.scan(target).findings if f.subject == "os.system")
    assert finding.location.members == ("level2.bin", "level1.bin", "level0.bin")
    assert finding.location.offset == 0


def test_severity_ranks_unknown_lower_than_exec(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(pickle.dumps(Path("x")))  # pathlib: file access -> critical
    blob = b"\x80\x04" + b"\x8c\x0bsome_module\x94\x8c\x05Thing\x94\x93\x94)R."
    (tmp_path / "b").write_bytes(blob)
    report = modelseal.scan(tmp_path)
    by_file = {Path(f.path).name: f for f in report.files}
    assert by_file["b"].findings[0].severity == modelseal.scanning.Severity.MEDIUM
    assert by_file["b"].findings[0].subject == "some_module.Thing"


@pytest.mark.parametrize(
    "kind", ["frames-split-opcodes", "pop-mark-divergence", "stack-global-from-STRING"]
)
def test_c_unpickler_runs_what_we_flag(kind: str, tmp_path: Path) -> None:
    """These tricks are real: CPython's C unpickler executes them (pickle.py/pickletools may
    disagree), and the scanner flags them as unsafe."""
    sample = next(s for s in SAMPLES if s.kind == kind)
    target, canary = _write(sample, tmp_path)
    assert modelseal.scan(target).exit_code == 1
    code = f"import pickle; pickle.loads(open({str(target)!r}, 'rb').read())"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    assert canary.exists()


def test_python_unpickler_disagrees_on_split_frames(tmp_path: Path) -> None:
    sample = next(s for s in SAMPLES if s.kind == "frames-split-opcodes")
    data = sample.build(tmp_path / "canary")
    with pytest.raises(pickle.UnpicklingError, match="frame"):
        pickle._loads(data)  # type: ignore[attr-defined]
    assert not (tmp_path / "canary").exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_payload_after_long_number_runs(protocol: int, tmp_path: Path) -> None:
    """The fast path for big lists of numbers keeps the exact stack, so what follows is seen."""
    import os
    import random

    from tests.scanning.scan_samples import _Reduce

    values = [list(range(5000)), [random.random() for _ in range(3000)], [2**40] * 100]
    evil = _Reduce(os.system, f"touch {tmp_path / 'canary'}")
    data = pickle.dumps({"w": values, "x": evil, "tail": list(range(300))}, protocol=protocol)
    (tmp_path / "f").write_bytes(data)
    report = modelseal.scan(tmp_path / "f")
    assert report.exit_code == 1
    assert [f.subject for f in report.findings] == ["posix.system"]


def _pe_header() -> bytes:
    head = bytearray(b"MZ" + bytes(0x7E))
    head[0x3C:0x40] = (0x80).to_bytes(4, "little")
    return bytes(head) + b"PE\0\0" + bytes(64)


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        ("ELF", b"\x7fELF\x02\x01\x01" + bytes(57)),
        ("Mach-O", b"\xcf\xfa\xed\xfe" + bytes(60)),
        ("PE (Windows)", _pe_header()),
    ],
)
def test_native_code_inside_a_model_is_a_finding(kind: str, data: bytes, tmp_path: Path) -> None:
    import zipfile

    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "model.onnx").write_bytes(data)  # the name says nothing
    with zipfile.ZipFile(tmp_path / "archive.zip", "w") as archive:
        archive.writestr("saved_model/assets/ops.bin", data)
    for target in (tmp_path / "plain", tmp_path / "archive.zip"):
        report = modelseal.scan(target)
        assert report.exit_code == 1, report.to_dict()
        (finding,) = report.findings
        assert finding.rule == "native.library" and finding.subject == f"{kind} binary"
        assert finding.severity.label == "high"


def test_dos_stub_alone_is_not_native_code(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_bytes(b"MZ is just two letters here" + bytes(80))
    assert not any(f.rule == "native.library" for f in modelseal.scan(tmp_path).findings)
