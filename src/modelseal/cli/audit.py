"""``modelseal audit``: verify the tamper-evident audit trail, export it, take checkpoints and
proofs."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import click

from modelseal.cli.common import emit_json, report
from modelseal.cli.store import store_options, with_backend

EXPORT_FIELDS = (
    "seq", "time", "actor", "roles", "action", "resource", "digest", "outcome", "reason",
    "request_id", "source", "details",
)  # fmt: skip


@click.group()
def audit() -> None:
    """Verify or export the audit trail."""


@audit.command()
@click.option(
    "--checkpoint",
    "checkpoints",
    multiple=True,
    type=click.Path(path_type=str),
    help="A signed checkpoint kept elsewhere; the log must extend it (repeatable).",
)
@click.option(
    "--vkey",
    type=click.Path(path_type=str),
    default=None,
    help="The log's verifier key (default: audit/log-key.vkey in the home).",
)
@click.option(
    "--no-witness",
    is_flag=True,
    help="Neither check nor update the witness checkpoint in the home.",
)
@click.option("--home", type=click.Path(path_type=str), default=None, help="Registry home.")
@click.option("--db-url", default=None, help="Database URL (SQLite or PostgreSQL).")
@click.option(
    "--server",
    default=None,
    help="Verify what this registry server serves (needs audit read) instead of "
    "reading a database.",
)
@click.option(
    "--token-file",
    type=click.Path(path_type=str),
    default=None,
    help="File holding the API token (else the token in $MODELSEAL_TOKEN).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify(
    checkpoints: tuple[str, ...],
    vkey: str | None,
    no_witness: bool,
    home: str | None,
    db_url: str | None,
    server: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Recompute the whole Merkle log from the records and check it against its signed
    checkpoints: any record modified, deleted, inserted or reordered, or the log truncated or
    rolled back (against --checkpoint or the witness), fails with exit 1."""
    import hashlib

    from modelseal.audit.note import NoteVerifier
    from modelseal.cli.store import config_from
    from modelseal.fsutil import atomic_write

    config = config_from(
        {"home": home, "db_url": db_url, "server": server, "token_file": token_file}
    )
    vkey_path = Path(vkey) if vkey else config.audit_vkey
    verifier = NoteVerifier.decode(_read(vkey_path, "verifier key"))
    notes = [_read(Path(p), "checkpoint") for p in checkpoints]
    witness = config.witness_path
    if config.server:
        tag = hashlib.sha256(config.server.encode()).hexdigest()[:12]
        witness = witness.with_name(f"witness-{tag}.checkpoint")
    if not no_witness and witness.exists():
        notes.append(_read(witness, "witness checkpoint"))
    if config.server:
        report = _verify_server(config, verifier, tuple(notes))
    else:
        report = _verify_database(config.db_url, verifier, tuple(notes))
    if as_json:
        emit_json(
            {
                "verified": report.ok,
                "size": report.size,
                "root": report.root.hex(),
                "checkpoints_checked": report.checkpoints_checked,
                "findings": [
                    {"kind": f.kind, "message": f.message, "seq": f.seq} for f in report.findings
                ],
            }
        )
    report.raise_for_findings()
    if not no_witness and report.note is not None:
        witness.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(witness, report.note.encode("utf-8"), mode=0o644)
    if not as_json:
        click.echo(
            f"audit log verified: {report.size} records, root {report.root.hex()}, "
            f"{report.checkpoints_checked} external checkpoint(s) consistent"
        )


def _verify_database(db_url: str, verifier: Any, notes: tuple[str, ...]) -> Any:
    import dataclasses

    from modelseal.audit.verify import verify_log
    from modelseal.errors import InputError
    from modelseal.registry.replay import check_live_state
    from modelseal.store import db

    engine = db.create_engine(db_url)
    try:
        if db.current_revision(engine) is None:
            raise InputError(f"no registry database at {db_url}", hint="check --home / --db-url")
        with db.reading(engine) as conn:
            report = verify_log(conn, verifier, checkpoints=notes)
            if report.ok:  # the log is sound: do the tables say what it says?
                state = check_live_state(conn)
                report = dataclasses.replace(
                    report, findings=tuple(state), note=None if state else report.note
                )
            return report
    finally:
        engine.dispose()


