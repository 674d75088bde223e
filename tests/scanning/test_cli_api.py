"""The CLI's outputs and every user-reachable error path; the API's options and limits."""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import pytest

import modelseal
from modelseal.cli.main import main
from modelseal.errors import AllowlistError, ScanPathError
from modelseal.scanning.engine import Options, scan_bytes
from modelseal.scanning.pickle_vm import Limits
from tests.scanning.scan_samples import _os_system, make_zip


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    out = {
        "clean": tmp_path / "clean.pkl",
        "evil": tmp_path / "evil.bin",
        "broken": tmp_path / "broken",
        "text": tmp_path / "notes.txt",
    }
    out["clean"].write_bytes(pickle.dumps({"w": [1.0, 2.0]}))
    out["evil"].write_bytes(_os_system(tmp_path / "canary"))
    out["broken"].write_bytes(_os_system(tmp_path / "canary")[:-2])
    out["text"].write_text("hello\n")
    return out


def _one_error_line(err: str) -> str:
    assert err.count("\n") == 1, err
    assert err.startswith("modelseal: error: ")
    assert "Traceback" not in err
    return err


def test_clean_exits_0_without_stderr(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", str(files["clean"])]) == 0
    out, err = capsys.readouterr()
    assert "CLEAN" in out and err == ""


def test_text_report_names_the_global(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", str(files["evil"])]) == 1
    out, err = capsys.readouterr()
    assert "[critical] pickle.global os.system" in out
    assert "unsafe content found" in _one_error_line(err)


def test_unscannable_with_findings_exits_2(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", "--format", "json", str(files["broken"])]) == 2
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["status"] == "unscannable"
    assert doc["files"][0]["findings"][0]["subject"] == "os.system"
    assert "could not be scanned completely" in _one_error_line(err)


def test_strict_makes_unknown_formats_unscannable(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", str(files["text"])]) == 0
    assert main(["scan", "--strict", str(files["text"])]) == 2
    _one_error_line(capsys.readouterr().err)


def test_sarif_output(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "scan",
                "--format",
                "sarif",
                str(files["evil"]),
                str(files["broken"]),
                str(files["clean"]),
            ]
        )
        == 2
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["version"] == "2.1.0" and "sarif" in doc["$schema"]
    run = doc["runs"][0]
    rule_ids = {r["id"] for r in run["tool"]["driver"]["rules"]}
    assert {"pickle.global", "scan.unscannable"} <= rule_ids
    for result in run["results"]:
        assert result["ruleId"] in rule_ids
        assert result["level"] in ("error", "warning", "note")
        loc = result["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"]["uri"]
    assert run["invocations"][0]["executionSuccessful"] is False
    assert {a["location"]["uri"] for a in run["artifacts"]} == {
        str(files[k]) for k in ("evil", "broken", "clean")
    }


def test_sarif_member_locations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m.zip").write_bytes(make_zip({"inner/data.pkl": _os_system(tmp_path / "c")}))
    assert main(["scan", "--format", "sarif", str(tmp_path / "m.zip")]) == 1
    result = json.loads(capsys.readouterr().out)["runs"][0]["results"][0]
    assert result["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == "inner/data.pkl"


def test_output_file(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "report.json"
    assert main(["scan", "--format", "json", "-o", str(target), str(files["clean"])]) == 0
    assert json.loads(target.read_text())["status"] == "clean"
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["scan", "/nonexistent/model.bin"], "does not exist"),
        (["scan", "--allow", "not a global", "{clean}"], "allow-list entry"),
        (["scan", "--allow-config", "/nonexistent.toml", "{clean}"], "cannot read allow-list"),
        (["scan", "--allow-config", "{bad_toml}", "{clean}"], "not valid TOML"),
        (["scan", "--allow-config", "{bad_shape}", "{clean}"], "needs [scan] allow"),
        (["scan", "--format", "xml", "{clean}"], "xml"),
        (["scan"], "Missing argument"),
        (["scan", "-o", "/nonexistent/dir/out.json", "{clean}"], "cannot write"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    argv: list[str],
    needle: str,
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "bad.toml").write_text("[scan\n")
    (tmp_path / "shape.toml").write_text("[scan]\nallow = 3\n")
    subst = {
        "clean": str(files["clean"]),
        "bad_toml": str(tmp_path / "bad.toml"),
        "bad_shape": str(tmp_path / "shape.toml"),
    }
    assert main([a.format(**subst) for a in argv]) == 2
    assert needle in _one_error_line(capsys.readouterr().err)


def test_symlinked_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    with pytest.raises(ScanPathError):
        modelseal.scan(tmp_path / "link")


def test_allow_entries_extend_the_list(tmp_path: Path) -> None:
    blob = b"\x80\x04\x8c\x0bsome_module\x94\x8c\x05Thing\x94\x93\x94)R."
    (tmp_path / "f").write_bytes(blob)
    assert modelseal.scan(tmp_path / "f").exit_code == 1
    assert modelseal.scan(tmp_path / "f", allow=["some_module.Thing"]).clean
    assert modelseal.scan(tmp_path / "f", allow=["some_module:Thing"]).clean
    assert modelseal.scan(tmp_path / "f", allow=["some_module.*"]).clean
    assert modelseal.scan(tmp_path / "f", allow=["other.*"]).exit_code == 1
    with pytest.raises(AllowlistError):
        modelseal.scan(tmp_path / "f", allow=["*"])


def test_wildcards_never_allow_dunder_chains(tmp_path: Path) -> None:
    blob = b"\x80\x04\x8c\x0bsome_module\x94\x8c\x12Thing.__globals__\x94\x93\x94."
    (tmp_path / "f").write_bytes(blob)
    report = modelseal.scan(tmp_path / "f", allow=["some_module.*"])
    assert report.findings[0].severity == modelseal.scanning.Severity.CRITICAL


def test_memo_limit_is_a_finding_not_a_hang() -> None:
    data = pickle.dumps([str(i) for i in range(1000)])
    report = scan_bytes(data, Options(limits=Limits(max_memo=100)))
    assert report.status == "unscannable"
    assert any(f.rule == "pickle.limit" for f in report.findings)


def test_mark_and_stack_limits() -> None:
    report = scan_bytes(b"(" * 200 + b"N.", Options(limits=Limits(max_marks=100)))
    assert any(f.rule == "pickle.limit" for f in report.findings)
    report = scan_bytes(b"N" * 200 + b".", Options(limits=Limits(max_stack=100)))
    assert any(f.rule == "pickle.limit" for f in report.findings)


def test_zip_bomb_hits_the_budget() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big", b"\x00" * (8 << 20))
    report = scan_bytes(buf.getvalue(), Options(max_expanded=1 << 20))
    assert report.status == "unscannable"
    assert any(f.rule == "archive.bomb" for f in report.findings)


def test_nesting_depth_limit() -> None:
    from tests.scanning.scan_samples import nested_zip

    report = scan_bytes(nested_zip(pickle.dumps(1), depth=5), Options(max_depth=3))
    assert report.status == "unscannable"
    assert any(f.rule == "archive.depth" for f in report.findings)


def test_empty_and_truncated_files_are_never_clean(tmp_path: Path) -> None:
    data = pickle.dumps({"a": list(range(50))}, protocol=4)
    for cut in (1, 2, 5, len(data) // 2, len(data) - 1):
        assert scan_bytes(data[:cut], Options()).status == "unscannable", cut
    empty_zip = make_zip({"archive/data.pkl": b""})
    assert scan_bytes(empty_zip, Options()).status == "unscannable"


def test_symlinked_file_in_a_directory_is_scanned(tmp_path: Path) -> None:
    outside = tmp_path / "outside.bin"
    outside.write_bytes(_os_system(tmp_path / "canary"))
    model = tmp_path / "model"
    model.mkdir()
    os.symlink(outside, model / "weights.bin")
    report = modelseal.scan(model)
    assert report.exit_code == 1
    assert report.findings[0].subject == "os.system"


def test_junk_after_a_malformed_region_is_bounded() -> None:
    # Every byte could start an opcode: the re-synchronising search must stop by itself.
    data = b"\x80\x04\xff" + b"(" * 300_000
    report = scan_bytes(data, Options())
    assert report.status == "unscannable"
    assert not report.findings
