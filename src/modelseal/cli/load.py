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
