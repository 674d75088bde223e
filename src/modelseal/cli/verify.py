"""``modelseal verify``: check a model against its OMS signature; exit 0 verified, 1 failed."""

from __future__ import annotations

import click

from modelseal.cli.common import emit_json, parse_workers, progress_bar
from modelseal.errors import VerificationError


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
@click.option("--workers", type=int, default=None, help="Hashing threads (default: every core).")
@click.option("--json", "as_json", is_flag=True, help="Report as JSON (also on failure).")
def verify(
    model_path: str,
    signature: str,
    public_key: str | None,
    trust_anchors: tuple[str, ...],
    workers: int | None,
    as_json: bool,
) -> None:
    """Verify MODEL_PATH against the signature bundle SIGNATURE.

    Every difference is reported: modified files (expected and actual digests), missing,
    extra and renamed files, symlinks, a wrong key, an edited payload, an untrusted or
    expired certificate.
    """
    from modelseal.signing.api import verify as do_verify

    if public_key is None and not trust_anchors:
        raise click.UsageError("give --public-key (key-based) or --trust-anchor (certificates)")
    try:
        with progress_bar("verifying", model_path, not as_json) as progress:
            result = do_verify(
                model_path,
                signature=signature,
                public_key=public_key,
                trust_anchors=trust_anchors,
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
