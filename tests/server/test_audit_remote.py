"""`modelseal audit verify --server`: a compliance officer verifies the served log against the
server's signed checkpoint and a witness kept on their side; tampering in the server's database
(a modified record, a truncated tail) is caught."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from modelseal.access.principals import CreateUser
from modelseal.audit import merkle
from modelseal.audit.record import AuditRecord
from modelseal.cli.main import main
from modelseal.store import db
from modelseal.store.schema import audit_head, audit_nodes, audit_records
from tests.server.conftest import Running


def test_remote_verify(
    sqlite_server: Running, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    running = sqlite_server
    monkeypatch.setenv("MODELSEAL_HOME", str(tmp_path / "officer"))
    token = tmp_path / "token"
    token.write_text(running.token_for("cora", "compliance-officer"))
    vkey = tmp_path / "log.vkey"
    vkey.write_text(running.env.registry.audit.signer.verifier.encode() + "\n")
    args = ["audit", "verify", "--server", running.url, "--token-file", str(token),
            "--vkey", str(vkey)]  # fmt: skip
    for i in range(4):
        running.env.registry.run(running.env.admin, CreateUser(name=f"user{i}"))
    assert main(args) == 0
    assert "0 external checkpoint(s)" in capsys.readouterr().out
    running.env.registry.run(running.env.admin, CreateUser(name="later"))
    assert main(args) == 0  # the witness from the first run is extended
    assert "1 external checkpoint(s) consistent" in capsys.readouterr().out

    engine = running.env.engine()
    with db.writing(engine) as conn:
        conn.execute(update(audit_records).where(audit_records.c.seq == 2).values(actor="x"))
    assert main(args) == 1
    assert "do not hash to the signed head" in capsys.readouterr().err
    with db.writing(engine) as conn:  # undo, then truncate consistently (records, nodes, head)
        conn.execute(
            update(audit_records).where(audit_records.c.seq == 2).values(actor="local:test")
        )
        conn.execute(delete(audit_records).where(audit_records.c.seq >= 5))
        leaves = [
            merkle.leaf_hash(AuditRecord.from_row(r).canonical())
            for r in conn.execute(select(audit_records).order_by(audit_records.c.seq)).mappings()
        ]
        compact = merkle.CompactRange()
        for leaf in leaves:
            compact.append(leaf)
        conn.execute(delete(audit_nodes))
        conn.execute(update(audit_head).values(size=compact.size, peaks=compact.packed()))
    assert main(args) == 1
    assert "truncated or rolled back" in capsys.readouterr().err
    assert main([*args, "--no-witness"]) == 0  # without a witness it cannot be seen
    bad = tmp_path / "other.vkey"
    from modelseal.audit.note import generate_signer

    bad.write_text(generate_signer("other.log").verifier.encode())
    assert main([*args[:-1], str(bad), "--no-witness"]) == 1
    assert "server checkpoint" in capsys.readouterr().err
