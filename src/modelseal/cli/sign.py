"""``modelseal sign``: hash a model and write an OMS signature bundle."""

from __future__ import annotations

from typing import Any

import click

from modelseal.cli.common import (
    EarlyHash,
    emit_json,
    load_signing_key,
    parse_workers,
    passphrase_may_prompt,
    progress_bar,
)
from modelseal.cli.early import take_prestarted
from modelseal.cli.options import hashing_options


@click.command()
@click.argument("model_path", type=click.Path(path_type=str))
@click.option(
    "--private-key",
    "private_key",
    default=None,
    type=click.Path(dir_okay=False),
    help="Private key file (PEM, PKCS#8); or use --pkcs11-uri for a key on a token.",
)
@click.option(
    "--pkcs11-uri",
    "pkcs11_uri",
    default=None,
    metavar="URI",
    help="RFC 7512 URI of an EC signing key on a PKCS#11 token (HSM), e.g. "
    "'pkcs11:token=T;object=K?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:PIN'.",
)
@click.option(
    "--signature",
    required=True,
    type=click.Path(dir_okay=False),
    help="Where to write the bundle (e.g. model.sig). Inside the model it is not hashed.",
)
@hashing_options
@click.option(
    "--certificate",
    type=click.Path(dir_okay=False),
    default=None,
    help="Signing certificate (PEM) for the private key: the bundle carries the X.509 chain.",
)
@click.option(
    "--certificate-chain",
    "certificate_chain",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Intermediate certificates (PEM), leaf's issuer first; takes several files.",
)
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="File holding the private key's passphrase (else $MODELSEAL_PASSPHRASE, else a prompt).",
)
@click.option(
    "--fingerprint",
    "with_fingerprint",
    is_flag=True,
    help="Also record the weights fingerprint (format independent) in the signature.",
)
@click.option("--force", is_flag=True, help="Replace SIGNATURE if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Report as JSON.")
def sign(
    model_path: str,
    private_key: str | None,
    pkcs11_uri: str | None,
    signature: str,
    hash_type: str,
    shard_size: int | None,
    ignore: tuple[str, ...],
    ignore_git_paths: bool,
    allow_symlinks: bool,
    workers: int | None,
    certificate: str | None,
    certificate_chain: tuple[str, ...],
    passphrase_file: str | None,
    with_fingerprint: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Sign MODEL_PATH (a file or a directory) and write the signature bundle to SIGNATURE."""
    from pathlib import Path

    from modelseal.errors import OutputError
    from modelseal.hashing.engine import HashOptions

    if not force and Path(signature).exists():
        raise OutputError(
            f"signature {signature!r} already exists", hint="pass --force to replace it"
        )
    if certificate_chain and certificate is None:
        raise click.UsageError("--certificate-chain needs --certificate")
    if (private_key is None) == (pkcs11_uri is None):
        raise click.UsageError("give exactly one of --private-key and --pkcs11-uri")
    options = HashOptions(
        hash_type=hash_type,
        shard_size=shard_size,
        allow_symlinks=allow_symlinks,
        ignore=ignore,
        ignore_git_paths=ignore_git_paths,
        workers=parse_workers(workers),
    ).normalized()
    with progress_bar("hashing", model_path, not as_json) as progress:
        # Hash while the signing key is loaded (and its libraries imported), unless loading it
        # may ask for a passphrase on this terminal.
        # The console script may have started this very hashing before click was imported.
        hashing = take_prestarted(model_path, options, signature) if progress is None else None
        if hashing is None:
            hashing = EarlyHash(model_path, options, signature, progress)
        try:
            key = _signing_key(private_key, pkcs11_uri, passphrase_file, hashing)
            from modelseal.signing.api import sign_outcome

            result = sign_outcome(
                model_path,
                hashing.result(),
                private_key=key,
                signature=signature,
                certificate=certificate,
                certificate_chain=certificate_chain,
                fingerprint=with_fingerprint,
            )
        finally:
            hashing.cancel()
    if as_json:
        emit_json(result.to_dict())
    else:
        count = len(result.manifest.items)
        kind = "shard" if result.manifest.serialization.method == "shards" else "file"
        click.echo(
            f"signed {model_path} ({count} {kind}{'' if count == 1 else 's'}, "
            f"{result.manifest.serialization.hash_type}) with {result.signer}"
        )
        click.echo(f"root digest sha256:{result.root_digest}")
        click.echo(f"signature written to {signature}")


def _signing_key(
    private_key: str | None, pkcs11_uri: str | None, passphrase_file: str | None, hashing: EarlyHash
) -> Any:
    if pkcs11_uri is not None:
        hashing.start()
        from modelseal.signing.pkcs11 import Pkcs11Signer

        return Pkcs11Signer(pkcs11_uri)
    assert private_key is not None
    if not passphrase_may_prompt(passphrase_file):
        hashing.start()
    return load_signing_key(private_key, passphrase_file)
