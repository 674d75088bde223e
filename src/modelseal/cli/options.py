"""Options shared by the commands that hash a model (digest, sign)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from modelseal.cli.common import ByteSize

F = TypeVar("F", bound=Callable[..., Any])

HASH_CHOICES = click.Choice(["sha256", "blake2b", "blake3"], case_sensitive=False)


def hashing_options(func: F) -> F:
    """--hash, --shard-size, --ignore, --no-ignore-git-paths, --allow-symlinks, --workers."""
    decorators = [
        click.option(
            "--hash",
            "hash_type",
            type=HASH_CHOICES,
            default="sha256",
            show_default=True,
            help="Content hash for every file or shard.",
        ),
        click.option(
            "--shard-size",
            type=ByteSize(),
            default=None,
            help="Split files into shards of this size (e.g. 256MiB) and hash them in parallel "
            "(OMS 'shards' method). Default: whole files (OMS 'files' method).",
        ),
        click.option(
            "--ignore",
            "ignore",
            multiple=True,
            metavar="PATTERN",
            help="Skip a path relative to the model root, or a glob such as '*.md' "
            "(repeatable). Matched paths are recorded in the signature.",
        ),
        click.option(
            "--no-ignore-git-paths",
            "ignore_git_paths",
            flag_value=False,
            default=True,
            help="Also hash .git, .gitattributes, .github and .gitignore.",
        ),
        click.option(
            "--allow-symlinks",
            is_flag=True,
            help="Hash files behind symlinks that stay inside the model (refused by default).",
        ),
        click.option(
            "--workers", type=int, default=None, help="Hashing threads (default: every core)."
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


# A TCP port: anything else fails as a usage error before a socket is made.
PORT = click.IntRange(0, 65535)
