"""Options and reporting shared by the key-rotation commands (``keys rotate`` and ``registry
keys rotate``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from modelseal.cli.common import emit_json, open_kek

if TYPE_CHECKING:
    from modelseal.registry.backend import Backend

F = TypeVar("F", bound=Callable[..., Any])


def rotation_options(func: F) -> F:
    """--kek, --new-kek, --keep-old and --passphrase-file of every rotation command."""
    decorators = [
        click.option(
            "--kek", required=True, metavar="URI", help="The KEK the data keys are wrapped with."
        ),
        click.option(
            "--new-kek",
            default=None,
            metavar="URI",
            help="Re-wrap under this KEK. Default: a new KEK in the same keyset file or token.",
        ),
        click.option(
            "--keep-old",
            is_flag=True,
            help="Do not retire the old KEKs yet (the old wrapped keys keep working until a "
            "later commit).",
        ),
        click.option("--passphrase-file", type=click.Path(dir_okay=False), default=None),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def rotate_registry(
    backend: Backend,
    kek: str,
    new_kek: str | None,
    keep_old: bool,
    passphrase_file: str | None,
    as_json: bool,
) -> None:
    """The body of ``modelseal registry keys rotate`` (and ``keys rotate --registry``)."""
    from modelseal.registry.keys import rotate_version_keys

    provider = open_kek(kek, passphrase_file)
    new_provider = open_kek(new_kek, passphrase_file) if new_kek else None
    report = rotate_version_keys(
        backend, provider=provider, new_provider=new_provider, commit=not keep_old
    )
    if as_json:
        emit_json(report.to_dict())
        return
    click.echo(
        f"re-wrapped {len(report.rewrapped)} version data key(s) under KEK {report.new_kek_id} "
        "(audited)"
    )
    if report.committed:
        click.echo(f"retired {len(report.retired)} old KEK(s): {', '.join(report.retired) or '-'}")
    else:
        click.echo("old KEKs kept (--keep-old): old wrapped keys still unwrap until you commit")