def _verify_server(config: Any, verifier: Any, notes: tuple[str, ...]) -> Any:
    from modelseal.audit.remote import verify_served_log
    from modelseal.cli.store import open_backend
    from modelseal.registry.audit_trail import GetCheckpoint, ListAuditRecords, ProveConsistency

    backend = open_backend(config)
    try:
        note = backend.call(GetCheckpoint())

        def consistency(old: int, new: int) -> list[bytes]:
            proof = backend.call(ProveConsistency(old=old, new=new)).proof
            return [bytes.fromhex(p) for p in proof]

        return verify_served_log(
            note,
            (r.model_dump() for r in backend.call(ListAuditRecords())),
            verifier,
            checkpoints=notes,
            consistency=consistency,
        )
    finally:
        backend.close()


@audit.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
    help="Output format.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=str),
    default=None,
    help="Write to this file (default: standard output).",
)
@store_options
@with_backend
def export(backend: Any, fmt: str, output: str | None) -> None:
    """Export every audit record for compliance tools."""
    from modelseal.registry.audit_trail import ListAuditRecords

    stream: Any = open(output, "w", newline="", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
    try:
        records = (r.model_dump() for r in backend.call(ListAuditRecords(export=True)))
        if fmt == "jsonl":
            for record in records:
                stream.write(json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")
        else:
            writer = csv.DictWriter(stream, fieldnames=EXPORT_FIELDS, lineterminator="\n")
            writer.writeheader()
            for record in records:
                row = dict(record)
                row["roles"] = ";".join(record["roles"])
                row["details"] = json.dumps(record["details"], sort_keys=True)
                row["digest"] = record["digest"] or ""
                writer.writerow(row)
    finally:
        if output:
            stream.close()


@audit.command()
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=str),
    default=None,
    help="Write the signed checkpoint to this file (keep it away from the database).",
)
@click.option("--json", "as_json", is_flag=True, help='Print {"checkpoint": NOTE} as JSON.')
@store_options
@with_backend
def checkpoint(backend: Any, output: str | None, as_json: bool) -> None:
    """Print a signed checkpoint (C2SP signed note) of the log's current tree head."""
    from modelseal.registry.audit_trail import GetCheckpoint

    note = backend.call(GetCheckpoint())
    if output:
        from modelseal.fsutil import atomic_write

        atomic_write(output, note.encode("utf-8"))
        report(as_json, {"output": output}, f"checkpoint written to {output}")
    elif as_json:
        emit_json({"checkpoint": note})
    else:
        click.echo(note, nl=False)


@audit.group()
def proof() -> None:
    """Inclusion and consistency proofs (RFC 6962)."""


@proof.command("inclusion")
@click.argument("index", type=int)
@click.option("--size", type=int, default=None, help="Tree size (default: current).")
@click.option("--json", "as_json", is_flag=True, help="Accepted for symmetry: always JSON.")
@store_options
@with_backend
def proof_inclusion(backend: Any, index: int, size: int | None, as_json: bool) -> None:
    """Prove record INDEX is in the log (JSON: record, proof hashes)."""
    from modelseal.registry.audit_trail import ProveInclusion

    emit_json(backend.call(ProveInclusion(index=index, size=size)))


@proof.command("consistency")
@click.argument("old_size", type=int)
@click.option("--size", type=int, default=None, help="New tree size (default: current).")
@click.option("--json", "as_json", is_flag=True, help="Accepted for symmetry: always JSON.")
@store_options
@with_backend
def proof_consistency(backend: Any, old_size: int, size: int | None, as_json: bool) -> None:
    """Prove the log of OLD_SIZE records is a prefix of the current one."""
    from modelseal.registry.audit_trail import ProveConsistency

    emit_json(backend.call(ProveConsistency(old=old_size, new=size)))


def _read(path: Path, what: str) -> str:
    from modelseal.errors import InputError

    try:
        from modelseal.fsinput import read_regular

        return read_regular(path, 64 << 20).decode("utf-8")  # never waits on a FIFO
    except OSError as exc:
        raise InputError(
            f"cannot read {what} {str(path)!r}: {exc.strerror}", hint="check the path"
        ) from None
