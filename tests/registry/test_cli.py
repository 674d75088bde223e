"""The embedded CLI end to end: push, pull, alias, models, versions, users, tokens, roles, audit
verify/export/checkpoint; every error is one line with its exit code."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
from pathlib import Path

import pytest

from modelseal.cli.main import main
from tests.registry.fixtures import SignedModel


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("MODELSEAL_HOME", str(h))
    for var in ("MODELSEAL_DB_URL", "MODELSEAL_BLOB_URL", "MODELSEAL_SERVER", "MODELSEAL_TOKEN",
                "MODELSEAL_AUDIT_KEY"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    return h


def run(capsys: pytest.CaptureFixture[str], *args: str | os.PathLike[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("modelseal: error: ")
    return lines[0]


def test_embedded_workflow(
    home: Path, signed_model: SignedModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sm = signed_model
    push = ("push", sm.path, "--name", "fraud", "--signature", sm.signature,
            "--public-key", sm.public_key)  # fmt: skip
    code, out, _ = run(capsys, *push, "--metadata", "team=risk", "--code-revision", "abc")
    assert code == 0 and out.startswith("published fraud:1")
    code, out, _ = run(capsys, *push, "--json", "--parent", "1")
    assert code == 0 and json.loads(out)["lineage"] == {"parent_version": 1}
    assert run(capsys, "alias", "set", "fraud", "staging", "2")[0] == 0
    code, out, _ = run(capsys, "models", "list", "--json")
    assert json.loads(out)[0]["aliases"] == {"staging": 2}
    code, out, _ = run(capsys, "versions", "list", "fraud")
    assert code == 0 and "[staging]" in out.splitlines()[1]
    code, out, _ = run(capsys, "pull", "fraud@staging", tmp_path / "out")
    assert code == 0 and "verified" in out
    assert (tmp_path / "out" / "config.json").read_bytes() == (sm.path / "config.json").read_bytes()
    code, out, _ = run(capsys, "versions", "show", "fraud:1")
    assert json.loads(out)["metadata"] == {"team": "risk"}
    assert run(capsys, "versions", "delete", "fraud", "1", "--reason", "bad data")[0] == 0
    code, out, _ = run(capsys, "audit", "checkpoint", "-o", tmp_path / "cp")
    assert code == 0 and (tmp_path / "cp").read_text().startswith("modelseal.local/audit\n")
    code, out, err = run(capsys, "audit", "verify", "--checkpoint", tmp_path / "cp")
    assert code == 0, err
    assert "1 external checkpoint(s) consistent" in out
    assert (home / "audit" / "witness.checkpoint").exists()
    code, out, _ = run(capsys, "audit", "export", "--format", "jsonl")
    records = [json.loads(line) for line in out.splitlines()]
    downloads = ["model.download"] * 5  # the pull: every file's download is audited
    assert [r["action"] for r in records] == [
        "model.create", "version.publish", "version.publish", "alias.move", *downloads,
        "version.delete",
    ]  # fmt: skip
    code, out, _ = run(capsys, "audit", "export", "--format", "csv", "-o", tmp_path / "a.csv")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "a.csv").read_text())))
    assert len(rows) == 10 and rows[3]["action"] == "alias.move"
    code, out, _ = run(capsys, "audit", "proof", "inclusion", "2")
    assert json.loads(out)["record"]["action"] == "version.publish"
    code, out, _ = run(capsys, "audit", "proof", "consistency", "2")
    assert json.loads(out)["new_size"] == 10
    code, out, _ = run(capsys, "registry", "gc", "--grace", "1s", "--json")
    assert code == 0 and json.loads(out)["blobs_deleted"] == 0


def test_access_commands(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "user", "create", "alice")[0] == 0
    assert run(capsys, "role", "grant", "alice", "data-scientist", "--scope", "alice-*")[0] == 0
    code, out, err = run(capsys, "token", "create", "alice", "--expires-in", "1h")
    token = out.strip()
    assert code == 0 and token.startswith("msk_") and "not shown again" in err
    code, out, _ = run(capsys, "token", "create", "alice", "-o", tmp_path / "tok")
    assert os.stat(tmp_path / "tok").st_mode & 0o777 == 0o600
    code, out, _ = run(capsys, "user", "list", "--json")
    users = json.loads(out)
    assert users[0]["roles"] == ["data-scientist[alice-*]"] and len(users[0]["tokens"]) == 2
    assert token not in out  # never shown again
    token_id = users[0]["tokens"][0]["id"]
    assert run(capsys, "token", "revoke", token_id)[0] == 0
    assert run(capsys, "role", "revoke", "alice", "data-scientist", "--scope", "alice-*")[0] == 0
    assert run(capsys, "user", "disable", "alice")[0] == 0
    code, out, _ = run(capsys, "role", "list")
    assert "devops: alias.production" in out
    # The database never holds a token value.
    db = sqlite3.connect(home / "registry.db")
    dump = "\n".join(db.iterdump())
    secret = token.split("_", 2)[2]  # the secret itself may contain "_"
    assert len(secret) >= 40 and secret not in dump


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("pull", "nope", "{tmp}/x"), 2, "unknown model 'nope'"),
        (("pull", "bad name!", "{tmp}/x"), 2, "invalid model name"),
        (("alias", "set", "nope", "staging", "1"), 2, "unknown model"),
        (("versions", "list", "nope"), 2, "unknown model"),
        (("user", "create", "alice"), 0, ""),
        (("role", "grant", "bob", "admin"), 2, "unknown user 'bob'"),
        (("role", "grant", "alice", "wizard"), 2, "unknown role 'wizard'"),
        (("role", "revoke", "alice", "admin"), 2, "does not have admin"),
        (("token", "revoke", "0000"), 2, "no active token"),
        (("token", "create", "alice", "--expires-in", "soon"), 2, "invalid duration"),
        (("registry", "gc", "--grace", "0s"), 2, "invalid duration"),
        (("audit", "verify", "--checkpoint", "{tmp}/none"), 2, "cannot read checkpoint"),
        (("audit", "verify", "--vkey", "{tmp}/none"), 2, "cannot read verifier key"),
        (("push", "{tmp}", "--name", "m", "--signature", "{tmp}/none"), 2, "cannot read signature"),
        (
            ("push", "{tmp}", "--name", "m", "--signature", "x", "--metadata", "nokey"),
            2,
            "invalid --metadata",
        ),
        (("pull", "m", "{tmp}/x", "--token-file", "{tmp}/none"), 2, "cannot read token file"),
        (("registry", "serve", "--tls-cert", "{tmp}/c"), 2, ""),
    ],
)
def test_errors_are_one_line(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...], code: int, message: str,
) -> None:  # fmt: skip
    if args[0] != "user":
        run(capsys, "user", "create", "alice")
    got, _out, err = run(capsys, *(a.format(tmp=tmp_path) for a in args))
    assert got == code, err
    if code:
        assert message in one_line_error(err)


def test_audit_verify_detects_tampering_from_the_cli(
    home: Path, signed_model: SignedModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sm = signed_model
    for _ in range(3):
        run(capsys, "push", sm.path, "--name", "m", "--signature", sm.signature,
            "--public-key", sm.public_key)  # fmt: skip
    assert run(capsys, "audit", "verify")[0] == 0  # also records the witness
    db = sqlite3.connect(home / "registry.db")
    db.execute("UPDATE audit_records SET actor = 'mallory' WHERE seq = 1")
    db.commit()
    code, out, err = run(capsys, "audit", "verify", "--json")
    assert code == 1
    assert json.loads(out)["findings"][0]["kind"] == "modified"
    assert "audit log does not verify" in one_line_error(err)
    # Drop the tail as well: caught without any witness (the head row disagrees).
    db.execute("DELETE FROM audit_records WHERE seq >= 2")
    db.commit()
    code, _, err = run(capsys, "audit", "verify", "--no-witness")
    assert code == 1


def test_push_over_the_file_size_cap(
    home: Path,
    signed_model: SignedModel,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODELSEAL_MAX_FILE_BYTES", "60000")
    sm = signed_model
    code, _, err = run(capsys, "push", sm.path, "--name", "m", "--signature", sm.signature,
                       "--public-key", sm.public_key)  # fmt: skip
    assert code == 2
    line = one_line_error(err)
    assert "larger than this registry accepts (60000 bytes)" in line
    monkeypatch.setenv("MODELSEAL_MAX_FILE_BYTES", "a lot")
    code, _, err = run(capsys, "models", "list")
    assert code == 2 and "invalid max_file_bytes" in one_line_error(err)
