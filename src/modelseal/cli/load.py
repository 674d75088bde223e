"""``modelseal fingerprint``: a digest of the weights themselves, whatever the container."""

from __future__ import annotations

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
    from modelseal.loading.fingerprint import fingerprint as compute

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
    type=click.Choice(["auto", "safetensors", "torch", "numpy", "onnx", "pickle"]),
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
    help="Extend the restricted unpickler's allow-list (e.g. 'sklearn.linear_model.*').",
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
    as_json: bool,
) -> None:
    """Verify, scan and load MODEL_PATH exactly as modelseal.load does; report what loaded."""
    from modelseal.errors import VerificationError
    from modelseal.loading.verified import load_verified

    if public_key is None and not trust_anchors:
        raise click.UsageError("give --public-key (key-based) or --trust-anchor (certificates)")
    try:
        loaded = load_verified(
            model_path,
            signature=signature,
            public_key=public_key,
            trust=trust_anchors,
            framework=framework,
            allow_unsigned_files=allow_unsigned_files,
            allow=allow,
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
        else:
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
