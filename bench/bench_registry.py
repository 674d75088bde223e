"""Keep (registry) benchmarks: durable audit appends, inclusion proofs at 1 million records, and
push throughput of a 1 GiB model.

    .venv/bin/python bench/bench_registry.py [--appends 10000] [--records 1000000] [--gib 1.0]
        [--runs 3] [--scale 1.0] [--phases appends,proofs,push]

* Durable audit appends per second on SQLite (WAL, synchronous=FULL) and on PostgreSQL
  (127.0.0.1, fsync on), against pymerkle's ``SqliteTree`` in the same run, same machine, same
  record bytes. Each append returns only once its record is committed. Modes: one writer
  committing each record alone; 8, 40 (the server's default worker threads), 64 and 128
  threads appending records that go with no change (``GroupCommitter.append``: denials, as
  the server does); 8 threads each committing a record with a change
  (``GroupCommitter.transaction``); one writer committing 50 records per transaction. pymerkle
  serves the same load its best way: ``append_entry`` from one thread, or from as many
  threads sharing one tree (its documented way to share a tree), whichever is quicker; the
  batched mode against its own batch call ``append_entries`` with 50 records a call. The
  events (like pymerkle's payloads) are built before the clock starts; each mode is one timed
  pass of ``--appends`` records. Target: >= 10x pymerkle.
* Inclusion-proof time at ``--records`` records (default 1,000,000), SQLite, median of 200
  random proofs (each fetches its nodes in one query). Target: < 5 ms. Also, for information,
  the time ``audit verify`` takes to recompute and check that whole log.
* Push throughput of a ``--gib`` GiB model (4 files) into the embedded store and through the HTTP
  server on 127.0.0.1, against copying and hashing the same files (read, SHA-256, write, fsync).
  Only the copy or the push is timed (opening the embedded store and deleting a run's output
  are not, for any contender), and each run starts after ``os.sync()`` so that no contender
  pays for write-back of data the previous step left dirty. Target: >= 0.7x.

Results: bench/out/registry.json and a markdown table on stdout. Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import platform
import random
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
MiB = 1 << 20
WRITERS = 8
BATCH = 50
PG = os.environ.get("MODELSEAL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _event(i: int) -> Any:
    from modelseal.audit.record import AuditEvent

    return AuditEvent(
        actor=f"user{i % 7}",
        roles=("ml-engineer",),
        action="alias.move",
        resource="model/fraud/aliases/staging",
        outcome="allowed",
        reason="role ml-engineer",
        digest="sha256:" + "ab" * 32,
        request_id=f"{i:032x}",
        source="127.0.0.1",
        details={"alias": "staging", "from": i, "to": i + 1},
    )


def _log(tmp: Path) -> Any:
    from modelseal.audit.log import AuditLog
    from modelseal.audit.note import load_or_create_signer

    return AuditLog(load_or_create_signer(tmp / "log-key.pem", "bench.local/audit"))


# Modes of the append benchmark: (name, writers, how each writer appends).
MODES = (
    ("sequential", 1, "alone"),  # one record per commit, nothing shared
    ("appends8", 8, "append"),  # records without a change (denials): GroupCommitter.append
    ("appends40", 40, "append"),  # as many as the server's default worker threads
    ("appends64", 64, "append"),  # registry serve --threads 64
    ("appends128", 128, "append"),  # registry serve --threads 128
    ("changes8", 8, "block"),  # each record with its change: GroupCommitter.transaction
    ("batched", 1, "batch"),  # BATCH records per commit, one caller
)


def bench_appends(tmp: Path, count: int) -> dict[str, Any]:
    from modelseal.audit.committer import GroupCommitter
    from modelseal.audit.record import AuditRecord
    from modelseal.store import db

    out: dict[str, Any] = {"appends": count}
    log = _log(tmp)
    # Built before any clock starts, as pymerkle's payloads are: only the appends are timed.
    events = [_event(i) for i in range(count)]

    def run(url: str, writers: int, how: str) -> float:
        engine = db.create_engine(url, pool_size=WRITERS)
        db.migrate(engine)
        committer = GroupCommitter(engine, log)

        def writer(w: int) -> None:
            for i in range(w, count, writers):
                if how == "alone":
                    with db.writing(engine) as conn:
                        log.append(conn, events[i])
                elif how == "append":
                    committer.append([events[i]])
                else:
                    with committer.transaction() as conn:
                        committer.record(conn, events[i])

        def batches(_: int) -> None:
            for first in range(0, count, BATCH):
                with db.writing(engine) as conn:
                    log.extend(conn, events[first : first + BATCH])

        elapsed = _timed_writers(batches if how == "batch" else writer, writers)
        engine.dispose()
        return count / elapsed

    for mode, writers, how in MODES:  # a fresh database per mode
        out[f"sqlite_{mode}_per_s"] = run(f"sqlite:///{tmp / f'audit-{mode}.db'}", writers, how)
    schema = f"bench_{secrets.token_hex(4)}"
    try:
        import psycopg

        for mode, writers, how in MODES:
            name = f"{schema}_{mode}"
            with psycopg.connect(PG, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{name}"')
            try:
                url = f"{PG}?options=-csearch_path%3D{name}"
                out[f"postgresql_{mode}_per_s"] = run(url, writers, how)
            finally:
                with psycopg.connect(PG, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA "{name}" CASCADE')
    except Exception as exc:  # PostgreSQL missing: say so, keep the rest
        out["postgresql_error"] = str(exc).splitlines()[0]

    payloads = [
        AuditRecord.from_event(i, "2026-01-01T00:00:00.000000Z", events[i]).canonical()
        for i in range(count)
    ]
    peers = _pymerkle_rates(tmp, payloads)
    out.update(peers)
    for mode, writers, how in MODES:
        # The peer serves the same load its best way: one tree shared by as many threads
        # (pymerkle serializes them with its lock; it has no group commit), or one caller, if
        # that is quicker; batches against its own batch call.
        if how == "batch":
            peer = peers["pymerkle_batched_per_s"]
        else:
            peer = max(peers["pymerkle_1_per_s"], peers[f"pymerkle_{writers}_per_s"])
        for tag in ("sqlite", "postgresql"):
            if f"{tag}_{mode}_per_s" in out:
                out[f"{tag}_{mode}_ratio"] = out[f"{tag}_{mode}_per_s"] / peer
                out[f"{tag}_{mode}_peer_per_s"] = peer
    return out


def _timed_writers(work: Callable[[int], None], writers: int) -> float:
    """Seconds for ``writers`` threads running ``work(w)`` (the caller's thread for one)."""
    if writers == 1:
        start = time.perf_counter()
        work(0)
        return time.perf_counter() - start
    threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def _pymerkle_rates(tmp: Path, payloads: list[bytes]) -> dict[str, float]:
    """pymerkle's ``SqliteTree``: ``append_entry`` from as many threads as each mode has,
    sharing one tree (its documented way to share a tree), and ``append_entries`` with BATCH a
    call."""
    from pymerkle import SqliteTree  # type: ignore[import-untyped]

    count = len(payloads)
    rates: dict[str, float] = {}
    for writers in sorted({w for _, w, _ in MODES}):
        with SqliteTree(str(tmp / f"pymerkle-{writers}.db")) as tree:
            work = functools.partial(_pymerkle_writer, tree, payloads, writers)
            rates[f"pymerkle_{writers}_per_s"] = count / _timed_writers(work, writers)
    with SqliteTree(str(tmp / "pymerkle-batched.db")) as tree:
        batches = functools.partial(_pymerkle_batches, tree, payloads)
        rates["pymerkle_batched_per_s"] = count / _timed_writers(batches, 1)
    return rates


def _pymerkle_writer(tree: Any, payloads: list[bytes], writers: int, w: int) -> None:
    for i in range(w, len(payloads), writers):
        tree.append_entry(payloads[i])


def _pymerkle_batches(tree: Any, payloads: list[bytes], _: int) -> None:
    for first in range(0, len(payloads), BATCH):
        tree.append_entries(payloads[first : first + BATCH])


def bench_proofs(tmp: Path, records: int, samples: int = 200) -> dict[str, Any]:
    """Load ``records`` records (bulk, same encoding and nodes as appends), then time proofs."""
    from sqlalchemy import insert, update

    from modelseal.audit import merkle
    from modelseal.audit.note import Checkpoint
    from modelseal.audit.record import AuditRecord
    from modelseal.store import db
    from modelseal.store.schema import audit_head, audit_nodes, audit_records

    log = _log(tmp)
    engine = db.create_engine(f"sqlite:///{tmp / 'proofs.db'}")
    db.migrate(engine)
    compact = merkle.CompactRange()
    load_start = time.perf_counter()
    batch = 20000
    for first in range(0, records, batch):
        rows: list[dict[str, Any]] = []
        nodes: list[dict[str, Any]] = []
        for i in range(first, min(first + batch, records)):
            record = AuditRecord.from_event(i, "2026-01-01T00:00:00.000000Z", _event(i))
            created = compact.append(merkle.leaf_hash(record.canonical()))
            root = compact.root()
            row = record.to_row()
            # One signature per batch keeps the load quick; proofs never read it.
            row.update(root=root, signature="")
            rows.append(row)
            nodes.extend({"level": lv, "idx": ix, "hash": h} for lv, ix, h in created)
        note = log.signer.sign(Checkpoint(log.origin, compact.size, compact.root()).text())
        rows[-1]["signature"] = note.rsplit("\n\n", 1)[1]
        with db.writing(engine) as conn:
            conn.execute(insert(audit_records), rows)
            conn.execute(insert(audit_nodes), nodes)
            conn.execute(update(audit_head).values(size=compact.size, peaks=compact.packed()))
    load_seconds = time.perf_counter() - load_start
    rng = random.Random(7)
    times = []
    with db.reading(engine) as conn:
        size = log.size(conn)
        root = log.head(conn).root
        for _ in range(samples):
            index = rng.randrange(size)
            start = time.perf_counter()
            proof = log.inclusion_proof(conn, index, size)
            times.append(time.perf_counter() - start)
            if _ < 5:  # spot-check correctness, untimed
                record = log.record(conn, index)
                leaf = merkle.leaf_hash(record.canonical())
                assert merkle.verify_inclusion(index, size, leaf, proof, root)
        cstart = time.perf_counter()
        log.consistency_proof(conn, size // 3, size)
        consistency_ms = (time.perf_counter() - cstart) * 1000
    from modelseal.audit.verify import verify_log

    vstart = time.perf_counter()
    with db.reading(engine) as conn:
        report = verify_log(conn, log.signer.verifier)
    verify_seconds = time.perf_counter() - vstart
    assert report.ok, report.findings[:3]
    engine.dispose()
    return {
        "records": records,
        "load_seconds": load_seconds,
        "inclusion_ms_median": statistics.median(times) * 1000,
        "inclusion_ms_p95": sorted(times)[int(len(times) * 0.95)] * 1000,
        "consistency_ms": consistency_ms,
        "samples": samples,
        "verify_seconds": verify_seconds,
    }


def _make_model(root: Path, total: int) -> None:
    root.mkdir(parents=True)
    block = random.Random(1).randbytes(16 * MiB)
    per = total // 4
    for i in range(4):
        with open(root / f"model-{i:05d}.safetensors", "wb") as f:
            left = per
            while left:
                n = min(left, len(block))
                f.write(block[:n] if i % 2 else block[n - 1 :: -1][:n])
                left -= n


def _copy_and_hash(src: Path, dst: Path) -> None:
    dst.mkdir()
    for path in sorted(src.iterdir()):
        hasher = hashlib.sha256()
        with open(path, "rb") as fin, open(dst / path.name, "wb") as fout:
            while chunk := fin.read(MiB):
                hasher.update(chunk)
                fout.write(chunk)
            fout.flush()
            os.fsync(fout.fileno())
        hasher.hexdigest()


def _median_time(
    fn: Callable[[int], None],
    runs: int,
    *,
    setup: Callable[[int], Any] | None = None,
    cleanup: Callable[[int], None] | None = None,
) -> float:
    """Median time of ``fn(i)``; ``setup`` and ``cleanup`` (opening a store, deleting what a
    run wrote) run outside the clock, for every contender alike."""
    times = []
    for i in range(runs):
        if setup is not None:
            setup(i)
        # Every run starts with no dirty pages waiting: the kernel writes back data left by
        # earlier steps (the model just generated, the last run's files) when it likes, and
        # that would land on whichever contender happens to run then.
        os.sync()
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
        if cleanup is not None:
            cleanup(i)
    return statistics.median(times)


def bench_push(tmp: Path, gib: float, runs: int) -> dict[str, Any]:
    import modelseal
    from modelseal.access.roles import Principal
    from modelseal.registry.backend import LocalBackend, push
    from modelseal.registry.config import RegistryConfig
    from modelseal.registry.core import Registry
    from modelseal.signing.keys import generate_key, write_key_pair

    total = int(gib * (1 << 30))
    model = tmp / "model"
    _make_model(model, total)
    write_key_pair(generate_key("ecdsa-p256"), tmp / "k.pem", tmp / "k.pub", passphrase=None)
    modelseal.sign(model, private_key=tmp / "k.pem", signature=tmp / "model.sig")
    for path in model.iterdir():  # warm the page cache for every contender alike
        with open(path, "rb") as f:
            while f.read(16 * MiB):
                pass

    def baseline(i: int) -> None:
        _copy_and_hash(model, tmp / f"copy{i}")

    base = _median_time(baseline, runs, cleanup=lambda i: shutil.rmtree(tmp / f"copy{i}"))

    backends: dict[int, LocalBackend] = {}

    def open_store(i: int) -> None:
        home = tmp / f"home{i}"
        config = RegistryConfig.resolve(home=home, db_url=f"sqlite:///{home / 'r.db'}")
        backends[i] = LocalBackend.open(config)

    def embedded(i: int) -> None:
        push(backends[i], model, name="big", signature=tmp / "model.sig",
             public_key=tmp / "k.pub")  # fmt: skip

    def close_store(i: int) -> None:
        backends.pop(i).close()
        shutil.rmtree(tmp / f"home{i}")

    local = _median_time(embedded, runs, setup=open_store, cleanup=close_store)

    # Through the HTTP server on loopback, in its own process (as deployed).
    import subprocess

    from modelseal.access import principals
    from modelseal.client import Client
    from modelseal.registry.gc import CollectGarbage
    from modelseal.registry.versions import DeleteVersion

    home = tmp / "server-home"
    db_url = f"sqlite:///{home / 'r.db'}"
    config = RegistryConfig.resolve(home=home, db_url=db_url)
    registry = Registry.open(config)
    admin = Principal("bench", superuser=True)
    registry.run(admin, principals.CreateUser(name="pusher"))
    registry.run(admin, principals.GrantRole(name="pusher", role="data-scientist", scope="*"))
    token = str(registry.run(admin, principals.CreateToken(name="pusher")).token)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelseal", "registry", "serve", "--port", str(port),
         "--home", str(home), "--db-url", db_url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        import httpx

        for _ in range(600):
            try:
                httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        client = Client(f"http://127.0.0.1:{port}", token=token, timeout=600)

        def remote(i: int) -> None:
            push(client, model, name=f"big{i}", signature=tmp / "model.sig",
                 public_key=tmp / "k.pub")  # fmt: skip

        def delete(i: int) -> None:
            registry.run(admin, DeleteVersion(name=f"big{i}", number=1, reason="bench"))
            registry.run(admin, CollectGarbage(grace_seconds=0))

        http = _median_time(remote, runs, cleanup=delete)
        client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        registry.close()
    return {
        "bytes": total,
        "baseline_copy_hash_s": base,
        "embedded_push_s": local,
        "http_push_s": http,
        "ratio_embedded": base / local,
        "ratio_http": base / http,
        "baseline_gib_per_s": total / base / (1 << 30),
        "embedded_gib_per_s": total / local / (1 << 30),
        "http_gib_per_s": total / http / (1 << 30),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=10000)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="size factor for all three (smoke runs)"
    )
    parser.add_argument(
        "--phases", default="appends,proofs,push",
        help="comma-separated subset of appends,proofs,push (while iterating)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    phases = {p.strip() for p in args.phases.split(",") if p.strip()}
    if not phases or phases - {"appends", "proofs", "push"}:
        parser.error("--phases takes a comma-separated subset of appends,proofs,push")
    if args.scale <= 0:
        parser.error("--scale must be positive")
    args.appends = max(10, int(args.appends * args.scale))
    args.records = max(1000, int(args.records * args.scale))
    args.gib = args.gib * args.scale
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }  # fmt: skip
    with tempfile.TemporaryDirectory(
        prefix="ms-bench-registry-", dir=os.environ.get("TMPDIR")
    ) as d:
        tmp = Path(d)
        if "appends" in phases:
            print("audit appends...", flush=True)
            (tmp / "a").mkdir()
            results["appends"] = bench_appends(tmp / "a", args.appends)
        if "proofs" in phases:
            print("inclusion proofs...", flush=True)
            (tmp / "p").mkdir()
            results["proofs"] = bench_proofs(tmp / "p", args.records)
        if "push" in phases:
            print("push...", flush=True)
            (tmp / "u").mkdir()
            results["push"] = bench_push(tmp / "u", args.gib, args.runs)
    OUT.mkdir(parents=True, exist_ok=True)
    name = "registry.json" if phases == {"appends", "proofs", "push"} else "registry-partial.json"
    (OUT / name).write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    a, p, u = results.get("appends"), results.get("proofs"), results.get("push")

    def fmt(x: float | None, spec: str = ".0f") -> str:
        return "n/a" if x is None else format(x, spec)

    rows: list[tuple[str, ...]] = []
    for db_name, tag in (("SQLite", "sqlite"), ("PostgreSQL", "postgresql")) if a else ():
        assert a is not None
        for mode, writers, how in MODES:
            rate, ratio = a.get(f"{tag}_{mode}_per_s"), a.get(f"{tag}_{mode}_ratio")
            label = {
                "alone": "1 writer, 1 record per commit",
                "append": f"{writers} writers, records alone (append)",
                "block": f"{writers} writers, records with changes (transaction)",
                "batch": f"1 writer, {BATCH} records per commit",
            }[how]
            peer = (
                f"pymerkle append_entries, {BATCH} a call"
                if how == "batch"
                else f"pymerkle append_entry, best of 1 and {writers} threads"
                if writers > 1
                else "pymerkle append_entry"
            )
            rows.append(
                (
                    f"durable audit appends/s, {db_name}, {label}",
                    fmt(rate),
                    f"{fmt(ratio, '.1f')}x {peer} ({fmt(a.get(f'{tag}_{mode}_peer_per_s'))}/s)",
                    ">= 10x",
                    "PASS" if (ratio or 0) >= 10 else "MISS",
                )
            )
    if p:
        rows += [
            (f"audit verify of {p['records']:,} records (SQLite, full recomputation)",
             f"{p['verify_seconds']:.1f} s", "", "(no target)", "-"),
            (f"inclusion proof at {p['records']:,} records (SQLite)",
             f"{p['inclusion_ms_median']:.2f} ms (p95 {p['inclusion_ms_p95']:.2f})", "", "< 5 ms",
             "PASS" if p["inclusion_ms_median"] < 5 else "MISS"),
        ]  # fmt: skip
    if u:
        rows += [
            (f"push {u['bytes'] / (1 << 30):.1f} GiB, embedded",
             f"{u['embedded_gib_per_s']:.2f} GiB/s",
             f"{u['ratio_embedded']:.2f}x copy+hash ({u['baseline_gib_per_s']:.2f} GiB/s)",
             ">= 0.7x", "PASS" if u["ratio_embedded"] >= 0.7 else "MISS"),
            (f"push {u['bytes'] / (1 << 30):.1f} GiB, HTTP on loopback",
             f"{u['http_gib_per_s']:.2f} GiB/s",
             f"{u['ratio_http']:.2f}x copy+hash", ">= 0.7x",
             "PASS" if u["ratio_http"] >= 0.7 else "MISS"),
        ]  # fmt: skip
    print()
    print("| measure | result | against | target | verdict |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nresults written to {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
