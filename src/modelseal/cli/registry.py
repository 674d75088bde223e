"""``modelseal registry|push|pull|alias|models|versions``: the model registry from the command
line, on the embedded store (default) or a registry server (``--server``)."""

from __future__ import annotations

import json
from typing import Any

import click

from modelseal.cli.common import TransferProgress, emit_json, open_kek, report
from modelseal.cli.options import PORT
from modelseal.cli.rotation import rotate_registry, rotation_options
from modelseal.cli.store import (
    opened_with_config,
    store_options,
    with_backend,
)


@click.group()
def registry() -> None:
    """Run or maintain the model registry."""


@registry.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8470, show_default=True, type=PORT, help="Port to listen on.")
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="TLS certificate (PEM); serve HTTPS with --tls-key.",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="TLS private key (PEM).",
)
@click.option("--home", type=click.Path(path_type=str), default=None, help="Registry home.")
@click.option("--db-url", default=None, help="Database URL (SQLite or PostgreSQL).")
@click.option("--blob-url", default=None, help="Blob store: a folder or s3://bucket/prefix.")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Requests handled at once in worker threads [default: server_threads, 40].",
)
@click.option(
    "--forwarded-allow-ips",
    default=None,
    metavar="IPS",
    help="Proxies whose X-Forwarded-For headers are believed (comma-separated addresses or "
    "networks, '*' for any) [default: forwarded_allow_ips, none].",
)
def serve(
    host: str,
    port: int,
    tls_cert: str | None,
    tls_key: str | None,
    threads: int | None,
    forwarded_allow_ips: str | None,
    **kwargs: Any,
) -> None:
    """Serve the registry's HTTP API (OpenAPI at /docs and /openapi.json)."""
    import dataclasses

    from modelseal.cli.store import config_from
    from modelseal.errors import UsageError
    from modelseal.server.run import serve as run

    if (tls_cert is None) != (tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together", hint="give both or neither")
    config = config_from(kwargs)
    if threads is not None:
        config = dataclasses.replace(config, server_threads=threads)
    if forwarded_allow_ips is not None:
        from modelseal.registry.config import proxies

        config = dataclasses.replace(config, forwarded_allow_ips=proxies(forwarded_allow_ips))
    run(config, host=host, port=port, tls_cert=tls_cert, tls_key=tls_key)


@registry.command()
@click.option(
    "--grace",
    default="1h",
    show_default=True,
    help="Only collect what is older than this (uploads in flight are younger).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@store_options
@with_backend
def gc(backend: Any, grace: str, as_json: bool) -> None:
    """Delete blobs no version references, expired uploads and abandoned temporary files."""
    from modelseal.cli.store import parse_duration
    from modelseal.registry.gc import CollectGarbage

    seconds = parse_duration(grace)
    report = backend.call(
        CollectGarbage(grace_seconds=seconds.total_seconds() if seconds else 3600.0)
    )
    if as_json:
        emit_json(report)
    else:
        click.echo(
            f"deleted {report.blobs_deleted} blob(s) ({report.bytes_freed} bytes), "
            f"{report.uploads_expired} expired upload(s), {report.temporaries_deleted} "
            "temporary file(s)"
        )


@registry.group()
def trust() -> None:
    """Signer keys the registry trusts for pushes (security engineers)."""


@trust.command("add")
@click.argument("public_key", type=click.Path(path_type=str))
@click.option("--name", required=True, help="Whose key this is.")
@click.option(
    "--purpose",
    type=click.Choice(["signer", "gate"]),
    default="signer",
    show_default=True,
    help="signer: may sign pushed models; gate: may sign gate decisions (protected aliases).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@store_options
@with_backend
def trust_add(backend: Any, public_key: str, name: str, purpose: str, as_json: bool) -> None:
    """Trust PUBLIC_KEY for pushes; once any key is trusted, only trusted keys may sign."""

    from modelseal.errors import InputError

    try:
        from modelseal.fsinput import read_regular

        pem = read_regular(public_key, 1 << 20)  # never waits on a FIFO
    except OSError as exc:
        raise InputError(
            f"cannot read public key {public_key!r}: {exc.strerror}", hint="check the path"
        ) from None
    from modelseal.registry.trusted_keys import AddTrustedKey

    pem_text = pem.decode("utf-8", errors="replace")
    added = backend.call(AddTrustedKey(pem=pem_text, name=name, purpose=purpose))
    report(as_json, added, f"trusted {purpose} key {added.id} ({added.name})")


@trust.command("remove")
@click.argument("key_id")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@store_options
@with_backend
def trust_remove(backend: Any, key_id: str, as_json: bool) -> None:
    """Stop trusting the key with id KEY_ID."""
    from modelseal.registry.trusted_keys import RemoveTrustedKey

    done = backend.call(RemoveTrustedKey(key_id=key_id))
    report(as_json, done, f"removed trusted key {key_id}")


@trust.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@store_options
@with_backend
def trust_list(backend: Any, as_json: bool) -> None:
    """List the trusted signer keys."""
    from modelseal.registry.trusted_keys import ListTrustedKeys

    keys = backend.call(ListTrustedKeys())
    if as_json:
        emit_json(keys)
        return
    for key in keys:
        click.echo(f"{key.id}  {key.name}  added {key.added_at} by {key.added_by}")


@click.command()
@click.argument("model_path", type=click.Path(path_type=str))
@click.option("--name", required=True, help="Model name (the version is the next number).")
@click.option(
    "--signature",
    required=True,
    type=click.Path(path_type=str),
    help="The model's OMS signature bundle.",
)
@click.option(
    "--public-key",
    type=click.Path(path_type=str),
    default=None,
    help="The signer's public key (for key-based signatures).",
)
@click.option(
    "--metadata",
    "metadata",
    multiple=True,
    metavar="KEY=VALUE",
    help="Metadata to record (repeatable).",
)
@click.option(
    "--environment",
    type=click.Path(dir_okay=False),
    default=None,
    help="The training environment (from 'modelseal env capture'), recorded for the gate.",
)
@click.option(
    "--input-signature",
    type=click.Path(dir_okay=False),
    default=None,
    help="The model's input signature (JSON), recorded for 'modelseal serve' to check requests.",
)
@click.option("--training-data", default=None, help="Lineage: digest of the training data.")
@click.option("--code-revision", default=None, help="Lineage: code revision (e.g. a git SHA).")
@click.option("--parent", type=int, default=None, help="Lineage: parent version number.")
@click.option("--encrypt-with", "encrypt_with_old", default=None, hidden=True)
@click.option(
    "--kek",
    "encrypt_with",
    default=None,
    metavar="URI",
    help="Encrypt the version on this side under a fresh data key wrapped by this "
    "key-encryption key (local:PATH, pkcs11:..., aws-kms:...); only ciphertext leaves. "
    "Default: $MODELSEAL_ENCRYPTION_KEK or encryption_kek in config.toml.",
)
@click.option("--no-encrypt", is_flag=True, help="Push in plaintext even if a default KEK is set.")
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Passphrase of a local: KEK file (else $MODELSEAL_PASSPHRASE, else a prompt).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the new version as JSON.")
@store_options
def push(
    model_path: str,
    name: str,
    signature: str,
    public_key: str | None,
    metadata: tuple[str, ...],
    environment: str | None,
    input_signature: str | None,
    training_data: str | None,
    code_revision: str | None,
    parent: int | None,
    encrypt_with: str | None,
    encrypt_with_old: str | None,
    no_encrypt: bool,
    passphrase_file: str | None,
    as_json: bool,
    **store: Any,
) -> None:
    """Publish the signed model at MODEL_PATH as the next version of --name."""
    from modelseal.errors import UsageError
    from modelseal.registry.backend import push as do_push
    from modelseal.registry.models import Lineage

    meta: dict[str, str] = {}
    for pair in metadata:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"invalid --metadata {pair!r}", hint="use KEY=VALUE")
        meta[key] = value
    recorded: dict[str, Any] = dict(meta)
    if environment is not None:
        recorded["environment"] = _environment(environment)
    if input_signature is not None:
        from modelseal.serving.signature import load_signature_file

        recorded["input_signature"] = load_signature_file(input_signature).to_dict()
    encrypt_with = encrypt_with or encrypt_with_old  # --encrypt-with: the old name of --kek
    if encrypt_with is not None and no_encrypt:
        raise UsageError("--kek and --no-encrypt are exclusive", hint="choose one")
    with (
        opened_with_config(store) as (backend, config),
        TransferProgress("pushing", not as_json) as progress,
    ):
        uri = None if no_encrypt else encrypt_with or config.encryption_kek
        kek = open_kek(uri, passphrase_file) if uri else None  # any prompt before the bar
        info = do_push(
            backend, model_path, name=name, signature=signature, public_key=public_key,
            metadata=recorded, lineage=Lineage(training_data, code_revision, parent), kek=kek,
            progress=progress,
        )  # fmt: skip
    if as_json:
        emit_json(info)
    else:
        sealed = " (encrypted)" if info.encrypted else ""
        digest = info.root_digest.sha256
        click.echo(f"published {info.model}:{info.version}  sha256:{digest}{sealed}")


def _environment(path: str) -> dict[str, Any]:
    """An environment document, checked, for the version's metadata."""
    from modelseal.errors import InputError
    from modelseal.fsinput import read_regular
    from modelseal.policy.environment import read_environment

    try:
        data = json.loads(read_regular(path, 64 << 20).decode("utf-8"))  # never waits on a FIFO
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(
            f"cannot read environment {path!r}: {exc}", hint="check the path"
        ) from None
    return read_environment(data, path).model_dump()


@click.command()
@click.argument("ref", metavar="NAME[:VERSION|@ALIAS]")
@click.argument("dest", type=click.Path(path_type=str))
@click.option(
    "--public-key",
    type=click.Path(path_type=str),
    default=None,
    help="Verify with this key instead of the one the registry recorded.",
)
@click.option(
    "--trust-anchor",
    "trust_anchors",
    multiple=True,
    type=click.Path(path_type=str),
    help="CA certificate(s) for certificate-signed versions (repeatable).",
)
@click.option(
    "--kek",
    default=None,
    metavar="URI",
    help="Key-encryption key of an encrypted version (default $MODELSEAL_ENCRYPTION_KEK or "
    "encryption_kek in config.toml); opened only if the version is encrypted.",
)
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Passphrase of a local: KEK file (else $MODELSEAL_PASSPHRASE, else a prompt).",
)
@click.option("--force", is_flag=True, help="Replace DEST if it exists (once verified).")
@click.option("--json", "as_json", is_flag=True, help="Print the version as JSON.")
@store_options
def pull(
    ref: str,
    dest: str,
    public_key: str | None,
    trust_anchors: tuple[str, ...],
    kek: str | None,
    passphrase_file: str | None,
    force: bool,
    as_json: bool,
    **store: Any,
) -> None:
    """Download a model version to DEST and verify it against its signature (decrypting an
    encrypted version in a private staging directory first)."""
    from modelseal.registry.backend import pull as do_pull
    from modelseal.registry.models import VersionRef

    with (
        opened_with_config(store) as (backend, config),
        TransferProgress("pulling", not as_json) as progress,
    ):
        uri = kek or config.encryption_kek
        info = do_pull(
            backend, VersionRef.parse(ref), dest, public_key=public_key,
            trust_anchors=trust_anchors,
            kek=(lambda: open_kek(uri, passphrase_file)) if uri else None, overwrite=force,
            progress=progress,
        )  # fmt: skip
    if as_json:
        emit_json(info)
    else:
        digest = info.root_digest.sha256
        click.echo(f"pulled {info.model}:{info.version} to {dest}  verified sha256:{digest}")


@click.group()
def alias() -> None:
    """Move aliases (staging, production, any name)."""


@alias.command("set")
@click.argument("name")
@click.argument("alias_name", metavar="ALIAS")
@click.argument("version", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@store_options
@with_backend
def alias_set(backend: Any, name: str, alias_name: str, version: int, as_json: bool) -> None:
    """Point ALIAS of model NAME at VERSION (moving it back is a rollback)."""
    from modelseal.registry.versions import SetAlias

    info = backend.call(SetAlias(name=name, alias=alias_name, version=version))
    report(
        as_json, info, f"{name}@{alias_name} -> {info.version}  sha256:{info.root_digest.sha256}"
    )


@alias.command("remove")
@click.argument("name")
@click.argument("alias_name", metavar="ALIAS")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@store_options
@with_backend
def alias_remove(backend: Any, name: str, alias_name: str, as_json: bool) -> None:
    """Remove ALIAS of model NAME (the version stays)."""
    from modelseal.registry.versions import RemoveAlias

    done = backend.call(RemoveAlias(name=name, alias=alias_name))
    report(as_json, done, f"removed {name}@{alias_name}")


@alias.command("list")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@store_options
@with_backend
def alias_list(backend: Any, name: str, as_json: bool) -> None:
    """List the aliases of model NAME: the version each points at, and its last move."""
    from modelseal.registry.versions import ListAliases

    found = backend.call(ListAliases(name=name))
    if as_json:
        emit_json(found)
        return
    for a in found:
        click.echo(f"{name}@{a.alias} -> {a.version}  moved {a.updated_at} by {a.updated_by}")


@click.group()
def models() -> None:
    """List models."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@store_options
@with_backend
def models_list(backend: Any, as_json: bool) -> None:
    """List the models you may read, with their latest version and aliases."""
    from modelseal.registry.versions import ListModels

    found = backend.call(ListModels())
    if as_json:
        emit_json(found)
        return
    for m in found:
        tags = " ".join(f"{a}={v}" for a, v in sorted(m.aliases.items()))
        latest = "-" if m.latest_version is None else m.latest_version
        click.echo(f"{m.name}  latest={latest}  {tags}".rstrip())


@click.group()
def versions() -> None:
    """List a model's versions."""


@versions.command("list")
@click.argument("name")
@click.option("--all", "include_deleted", is_flag=True, help="Include deleted versions (marked).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@store_options
@with_backend
def versions_list(backend: Any, name: str, include_deleted: bool, as_json: bool) -> None:
    """List the live versions of NAME (with --all, the deleted ones too)."""
    from modelseal.registry.versions import ListVersions

    found = backend.call(ListVersions(name=name, include_deleted=include_deleted))
    if as_json:
        emit_json(found)
        return
    for v in found:
        state = " DELETED" if v.deleted else " QUARANTINED" if v.quarantined else ""
        tags = f" [{', '.join(v.aliases)}]" if v.aliases else ""
        digest = v.root_digest.sha256[:16]
        click.echo(f"{v.version}  sha256:{digest}  {v.created_at}  {v.created_by}{tags}{state}")


@versions.command("delete")
@click.argument("name")
@click.argument("version", type=int)
@click.option("--reason", required=True, help="Why (recorded in the audit trail).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@store_options
@with_backend
def versions_delete(backend: Any, name: str, version: int, reason: str, as_json: bool) -> None:
    """Tombstone VERSION of NAME: kept in the record, no longer downloadable."""
    from modelseal.registry.versions import DeleteVersion

    info = backend.call(DeleteVersion(name=name, number=version, reason=reason))
    report(as_json, info, f"deleted {name}:{version}")


@versions.command("release")
@click.argument("name")
@click.argument("version", type=int)
@click.option("--reason", required=True, help="Why it is safe (recorded in the audit trail).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@store_options
@with_backend
def versions_release(backend: Any, name: str, version: int, reason: str, as_json: bool) -> None:
    """Release quarantined VERSION of NAME after reviewing its scan report."""
    from modelseal.registry.versions import ReleaseVersion

    info = backend.call(ReleaseVersion(name=name, number=version, reason=reason))
    report(as_json, info, f"released {name}:{version} from quarantine")


@versions.command("scan-report")
@click.argument("ref", metavar="NAME:VERSION")
@click.option("--json", "as_json", is_flag=True, help="Accepted for symmetry: always JSON.")
@store_options
@with_backend
def versions_scan_report(backend: Any, ref: str, as_json: bool) -> None:
    """Print what scanning VERSION's files found when it was pushed (JSON)."""
    from modelseal.errors import UsageError
    from modelseal.registry.models import VersionRef
    from modelseal.registry.versions import GetScanReport

    parsed = VersionRef.parse(ref)
    if parsed.number is None:
        raise UsageError(f"{ref!r} names no version", hint="use NAME:VERSION")
    emit_json(backend.call(GetScanReport(name=parsed.model, number=parsed.number)))


@versions.command("show")
@click.argument("ref", metavar="NAME[:VERSION|@ALIAS]")
@click.option("--json", "as_json", is_flag=True, help="Accepted for symmetry: always JSON.")
@store_options
@with_backend
def versions_show(backend: Any, ref: str, as_json: bool) -> None:
    """Print one version as JSON (with its signature bundle)."""
    from modelseal.registry.models import VersionRef
    from modelseal.registry.versions import ResolveVersion

    parsed = VersionRef.parse(ref)
    info = backend.call(ResolveVersion(name=parsed.model, version=parsed.number,
                                       alias=parsed.alias))  # fmt: skip
    emit_json(info)


@registry.group("keys")
def registry_keys() -> None:
    """Wrapped data keys of encrypted versions (security engineers)."""


@registry_keys.command("list")
@click.option("--provider", default=None, help="Only keys wrapped by this provider scheme.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with the envelopes).")
@store_options
@with_backend
def registry_keys_list(backend: Any, provider: str | None, as_json: bool) -> None:
    """List encrypted versions and the KEK that wraps each one's data key."""
    from modelseal.registry.datakeys import ListVersionKeys

    found = backend.call(ListVersionKeys(provider=provider))
    if as_json:
        emit_json(found)
        return
    for k in found:
        click.echo(f"{k.model}:{k.version}  {k.provider}:{k.kek_id}")


@registry_keys.command("rotate")
@rotation_options
@click.option("--json", "as_json", is_flag=True, help="Report as JSON.")
@store_options
@with_backend
def registry_keys_rotate(
    backend: Any,
    kek: str,
    new_kek: str | None,
    keep_old: bool,
    passphrase_file: str | None,
    as_json: bool,
) -> None:
    """Re-wrap every encrypted version's data key under a new KEK (no data re-encrypted), in
    one audited registry transaction, then retire the old KEKs."""
    rotate_registry(backend, kek, new_kek, keep_old, passphrase_file, as_json)
