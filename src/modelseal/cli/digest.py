"""``modelseal digest``: hash a model, print its root digest (and the manifest with --json)."""

from __future__ import annotations

import click

from modelseal.cli.common import emit_json, parse_workers, progress_bar
from modelseal.cli.options import hashing_options


@click.command()
@click.argument("model_path", type=click.Path(path_type=str))
@hashing_options
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def digest(
    model_path: str,
    hash_type: str,
    shard_size: int | None,
    ignore: tuple[str, ...],
    ignore_git_paths: bool,
    allow_symlinks: bool,
    workers: int | None,
    as_json: bool,
) -> None:
    """Hash MODEL_PATH (a file or a directory) and print its OMS root digest."""
    from modelseal.signing.api import digest as compute

    with progress_bar("hashing", model_path, not as_json) as progress:
        manifest = compute(
            model_path,
            hash_type=hash_type,
            shard_size=shard_size,
            ignore=ignore,
            ignore_git_paths=ignore_git_paths,
            allow_symlinks=allow_symlinks,
            workers=parse_workers(workers),
            progress=progress,
        )
    if as_json:
        emit_json(manifest.to_dict())
    else:
        click.echo(f"sha256:{manifest.root_digest.hex()}  {model_path}")
