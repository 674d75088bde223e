"""``modelseal fingerprint``: a digest of the weights themselves, whatever the container."""

from __future__ import annotations

from typing import Any

import click

from modelseal.cli.common import emit_json


@click.command()
@click.argument("path", type=click.Path(path_type=str))
@click.option(
    "--ignore-names",
    is_flag=True,
    help="Leave tensor names out (for frameworks that name the same weights differently).",
)
@click.option("--json", "as_json", is_flag=True, help="Report as JSON.")
def fingerprint(path: str, ignore_names: bool, as_json: bool) -> None:
    """Fingerprint the weights in PATH (safetensors, .npy/.npz, PyTorch, ONNX; a file or a
    directory). The same weights give the same fingerprint in every format."""
    from modelseal.hashing.fingerprint import fingerprint as compute

    result = compute(path, ignore_names=ignore_names)
    if as_json:
        emit_json(result.to_dict())
    else:
        click.echo(f"{result.digest}  {path}")
        click.echo(f"{result.tensors} tensors, {result.parameters} parameters ({result.scheme})")


@click.command("load-check")
@click.argument("model_path", type=click.Path(path_type=str))
@click.option("--signature", required=True, type=click.Path(dir_okay=False), help="The bundle.")
@click.option("--public-key", "public_key", type=click.Path(dir_okay=False), default=None)
@click.option("--trust-anchor", "trust_anchors", multiple=True, type=click.Path(dir_okay=False))
@click.option(
    "--framework",
    type=click.Choice(
        ["auto", "safetensors", "torch", "numpy", "onnx", "pickle", "xgboost", "lightgbm", "keras"]
    ),
    default="auto",
    show_default=True,
)
@click.option(
    "--allow-unsigned-files",
    is_flag=True,
    help="Tolerate files the signature does not cover (they are never loaded).",
)
@click.option(
    "--allow",
    multiple=True,
    metavar="GLOBAL",
    help="Extend the pickle allow-list: an exact name (mypkg.models.Net) or a pattern that "
    "allows classes only (e.g. 'mypkg.models.*', 'sklearn.linear_model.*'). Repeatable.",
)
@click.option(
    "--allow-config",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML file with [scan] allow = [...] entries (the same file 'modelseal scan' takes).",
)
@click.option(
    "--keyset",
    type=click.Path(dir_okay=False),
    default=None,
    help="MODEL_PATH is encrypted with this keyset: decrypt in memory only, then load.",
)
@click.option(
    "--kek",
    default=None,
    metavar="URI",
    help="MODEL_PATH is envelope-encrypted under this key-encryption key "
    "(local:PATH, pkcs11:..., aws-kms:KEY-ID): decrypt in memory only, then load.",
)
@click.option(
    "--associated-data",
    default="",
    metavar="TEXT",
    help="Associated data the ciphertext is bound to (with --keyset/--kek). Default: empty.",
)
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Passphrase of a protected keyset or local KEK (else $MODELSEAL_PASSPHRASE, else a "
    "prompt).",
)
@click.option(
    "--memory",
    type=click.Choice(["copy", "map"]),
    default="copy",
    show_default=True,
    help="copy: read each file once into process memory; map: map it (no copy, but an in-place "
    "write to the file later shows through; see docs/loading.md).",
)
@click.option("--json", "as_json", is_flag=True, help="Report as JSON.")
def load_check(
    model_path: str,
    signature: str,
    public_key: str | None,
    trust_anchors: tuple[str, ...],
    framework: str,
    allow_unsigned_files: bool,
    allow: tuple[str, ...],
    allow_config: str | None,
    keyset: str | None,
    kek: str | None,
    associated_data: str,
    passphrase_file: str | None,
    memory: str,
    as_json: bool,
) -> None:
    """Verify, scan and load MODEL_PATH exactly as modelseal.load does; report what loaded.

    With --keyset or --kek, MODEL_PATH is an encrypted model (modelseal encrypt): it is
    decrypted into memory, never to disk, then verified, scanned and loaded.
    """
    from modelseal.errors import VerificationError
    from modelseal.loading.verified import load_verified

    if public_key is None and not trust_anchors:
        raise click.UsageError("give --public-key (key-based) or --trust-anchor (certificates)")
    keys: dict[str, Any] = {}
    if keyset is not None or kek is not None:
        from modelseal.cli.crypto import keys_for

        found = keys_for(keyset, kek, passphrase_file)
        keys = {
            "keyset": found.get("keyset"),
            "key_provider": found.get("provider"),
            "associated_data": associated_data.encode("utf-8"),
        }
    elif associated_data:
        raise click.UsageError("--associated-data goes with --keyset or --kek")
    try:
        loaded = load_verified(
            model_path,
            signature=signature,
            public_key=public_key,
            trust=trust_anchors,
            framework=framework,
            allow_unsigned_files=allow_unsigned_files,
            allow=allow,
            allow_config=allow_config,
            memory=memory,
            **keys,
        )
    except VerificationError as exc:
        if as_json:
            emit_json(
                {
                    "loaded": False,
                    "error": exc.message,
                    "reasons": [r.to_dict() for r in exc.reasons],
                }
            )
        elif len(exc.reasons) > 1:  # the error line names the first; list them all
            for reason in exc.reasons:
                click.echo(f"  {reason.code:<14} {reason.message}", err=True)
        raise
    if as_json:
        emit_json(loaded.to_dict())
    else:
        click.echo(
            f"loaded {model_path} ({loaded.framework}): {loaded.tensors} tensors, "
            f"{loaded.parameters} parameters from {len(loaded.files)} verified files"
        )
        click.echo(f"signed by {loaded.verification.signer}; scan clean")
