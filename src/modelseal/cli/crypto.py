"""``modelseal encrypt`` / ``decrypt`` / ``keys``: encryption at rest (Tink streaming AEAD)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from modelseal.cli.common import emit_json, open_kek, open_protected, read_passphrase, report
from modelseal.cli.rotation import rotation_options
from modelseal.errors import PassphraseError, UsageError

F = TypeVar("F", bound=Callable[..., Any])


def _key_options(func: F) -> F:
    decorators = [
        click.option(
            "--keyset",
            type=click.Path(dir_okay=False),
            default=None,
            help="Tink JSON keyset (or a modelseal passphrase-protected keyset).",
        ),
        click.option(
            "--kek",
            default=None,
            metavar="URI",
            help="Envelope encryption: key-encryption key (local:PATH, "
            "pkcs11:token=T;object=LABEL, aws-kms:KEY-ID).",
        ),
        click.option(
            "--associated-data",
            default=None,
            metavar="TEXT",
            help="Associated data (UTF-8) the ciphertext is bound to. Default: empty.",
        ),
        click.option(
            "--model-name", default=None, help="Bind to this model name (with the next two)."
        ),
        click.option("--model-version", default=None, help="Bind to this model version."),
        click.option("--manifest-digest", default=None, help="Bind to this manifest digest."),
        click.option(
            "--passphrase-file",
            type=click.Path(dir_okay=False),
            default=None,
            help="Passphrase of a protected keyset (else $MODELSEAL_PASSPHRASE, else a prompt).",
        ),
        click.option("--force", is_flag=True, help="Replace OUT if it exists."),
        click.option(
            "--workers",
            type=click.IntRange(1, 64),
            default=2,
            show_default=True,
            help="AES-GCM threads (1-64).",
        ),
        click.option("--json", "as_json", is_flag=True, help="Report as JSON."),
        click.argument("out", type=click.Path()),
        click.argument("src", metavar="IN", type=click.Path()),
    ]
    for decorator in decorators:
        func = decorator(func)
    return func


def _associated_data(
    text: str | None, name: str | None, version: str | None, digest: str | None
) -> bytes:
    binding = (name, version, digest)
    if any(v is not None for v in binding):
        if text is not None:
            raise UsageError(
                "--associated-data and --model-name/--model-version/--manifest-digest "
                "are exclusive",
                hint="use one or the other",
            )
        if name is None or version is None or digest is None:
            raise UsageError(
                "--model-name, --model-version and --manifest-digest go together",
                hint="give all three",
            )
        from modelseal.crypto.api import associated_data

        return associated_data(model_name=name, version=version, manifest_digest=digest)
    return (text or "").encode("utf-8")


def _load_keyset(path: str, passphrase_file: str | None) -> Any:
    from modelseal.crypto.keyset import read_keyset_file

    return open_protected(
        lambda passphrase: read_keyset_file(path, passphrase=passphrase), passphrase_file
    )


def keys_for(keyset: str | None, kek: str | None, passphrase_file: str | None) -> dict[str, Any]:
    """``{"keyset": ...}`` or ``{"provider": ...}`` from exactly one of --keyset and --kek."""
    if (keyset is None) == (kek is None):
        raise UsageError("give exactly one of --keyset and --kek", hint="see --help")
    if keyset is not None:
        return {"keyset": _load_keyset(keyset, passphrase_file)}
    assert kek is not None
    return {"provider": open_kek(kek, passphrase_file)}


def _run(operation: str, src: str, out: str, options: dict[str, Any]) -> None:
    from modelseal.crypto import api

    ad = _associated_data(
        options["associated_data"],
        options["model_name"],
        options["model_version"],
        options["manifest_digest"],
    )
    keys = keys_for(options["keyset"], options["kek"], options["passphrase_file"])
    common = {"associated_data": ad, "overwrite": options["force"], "workers": options["workers"]}
    if operation == "encrypt":
        result = api.encrypt(src, out, **common, **keys)
    else:
        result = api.decrypt(src, out, allow_v1=options["allow_v1_format"], **common, **keys)
    if options["as_json"]:
        emit_json(result.to_dict())
        return
    what = f"{result.files} file{'s' if result.files != 1 else ''}, {result.plaintext_bytes} bytes"
    verb = "encrypted" if operation == "encrypt" else "decrypted"
    click.echo(f"{verb} {result.kind} {src} -> {out} ({what})")
    if result.envelope is not None:
        click.echo(f"wrote envelope {result.envelope}")


@click.command()
@_key_options
def encrypt(src: str, out: str, **options: Any) -> None:
    """Encrypt a model file or directory IN into OUT (Tink AES256_GCM_HKDF_1MB streaming AEAD).

    With --keyset a file's ciphertext is exactly what Tink writes; with --kek a fresh data key
    is made and wrapped into an envelope (OUT.envelope.json, or inside an OUT directory).
    """
    _run("encrypt", src, out, options)


@click.command()
@_key_options
@click.option(
    "--allow-v1-format",
    is_flag=True,
    help="Also decrypt a directory in the old v1 format (its files could be mixed with another "
    "artifact's unnoticed): only to encrypt it again.",
)
def decrypt(src: str, out: str, **options: Any) -> None:
    """Decrypt IN into OUT; fails closed (no OUT at all) on a wrong key or any tampering."""
    _run("decrypt", src, out, options)


@click.group()
def keys() -> None:
    """Keysets and key-encryption keys: create, rotate."""


def _new_passphrase(no_passphrase: bool, passphrase_file: str | None) -> bytes | None:
    if no_passphrase:
        return None
    passphrase = read_passphrase(passphrase_file, confirm=True)
    if passphrase is None:
        raise PassphraseError(
            "no passphrase for the new keyset",
            hint="set MODELSEAL_PASSPHRASE, pass --passphrase-file, or --no-passphrase",
        )
    return passphrase


@keys.command("create")
@click.argument("target")
@click.option(
    "--kek",
    "as_kek",
    is_flag=True,
    help="Make a key-encryption key (AES-256-GCM) for --kek instead of a streaming keyset. "
    "TARGET may then be a PATH or a pkcs11: URI (an AES key made on the token).",
)
@click.option(
    "--signing",
    is_flag=True,
    help="Make an EC signing key pair on a PKCS#11 token (TARGET is a pkcs11: URI).",
)
@click.option(
    "--algorithm",
    type=click.Choice(["ecdsa-p256", "ecdsa-p384", "ecdsa-p521"]),
    default="ecdsa-p256",
    show_default=True,
    help="Curve of a --signing key.",
)
@click.option(
    "--no-passphrase",
    is_flag=True,
    help="Write a cleartext Tink JSON keyset (what tink reads directly). Default: protected.",
)
@click.option(
    "--kdf", type=click.Choice(["scrypt", "argon2id"]), default="scrypt", show_default=True
)
@click.option("--passphrase-file", type=click.Path(dir_okay=False), default=None)
@click.option("--force", is_flag=True, help="Replace TARGET if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Report as JSON.")
def keys_create(
    target: str,
    as_kek: bool,
    signing: bool,
    algorithm: str,
    no_passphrase: bool,
    kdf: str,
    passphrase_file: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Create a keyset file (mode 0600, passphrase-protected unless --no-passphrase)."""
    from modelseal.crypto import keyset as ks

    report: dict[str, Any]
    if signing:
        if not target.startswith("pkcs11:") or as_kek:
            raise UsageError(
                "--signing makes a key pair on a PKCS#11 token",
                hint="give a pkcs11: URI (use 'modelseal keygen' for key files)",
            )
        from modelseal.signing.keys import key_hint
        from modelseal.signing.pkcs11 import create_signing_key

        signer = create_signing_key(target, algorithm=algorithm)
        report = {"signing_key": target, "algorithm": algorithm}
        report["key_id"] = key_hint(signer.public_key())
    elif target.startswith("pkcs11:"):
        if not as_kek:
            raise UsageError(
                "say what to make on the token", hint="add --kek (AES) or --signing (EC)"
            )
        from modelseal.crypto.providers.pkcs11 import Pkcs11Provider

        provider = Pkcs11Provider.create(target)
        report = {"kek": target, "kek_id": provider.current_kek_id(), "type": "pkcs11-aes-256"}
    else:
        passphrase = _new_passphrase(no_passphrase, passphrase_file)
        keyset = ks.new_aead_keyset() if as_kek else ks.new_streaming_keyset()
        ks.write_keyset_file(target, keyset, passphrase=passphrase, kdf=kdf, overwrite=force)
        report = {
            "path": target,
            "type": "aes-256-gcm kek" if as_kek else "AES256_GCM_HKDF_1MB",
            "primary_key_id": keyset.primary_key_id,
            "protected": passphrase is not None,
            "kdf": kdf if passphrase is not None else None,
        }
    if as_json:
        emit_json(report)
        return
    if "signing_key" in report:
        click.echo(
            f"created {algorithm} signing key pair on the token (key id {report['key_id'][:16]})"
        )
    elif "path" in report:
        state = f"protected with {kdf}" if report["protected"] else "CLEARTEXT"
        click.echo(f"wrote {report['type']} keyset {target} ({state}, mode 0600)")
    else:
        click.echo(f"created AES-256 key-encryption key on the token ({target})")


