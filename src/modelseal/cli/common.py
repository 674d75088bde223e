"""What every command shares: size parsing, passphrases, JSON output, progress bars."""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click

from modelseal.cli.early import PASSPHRASE_ENV as PASSPHRASE_ENV
from modelseal.cli.early import EarlyHash as EarlyHash
from modelseal.cli.early import _Cancelled as _Cancelled  # where older callers look for it
from modelseal.cli.early import may_prompt
from modelseal.errors import PassphraseError, UsageError
from modelseal.fsinput import open_regular
from modelseal.sizes import parse_size

T = TypeVar("T")


class ByteSize(click.ParamType):  # type: ignore[type-arg]
    """``1000000``, ``256MiB``, ``1G`` and the like."""

    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        """The size ``value`` names, in bytes (click calls this for the option)."""
        if isinstance(value, int):
            return value
        size = parse_size(str(value))
        if size is None:
            self.fail(f"{value!r} is not a size (e.g. 1048576, 256MiB, 1G)", param, ctx)
        return size


def read_passphrase(passphrase_file: str | None, *, confirm: bool = False) -> bytes | None:
    """The passphrase from --passphrase-file, then $MODELSEAL_PASSPHRASE, then a terminal prompt.

    Returns ``None`` when none is available and stdin is not a terminal.
    """
    if passphrase_file is not None:
        try:
            with os.fdopen(open_regular(passphrase_file), "rb") as fh:
                value = fh.read(4096).rstrip(b"\r\n")
        except OSError as exc:
            raise PassphraseError(
                f"cannot read passphrase file {passphrase_file!r}: {exc.strerror}",
                hint="check the path",
            ) from None
        if not value:
            raise PassphraseError(
                f"passphrase file {passphrase_file!r} is empty", hint="put the passphrase in it"
            )
        return value
    env = os.environ.get(PASSPHRASE_ENV)
    if env:
        return env.encode("utf-8")
    if not sys.stdin.isatty():
        return None
    first = getpass.getpass("Passphrase: ")
    if confirm and getpass.getpass("Repeat passphrase: ") != first:
        raise PassphraseError("the passphrases do not match", hint="try again")
    if not first:
        raise PassphraseError("empty passphrase", hint="type a passphrase, or use --no-passphrase")
    return first.encode("utf-8")


def open_protected(open_with: Callable[[bytes | None], T], passphrase_file: str | None) -> T:
    """Open something that may be passphrase-protected (a private key, a keyset, a local KEK):
    with --passphrase-file's passphrase if given, else without one, asking ($MODELSEAL_PASSPHRASE,
    then a prompt) only when it turns out to be protected."""
    if passphrase_file is not None:
        return open_with(read_passphrase(passphrase_file))
    try:
        return open_with(None)
    except PassphraseError:
        passphrase = read_passphrase(None)
        if passphrase is None:
            raise
        return open_with(passphrase)


def load_signing_key(path: str, passphrase_file: str | None) -> Any:
    """Load a private key, asking for a passphrase (file, environment, prompt) only if needed."""
    from modelseal.signing.keys import load_private_key

    return open_protected(lambda passphrase: load_private_key(path, passphrase), passphrase_file)


def open_kek(uri: str, passphrase_file: str | None) -> Any:
    """A key provider; a local: KEK file asks for its passphrase only if it is protected."""
    from modelseal.crypto.providers import open_provider

    if not uri.startswith("local:"):
        return open_provider(uri)
    return open_protected(
        lambda passphrase: open_provider(uri, passphrase=passphrase), passphrase_file
    )


def passphrase_may_prompt(passphrase_file: str | None) -> bool:
    """Whether :func:`read_passphrase` could end up asking on the terminal."""
    return passphrase_file is None and may_prompt()


def emit_json(data: Any) -> None:
    """Print ``data`` (plain JSON values, typed answers or lists of them) as indented JSON."""
    click.echo(json.dumps(_plain(data), indent=2, sort_keys=True))
    JSON_PRINTED.append(True)


# Whether this command already printed its JSON document (the error handler then adds none:
# stdout stays one document).
JSON_PRINTED: list[bool] = []


def report(as_json: bool, answer: Any, line: str) -> None:
    """Print ``answer`` as JSON with ``--json``, else the one ``line`` for people."""
    if as_json:
        emit_json(answer)
    else:
        click.echo(line)


def _plain(data: Any) -> Any:
    from pydantic import BaseModel

    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    if isinstance(data, list | tuple):
        return [_plain(item) for item in data]
    return data


def parse_workers(value: int | None) -> int | None:
    """``--workers`` checked (at least 1; ``None``: every core)."""
    if value is not None and value < 1:
        raise UsageError("--workers must be at least 1", hint="or leave it out to use every core")
    return value


@contextlib.contextmanager
def progress_bar(label: str, path: str, enabled: bool) -> Iterator[Callable[[int], None] | None]:
    """A rich progress bar on stderr when it is a terminal; yields the callback (or None)."""
    total = model_size(path) if enabled and sys.stderr.isatty() else 0
    if total <= 0:
        yield None
        return
    with _bar(label, total) as advance:
        yield advance


class TransferProgress:
    """Progress of a transfer whose size is known only once it starts (a pull): a rich bar on
    stderr when it is a terminal, nothing otherwise. Anything that may prompt (a passphrase)
    happens before :meth:`start`, so no prompt hides under the bar."""

    def __init__(self, label: str, enabled: bool) -> None:
        self._label = label
        self._enabled = enabled and sys.stderr.isatty()
        self._stack = contextlib.ExitStack()
        self._advance: Callable[[int], None] | None = None

    def start(self, total: int) -> None:
        """Show the bar for ``total`` bytes."""
        if self._enabled and total > 0 and self._advance is None:
            self._advance = self._stack.enter_context(_bar(self._label, total))

    def advance(self, count: int) -> None:
        """``count`` more bytes went through."""
        if self._advance is not None:
            self._advance(count)

    def __enter__(self) -> TransferProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


@contextlib.contextmanager
def _bar(label: str, total: int) -> Iterator[Callable[[int], None]]:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    lock = threading.Lock()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task(label, total=total)

        def advance(n: int) -> None:
            with lock:
                progress.update(task, advance=n)

        yield advance


def model_size(path: str) -> int:
    """Rough byte count for the progress bar (no symlinks followed)."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    if not os.path.isdir(path):
        return 0
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total
