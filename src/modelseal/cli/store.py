"""Options shared by the registry, audit and access commands, and how they open a backend: the
embedded store in process, or the registry server over HTTP (``--server``)."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import click

from modelseal.errors import InputError, UsageError

if TYPE_CHECKING:
    from modelseal.registry.backend import Backend
    from modelseal.registry.config import RegistryConfig

F = TypeVar("F", bound=Callable[..., Any])


def store_options(func: F) -> F:
    """``--home``, ``--db-url``, ``--blob-url``, ``--server``, ``--token-file``."""
    options = [
        click.option("--home", type=click.Path(path_type=str), default=None,
                     help="Registry home (default $MODELSEAL_HOME or ~/.modelseal)."),
        click.option("--db-url", default=None,
                     help="Embedded store database: sqlite:///PATH or postgresql://... "
                          "(default $MODELSEAL_DB_URL or SQLite in the home)."),
        click.option("--blob-url", default=None,
                     help="Embedded store blobs: a folder or s3://bucket/prefix "
                          "(default $MODELSEAL_BLOB_URL or blobs/ in the home)."),
        click.option("--server", default=None,
                     help="Registry server URL (default $MODELSEAL_SERVER); without it the "
                          "embedded store is used directly."),
        click.option("--token-file", type=click.Path(path_type=str), default=None,
                     help="File holding the API token (else the token in $MODELSEAL_TOKEN)."),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def config_from(kwargs: dict[str, Any]) -> RegistryConfig:
    """Pop the store options from ``kwargs``: the resolved registry configuration."""
    from modelseal.registry.config import RegistryConfig

    token = None
    token_file = kwargs.pop("token_file", None)
    if token_file:
        try:
            from modelseal.fsinput import read_regular

            token = (
                read_regular(token_file, 1 << 20).decode("utf-8").strip()
            )  # never waits on a FIFO
        except OSError as exc:
            raise InputError(
                f"cannot read token file {token_file!r}: {exc.strerror}", hint="check the path"
            ) from None
        except UnicodeDecodeError:
            raise InputError(
                f"token file {token_file!r} does not hold a token", hint="check the path"
            ) from None
    return RegistryConfig.resolve(
        home=kwargs.pop("home", None),
        db_url=kwargs.pop("db_url", None),
        blob_url=kwargs.pop("blob_url", None),
        server=kwargs.pop("server", None),
        token=token,
    )


def open_backend(config: RegistryConfig) -> Backend:
    """The embedded store, or the server when one is configured."""
    if config.server:
        from modelseal.client import Client

        return Client(config.server, token=config.token)
    from modelseal.registry.backend import LocalBackend

    return LocalBackend.open(config)


@contextlib.contextmanager
def opened(kwargs: dict[str, Any]) -> Iterator[Backend]:
    """Pop the store options from ``kwargs`` and yield an open backend."""
    backend = open_backend(config_from(kwargs))
    try:
        yield backend
    finally:
        backend.close()


@contextlib.contextmanager
def opened_with_config(kwargs: dict[str, Any]) -> Iterator[tuple[Backend, RegistryConfig]]:
    """Like :func:`opened`, also yielding the resolved configuration."""
    config = config_from(kwargs)
    backend = open_backend(config)
    try:
        yield backend, config
    finally:
        backend.close()


def with_backend(func: Callable[..., Any]) -> Callable[..., Any]:
    """Open the backend the store options name and pass it as the first argument."""

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        with opened(kwargs) as backend:
            return func(backend, **kwargs)

    return wrapper


_DURATION = re.compile(r"\A([0-9]{1,15})([smhdw])\Z")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | None) -> dt.timedelta | None:
    """``90m``, ``12h``, ``30d``, ``4w`` as a duration (``None`` stays ``None``)."""
    if text is None:
        return None
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise UsageError(f"invalid duration {text!r}", hint="e.g. 90m, 12h, 30d, 4w")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds > MAX_DURATION_SECONDS:
        raise UsageError(f"duration {text!r} is too long", hint="at most 100 years (e.g. 5200w)")
    return dt.timedelta(seconds=seconds)


MAX_DURATION_SECONDS = 100 * 366 * 86400  # far beyond any grace period or token lifetime