def _store_options(func: F) -> F:
    from modelseal.cli.store import store_options

    return store_options(func)


@keys.command("rotate")
@click.argument("targets", nargs=-1)
@rotation_options
@click.option(
    "--registry",
    "in_registry",
    is_flag=True,
    help="Rotate the data keys of the registry's encrypted versions instead of TARGETS "
    "(one audited registry transaction; same as 'modelseal registry keys rotate').",
)
@click.option("--json", "as_json", is_flag=True, help="Report as JSON.")
@_store_options
def keys_rotate(
    targets: tuple[str, ...],
    kek: str,
    new_kek: str | None,
    keep_old: bool,
    passphrase_file: str | None,
    in_registry: bool,
    as_json: bool,
    **store: Any,
) -> None:
    """Re-wrap the data keys of TARGETS (encrypted files/directories) - or, with --registry,
    of the registry's encrypted versions - without re-encrypting data, then retire the old
    KEKs so that old envelopes stop working."""
    from modelseal.crypto.rotation import rotate

    if in_registry:
        if targets:
            raise UsageError("--registry rotates the registry's keys", hint="drop the TARGETS")
        from modelseal.cli.rotation import rotate_registry
        from modelseal.cli.store import opened

        with opened(store) as backend:
            rotate_registry(backend, kek, new_kek, keep_old, passphrase_file, as_json)
        return
    if not targets:
        raise UsageError(
            "Missing argument 'TARGETS...'",
            hint="name the encrypted files and directories, or pass --registry",
        )

    provider = open_kek(kek, passphrase_file)
    new_provider = open_kek(new_kek, passphrase_file) if new_kek else None
    report = rotate(targets, provider=provider, new_provider=new_provider, commit=not keep_old)
    if as_json:
        emit_json(report.to_dict())
        return
    click.echo(f"re-wrapped {len(report.rewrapped)} data key(s) under KEK {report.new_kek_id}")
    if report.committed:
        click.echo(f"retired {len(report.retired)} old KEK(s): {', '.join(report.retired) or '-'}")
    else:
        click.echo("old KEKs kept (--keep-old): old envelopes still unwrap until you commit")


@keys.command("export-public")
@click.argument("uri")
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def keys_export_public(uri: str, out: str, force: bool, as_json: bool) -> None:
    """Write the PEM public key of the PKCS#11 signing key URI to OUT (for verify)."""
    from modelseal.fsutil import atomic_write
    from modelseal.signing.keys import public_pem
    from modelseal.signing.pkcs11 import Pkcs11Signer

    signer = Pkcs11Signer(uri)
    atomic_write(out, public_pem(signer.public_key()), mode=0o644, overwrite=force)
    report(as_json, {"public_key": out}, f"wrote public key {out}")
