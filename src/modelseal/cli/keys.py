"""``modelseal keygen``: make a key pair; the private key is passphrase-protected and 0600."""

from __future__ import annotations

import click

from modelseal.cli.common import emit_json, read_passphrase
from modelseal.errors import PassphraseError


@click.command()
@click.option(
    "--algorithm",
    type=click.Choice(
        ["ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "ed25519", "rsa-pss-3072", "rsa-pss-4096"]
    ),
    default="ecdsa-p256",
    show_default=True,
    help="Key type. ECDSA keys interoperate with model_signing; all verify with modelseal.",
)
@click.option("--private-key", "private_key", required=True, type=click.Path(dir_okay=False))
@click.option("--public-key", "public_key", required=True, type=click.Path(dir_okay=False))
@click.option(
    "--no-passphrase",
    is_flag=True,
    help="Write the private key unencrypted (for automation with other protection).",
)
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Read the passphrase from this file (else $MODELSEAL_PASSPHRASE, else a prompt).",
)
@click.option("--force", is_flag=True, help="Overwrite existing key files.")
@click.option("--json", "as_json", is_flag=True, help="Report as JSON.")
def keygen(
    algorithm: str,
    private_key: str,
    public_key: str,
    no_passphrase: bool,
    passphrase_file: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Generate a signing key pair (PKCS#8 PEM private key, mode 0600; PEM public key)."""
    from modelseal.signing.keys import generate_key, key_hint, write_key_pair

    passphrase = None
    if not no_passphrase:
        passphrase = read_passphrase(passphrase_file, confirm=True)
        if passphrase is None:
            raise PassphraseError(
                "no passphrase for the new private key",
                hint="set MODELSEAL_PASSPHRASE, pass --passphrase-file, or --no-passphrase",
            )
    key = generate_key(algorithm)
    write_key_pair(key, private_key, public_key, passphrase=passphrase, overwrite=force)
    key_id = key_hint(key)
    report: dict[str, object] = {
        "algorithm": algorithm,
        "private_key": private_key,
        "public_key": public_key,
        "encrypted": passphrase is not None,
        "key_id": key_id,
    }
    if as_json:
        emit_json(report)
    else:
        state = "passphrase-protected" if passphrase else "UNENCRYPTED"
        click.echo(f"wrote {algorithm} private key {private_key} ({state}, mode 0600)")
        click.echo(f"wrote public key {public_key} (key id {key_id[:16]})")
