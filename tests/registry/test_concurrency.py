"""Parallel pushes of one model, on SQLite and on PostgreSQL: unique, gap-free version numbers,
no lost audit records, and a Merkle log that verifies afterwards."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from modelseal.access.roles import Principal
from modelseal.audit.verify import verify_log
from modelseal.registry.backend import LocalBackend, push
from modelseal.registry.versions import ListVersions, SetAlias
from modelseal.store import db
from tests.registry.fixtures import Env, SignedModel, open_env

WRITERS = 6
PUSHES = 4


@pytest.mark.parametrize("shared", [False, True], ids=["separate", "shared"])
def test_parallel_pushes(
    db_url: str, tmp_path: Path, signed_model: SignedModel, shared: bool
) -> None:
    home = tmp_path / "home"
    first = open_env(home, db_url)
    # separate: each writer has its own registry (engine, pool), like separate server processes;
    # shared: one registry for all, like one server's request threads (group commit).
    envs = (
        [first] * WRITERS
        if shared
        else [first] + [open_env(home, db_url) for _ in range(WRITERS - 1)]
    )
    errors: list[BaseException] = []
    barrier = threading.Barrier(WRITERS)

    def writer(env: Env, i: int) -> None:
        b = LocalBackend(env.registry, Principal(f"writer{i}", superuser=True))
        try:
            barrier.wait(timeout=60)
            for _ in range(PUSHES):
                push(b, signed_model.path, name="shared", signature=signed_model.signature,
                     public_key=signed_model.public_key)  # fmt: skip
                b.call(SetAlias(name="shared", alias="staging", version=1))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(env, i)) for i, env in enumerate(envs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    try:
        assert not errors, errors
        versions = first.registry.run(first.admin, ListVersions(name="shared"))
        assert [v.version for v in versions] == list(range(1, WRITERS * PUSHES + 1))
        by_writer = {v.created_by for v in versions}
        assert by_writer == {f"writer{i}" for i in range(WRITERS)}
        with db.reading(first.engine()) as conn:
            records = list(first.registry.audit.records(conn))
            report = verify_log(conn, first.registry.audit.signer.verifier)
        report.raise_for_findings()
        publishes = [r for r in records if r.action == "version.publish"]
        assert sorted(r.resource for r in publishes) == sorted(
            f"model/shared/versions/{n}" for n in range(1, WRITERS * PUSHES + 1)
        )
        assert sum(r.action == "model.create" for r in records) == 1
        assert sum(r.action == "alias.move" for r in records) == WRITERS * PUSHES
        assert [r.seq for r in records] == list(range(len(records)))
    finally:
        for env in {id(e): e for e in envs}.values():
            env.registry.close()
