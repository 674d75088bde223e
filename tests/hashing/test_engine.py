"""The hashing engine: parallel and sequential agree, links and special files are refused,
ignores are honoured and recorded, nothing outside the model root is read."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelseal.errors import ModelPathError, UsageError
from modelseal.hashing import HashOptions, hash_model, hash_model_lenient
from modelseal.hashing.engine import _SMALL, Task
from modelseal.hashing.manifest import Method
from modelseal.hashing.walk import Listing


def test_readers_and_worker_counts_agree(model_dir: Path) -> None:
    big = model_dir / "weights" / "big.bin"
    big.write_bytes(os.urandom(3 * _SMALL + 123))  # large enough for the mmap path
    results = {
        hash_model(
            model_dir, HashOptions(reader=reader, workers=workers, shard_size=shard)
        ).root_digest
        for reader in ("mmap", "read", "capture", "map")
        for workers in (1, 4)
        for shard in (None,)
    }
    assert len(results) == 1
    sharded = {
        hash_model(model_dir, HashOptions(reader=r, workers=w, shard_size=_SMALL + 7)).root_digest
        for r in ("mmap", "read", "capture", "map")
        for w in (1, 3)
    }
    assert len(sharded) == 1


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.binary(min_size=0, max_size=5000),
    shard_size=st.integers(min_value=1, max_value=6000),
    hash_type=st.sampled_from(["sha256", "blake2b", "blake3"]),
)
def test_shard_digests_are_digests_of_byte_ranges(
    tmp_path: Path, data: bytes, shard_size: int, hash_type: str
) -> None:
    path = tmp_path / f"f-{hashlib.sha256(data).hexdigest()[:8]}-{shard_size}.bin"
    path.write_bytes(data)
    manifest = hash_model(path, HashOptions(hash_type=hash_type, shard_size=shard_size))
    expected = []
    for start in range(0, len(data), shard_size):
        chunk = data[start : start + shard_size]
        if hash_type == "blake3":
            import blake3

            expected.append(blake3.blake3(chunk).digest())
        else:
            expected.append(hashlib.new(hash_type, chunk).digest())
    assert [i.digest for i in manifest.items] == expected
    assert all(
        i.end is not None and i.start is not None and i.end - i.start <= shard_size
        for i in manifest.items
    )


def test_default_ignores_git_paths_and_records_them(model_dir: Path) -> None:
    (model_dir / ".git").mkdir()
    (model_dir / ".git" / "HEAD").write_text("ref: main\n")
    (model_dir / ".gitattributes").write_text("*.bin lfs\n")
    manifest = hash_model(model_dir)
    assert not any(i.path.startswith(".git") for i in manifest.items)
    assert set(manifest.serialization.ignore_paths) >= {
        ".git",
        ".gitattributes",
        ".github",
        ".gitignore",
    }
    with_git = hash_model(model_dir, HashOptions(ignore_git_paths=False))
    assert {".git/HEAD", ".gitattributes"} <= {i.path for i in with_git.items}


def test_ignore_patterns_are_expanded_into_recorded_literal_paths(model_dir: Path) -> None:
    (model_dir / "README.md").write_text("# model\n")
    (model_dir / "weights" / "NOTES.md").write_text("notes\n")
    manifest = hash_model(model_dir, HashOptions(ignore=("*.md", "tokenizer.txt")))
    names = {i.path for i in manifest.items}
    assert "README.md" not in names and "weights/NOTES.md" not in names
    assert "tokenizer.txt" not in names
    assert {"README.md", "weights/NOTES.md", "tokenizer.txt"} <= set(
        manifest.serialization.ignore_paths
    )


def test_symlink_refused_by_default(model_dir: Path) -> None:
    os.symlink("config.json", model_dir / "link.json")
    with pytest.raises(ModelPathError, match=r"link.json.*symbolic link") as err:
        hash_model(model_dir)
    assert "allow symbolic links" in err.value.hint and err.value.topic == "symlinks"


def test_allowed_symlink_inside_root_hashes_target(model_dir: Path) -> None:
    os.symlink("config.json", model_dir / "link.json")
    manifest = hash_model(model_dir, HashOptions(allow_symlinks=True))
    items = manifest.by_name()
    assert items["link.json"].digest == items["config.json"].digest
    assert manifest.serialization.allow_symlinks is True


def test_symlink_escaping_root_never_read_even_when_allowed(
    model_dir: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    os.symlink(secret, model_dir / "escape.txt")
    os.symlink("..", model_dir / "up")
    refusals = hash_model_lenient(model_dir, HashOptions(allow_symlinks=True)).refusals
    codes = {(r.name, r.code) for r in refusals}
    assert ("escape.txt", "symlink") in codes and ("up", "symlink") in codes
    with pytest.raises(ModelPathError, match="outside the model"):
        hash_model(model_dir, HashOptions(allow_symlinks=True))


def test_special_files_refused(model_dir: Path) -> None:
    os.mkfifo(model_dir / "pipe")
    with pytest.raises(ModelPathError, match=r"pipe.*not a regular file"):
        hash_model(model_dir)


def test_missing_and_odd_model_paths(tmp_path: Path) -> None:
    with pytest.raises(ModelPathError, match="does not exist"):
        hash_model(tmp_path / "nope")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ModelPathError, match="neither a file nor a directory"):
        hash_model(tmp_path / "fifo")


def test_bad_options(model_dir: Path) -> None:
    from modelseal.errors import UnsupportedAlgorithmError

    with pytest.raises(UnsupportedAlgorithmError, match="md5"):
        hash_model(model_dir, HashOptions(hash_type="md5"))
    with pytest.raises(UsageError, match="shard size"):
        hash_model(model_dir, HashOptions(shard_size=0))


def test_file_swapped_for_symlink_between_listing_and_reading_is_refused(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """open_beneath uses O_NOFOLLOW on every component, so a late swap is not followed."""
    import modelseal.hashing.engine as engine

    secret = tmp_path / "secret"
    secret.write_bytes(b"outside the model")
    real_plan = engine.plan

    def plan_then_swap(listing: Listing, method: Method, shard_size: int | None) -> list[Task]:
        tasks = real_plan(listing, method, shard_size)
        target = model_dir / "config.json"
        target.unlink()
        os.symlink(secret, target)
        return tasks

    monkeypatch.setattr(engine, "plan", plan_then_swap)
    failures = hash_model_lenient(model_dir).failures
    assert [f.name for f in failures] == ["config.json"]
    assert "cannot open safely" in failures[0].message


def test_directory_swapped_for_symlink_is_not_followed(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    import modelseal.hashing.engine as engine

    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("model-00001.bin", "model-00002.bin", "empty.bin"):
        (outside / name).write_bytes(b"evil")
    real_plan = engine.plan

    def plan_then_swap(listing: Listing, method: Method, shard_size: int | None) -> list[Task]:
        tasks = real_plan(listing, method, shard_size)
        shutil.rmtree(model_dir / "weights")
        os.symlink(outside, model_dir / "weights")
        return tasks

    monkeypatch.setattr(engine, "plan", plan_then_swap)
    failures = hash_model_lenient(model_dir).failures
    assert {f.name for f in failures} == {
        "weights/model-00001.bin",
        "weights/model-00002.bin",
        "weights/empty.bin",
    }


def test_file_changed_size_during_sharded_hashing_is_reported(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import modelseal.hashing.engine as engine

    real_plan = engine.plan

    def plan_then_grow(listing: Listing, method: Method, shard_size: int | None) -> list[Task]:
        tasks = real_plan(listing, method, shard_size)
        with open(model_dir / "config.json", "ab") as fh:
            fh.write(b"more")
        return tasks

    monkeypatch.setattr(engine, "plan", plan_then_grow)
    with pytest.raises(ModelPathError, match=r"config.json.*changed size"):
        hash_model(model_dir, HashOptions(shard_size=4096))


def test_progress_reports_every_byte(model_dir: Path) -> None:
    seen: list[int] = []
    manifest = hash_model(model_dir, HashOptions(shard_size=10_000), progress=seen.append)
    on_disk = sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file())
    assert sum(seen) == manifest.total_bytes == on_disk


def test_memory_stays_bounded_on_a_large_file(tmp_path: Path) -> None:
    """Peak resident memory while hashing a 1 GiB file stays far below the file size."""
    import subprocess
    import sys

    big = tmp_path / "sparse.bin"
    with open(big, "wb") as fh:
        fh.truncate(1 << 30)
    # VmHWM is this process image's own peak; ru_maxrss would also count the parent's pages,
    # which Linux carries over into the child's record at exec.
    code = (
        "import re, sys\n"
        "from modelseal.hashing import HashOptions, hash_model\n"
        "hash_model(sys.argv[1], HashOptions(shard_size=1 << 28))\n"
        "status = open('/proc/self/status').read()\n"
        "print(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(big)], capture_output=True, text=True, check=True
    )
    peak_kib = int(out.stdout.strip())
    assert peak_kib < 400 * 1024, f"peak RSS {peak_kib} KiB"
