"""The console script's early start of ``sign`` hashing: same results, same errors."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelseal.cli import early
from modelseal.cli.early import EarlyHash, sign_request, take_prestarted
from modelseal.hashing.engine import HashOptions

BASE = ["sign", "m", "--private-key", "k.pem", "--signature", "m.sig"]


@pytest.fixture(autouse=True)
def _no_leftovers() -> Any:
    yield
    early.discard_prestarted()
    assert not [t for t in threading.enumerate() if t.name == "modelseal-hash"]


@pytest.fixture
def no_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELSEAL_PASSPHRASE", raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)


@pytest.mark.usefixtures("no_prompt")
@pytest.mark.parametrize(
    ("extra", "fields"),
    [
        ([], {"hash_type": "sha256"}),
        (["--shard-size", "256MiB", "--force", "--json"], {"hash_type": "sha256",
                                                           "shard_size": 256 << 20}),
        (["--hash", "BLAKE3", "--workers", "3"], {"hash_type": "blake3", "workers": 3}),
        (["--ignore", "a", "--ignore", "*.md", "--allow-symlinks", "--no-ignore-git-paths"],
         {"hash_type": "sha256", "ignore": ("a", "*.md"), "allow_symlinks": True,
          "ignore_git_paths": False}),
    ],
)  # fmt: skip
def test_plain_sign_lines_are_recognised(extra: list[str], fields: dict[str, Any]) -> None:
    assert sign_request(BASE + extra) == ("m", fields, "m.sig")


@pytest.mark.usefixtures("no_prompt")
@pytest.mark.parametrize(
    "line",
    [
        [],
        ["digest", "m"],
        ["--version"],
        ["sign", "m"],  # no --signature
        ["sign", "--signature", "m.sig"],  # no model
        [*BASE, "--help"],
        [*BASE, "-h"],
        [*BASE, "--signature=x"],
        [*BASE, "--signature", "other.sig"],  # given twice: left to click
        [*BASE, "other-model"],
        [*BASE, "--certificate-chain", "a.pem"],
        [*BASE, "--shard-size", "lots"],
        [*BASE, "--shard-size"],
        [*BASE, "--workers", "0"],
        [*BASE, "--workers", "x"],
        [*BASE, "--hash", "md5"],
        [*BASE, "--", "x"],
    ],
)
def test_anything_unusual_is_left_to_click(line: list[str]) -> None:
    assert sign_request(line) is None


def test_no_early_start_when_a_passphrase_may_be_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELSEAL_PASSPHRASE", raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    assert sign_request(BASE) is None
    assert sign_request([*BASE, "--passphrase-file", "p"]) is not None
    monkeypatch.setenv("MODELSEAL_PASSPHRASE", "x")
    assert sign_request(BASE) is not None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["sign", "m", "--signature", "s", "--shard-size", "1k", "-x",
                                 "--ignore", "--force", "--hash", "sha256", "--", "=", ""]),
                max_size=12))  # fmt: skip
def test_the_pre_scan_never_raises(line: list[str]) -> None:
    request = sign_request(line)
    assert request is None or (request[0] in line and request[2] in line)


def test_a_matching_job_is_adopted_and_another_cancelled(tmp_path: Path) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(b"x" * 4096)
    fields = {"hash_type": "sha256", "shard_size": 1024}
    options = HashOptions(**fields).normalized()  # type: ignore[arg-type]
    job = EarlyHash(str(model), fields, "m.sig", None)
    early._PRESTARTED.append(job)
    assert take_prestarted(str(model), options, "m.sig") is job
    assert len(job.result().manifest.items) == 4

    other = EarlyHash(str(model), fields, "m.sig", None)
    other.start()
    early._PRESTARTED.append(other)
    wider = HashOptions(shard_size=2048).normalized()
    assert take_prestarted(str(model), wider, "m.sig") is None  # different: not used
    assert other._stop.is_set()
    assert not early._PRESTARTED


def test_bad_options_in_a_job_never_match() -> None:
    job = EarlyHash("m", {"shard_size": 0}, "m.sig", None)
    assert not job.matches("m", HashOptions().normalized(), "m.sig")
    assert not EarlyHash("m", {}, "m.sig", print).matches("m", HashOptions(), "m.sig")


def _script(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    code = "import sys; from modelseal.cli.entry import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=300,
    )


def test_the_console_script_signs_exactly_as_the_cli(
    model_dir: Path, key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    from modelseal.cli.main import main

    common = ["--private-key", str(key_pair[0]), "--shard-size", "1KiB", "--json", "--force"]
    early_run = _script(["sign", str(model_dir), "--signature", str(tmp_path / "a.sig"), *common],
                        tmp_path)  # fmt: skip
    assert early_run.returncode == 0, early_run.stderr
    assert main(["sign", str(model_dir), "--signature", str(tmp_path / "b.sig"), *common]) == 0
    bundles = [json.loads((tmp_path / n).read_text()) for n in ("a.sig", "b.sig")]
    assert bundles[0]["dsseEnvelope"]["payload"] == bundles[1]["dsseEnvelope"]["payload"]


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--shard-size", "0"], "is not a size"),
        (["--workers", "-1"], "--workers"),
        (["--bogus"], "No such option"),
    ],
)
def test_errors_stay_one_line_with_an_early_start(
    model_dir: Path, key_pair: tuple[Path, Path], tmp_path: Path, extra: list[str], fragment: str
) -> None:
    line = ["sign", str(model_dir), "--private-key", str(key_pair[0]),
            "--signature", str(tmp_path / "x.sig"), *extra]  # fmt: skip
    run = _script(line, tmp_path)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and fragment in run.stderr
    assert run.stderr.startswith("modelseal: error: ")


def test_a_missing_model_is_the_usual_error(key_pair: tuple[Path, Path], tmp_path: Path) -> None:
    line = ["sign", str(tmp_path / "nope"), "--private-key", str(key_pair[0]),
            "--signature", str(tmp_path / "x.sig")]  # fmt: skip
    run = _script(line, tmp_path)
    assert run.returncode == 2
    assert run.stderr == f"modelseal: error: model path {str(tmp_path / 'nope')!r} does not " \
        "exist; check the path and try again\n"  # fmt: skip


@pytest.mark.usefixtures("no_prompt")
def test_prestart_hands_its_job_to_sign(tmp_path: Path) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(b"y" * 3000)
    line = ["sign", str(model), "--private-key", "k", "--signature", "s", "--shard-size", "1000"]
    assert early.prestart(line)
    job = take_prestarted(str(model), HashOptions(shard_size=1000).normalized(), "s")
    assert job is not None
    assert len(job.result().manifest.items) == 3
