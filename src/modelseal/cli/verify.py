"""``modelseal verify``: check a model against its OMS signature; exit 0 verified, 1 failed."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from modelseal.cli.common import emit_json, parse_workers, progress_bar
from modelseal.errors import VerificationError

if TYPE_CHECKING:
    from modelseal.signing.sigstore_keyless import SigstoreTrust


@click.command()
@click.argument("model_path", type=click.Path(path_type=str))
@click.option("--signature", required=True, type=click.Path(dir_okay=False), help="The bundle.")
@click.option(
    "--public-key",
    "public_key",
    type=click.Path(dir_okay=False),
    default=None,
    help="The signer's PEM public key (for key-based signatures).",
)
@click.option(
    "--trust-anchor",
    "trust_anchors",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="CA certificate(s) (PEM) a certificate-based signature must chain to; takes several.",
)
@click.option(
    "--trusted-root",
    type=click.Path(dir_okay=False),
    default=None,
    help="A Sigstore trusted_root.json: verify a Sigstore keyless signature offline against it "
    "(with --sigstore-issuer and --sigstore-identity or --sigstore-identity-pattern).",
)
@click.option(
    "--sigstore-identity",
    default=None,
    metavar="IDENTITY",
    help="The signer's identity (e-mail or URI in the certificate), exactly.",
)
@click.option(
    "--sigstore-identity-pattern",
    default=None,
    metavar="REGEX",
    help="A regular expression the signer's identity must match entirely (Python re).",
)
@click.option(
    "--sigstore-issuer",
    default=None,
    metavar="URL",
    help="The OIDC issuer that vouched for the identity, exactly "
    "(e.g. https://token.actions.githubusercontent.com).",
)
@click.option("--workers", type=int, default=None, help="Hashing threads (default: every core).")
@click.option("--json", "as_json", is_flag=True, help="Report as JSON (also on failure).")
def verify(
    model_path: str,
    signature: str,
    public_key: str | None,
    trust_anchors: tuple[str, ...],
    trusted_root: str | None,
    sigstore_identity: str | None,
    sigstore_identity_pattern: str | None,
    sigstore_issuer: str | None,
    workers: int | None,
    as_json: bool,
) -> None:
    """Verify MODEL_PATH against the signature bundle SIGNATURE.

    Every difference is reported: modified files (expected and actual digests), missing,
    extra and renamed files, symlinks, a wrong key, an edited payload, an untrusted or
    expired certificate, a Sigstore signer that is not the given identity, a transparency log
    entry that does not verify. Sigstore keyless signatures are verified offline: nothing is
    fetched, the trusted root is the file given.
    """
    from modelseal.signing.api import verify as do_verify

    sigstore = _sigstore_trust(
        trusted_root, sigstore_identity, sigstore_identity_pattern, sigstore_issuer
    )
    if sigstore is not None and (public_key is not None or trust_anchors):
        raise click.UsageError(
            "give --trusted-root (Sigstore keyless) without --public-key or --trust-anchor"
        )
    if public_key is None and not trust_anchors and sigstore is None:
        raise click.UsageError(
            "give --public-key (key-based), --trust-anchor (certificates) or --trusted-root "
            "with --sigstore-identity and --sigstore-issuer (Sigstore keyless)"
        )
    try:
        with progress_bar("verifying", model_path, not as_json) as progress:
            result = do_verify(
                model_path,
                signature=signature,
                public_key=public_key,
                trust_anchors=trust_anchors,
                sigstore=sigstore,
                workers=parse_workers(workers),
                progress=progress,
            )
    except VerificationError as exc:
        if as_json:
            emit_json(
                {
                    "verified": False,
                    "model_path": model_path,
                    "error": exc.message,
                    "reasons": [r.to_dict() for r in exc.reasons],
                }
            )
        elif exc.exit_code != 2:  # an input error (exit 2) is its one error line
            for reason in exc.reasons:
                detail = ""
                if reason.expected is not None and reason.code == "modified":
                    detail = f" (expected {reason.expected}, actual {reason.actual})"
                click.echo(f"  {reason.code:<10} {reason.message}{detail}", err=True)
        raise
    if as_json:
        emit_json(result.to_dict())
    else:
        count = len(result.manifest.items)
        kind = "shard" if result.manifest.serialization.method == "shards" else "file"
        agree = f"{kind} matches" if count == 1 else f"{kind}s match"
        click.echo(f"verified {model_path}: {count} {agree}, signed by {result.signer}")
        click.echo(f"root digest sha256:{result.root_digest}")
        if result.fingerprint is not None:
            click.echo(f"weights fingerprint {result.fingerprint['digest']} matches")


def _sigstore_trust(
    trusted_root: str | None, identity: str | None, pattern: str | None, issuer: str | None
) -> SigstoreTrust | None:
    """The Sigstore options as one trust, or ``None`` when none is given."""
    if trusted_root is None:
        if identity is not None or pattern is not None or issuer is not None:
            raise click.UsageError(
                "the Sigstore identity options need --trusted-root (a Sigstore trusted_root.json)"
            )
        return None
    if (identity is None) == (pattern is None):
        raise click.UsageError(
            "--trusted-root needs exactly one of --sigstore-identity and "
            "--sigstore-identity-pattern"
        )
    if issuer is None:
        raise click.UsageError("--trusted-root needs --sigstore-issuer (the OIDC issuer URL)")
    from modelseal.signing.sigstore_keyless import SigstoreIdentity, SigstoreTrust

    trusted = SigstoreIdentity(issuer=issuer, identity=identity, identity_pattern=pattern)
    return SigstoreTrust(trusted_root=trusted_root, identities=(trusted,))
