"""Hashing that starts before the command line is fully parsed.

``modelseal sign`` spends most of its time hashing on every core; what runs before the first
hashed byte (importing click and the command modules, loading the key) is time the cores are
idle. :class:`EarlyHash` hashes in a background thread while the command does the rest; the
console script (:mod:`modelseal.cli.entry`) goes further and, for a plain ``sign`` call, starts
one before click and the commands are even imported (:func:`prestart`), and lets it begin
hashing before importing them. The ``sign`` command
then adopts it only if the options click parsed give exactly the same request
(:func:`take_prestarted`); otherwise it is cancelled and the command hashes as usual. So a
guess of this pre-scan can waste some work but never change a result or an error.

Only the standard library is imported here, at module level.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import Any

# Options of ``sign`` followed by one value, and the HashOptions field each one sets (if any).
_VALUE_OPTIONS: dict[str, str | None] = {
    "--private-key": None,
    "--pkcs11-uri": None,
    "--signature": None,
    "--certificate": None,
    "--passphrase-file": None,
    "--hash": "hash_type",
    "--shard-size": "shard_size",
    "--workers": "workers",
    "--ignore": "ignore",
}
# Flags of ``sign``, and the HashOptions field each one sets (if any).
_FLAGS: dict[str, tuple[str, bool] | None] = {
    "--force": None,
    "--json": None,
    "--fingerprint": None,
    "--allow-symlinks": ("allow_symlinks", True),
    "--no-ignore-git-paths": ("ignore_git_paths", False),
}
_HASHES = ("sha256", "blake2b", "blake3")
PASSPHRASE_ENV = "MODELSEAL_PASSPHRASE"  # noqa: S105 - a variable name, not a secret


class _Cancelled(Exception):
    pass


class EarlyHash:
    """Hash a model for signing in a background thread, so that the hashing overlaps start-up
    work (importing the crypto libraries, loading the key). :meth:`start` is a no-op after the
    first call; :meth:`result` starts it if need be and waits; :meth:`cancel` stops it at its
    next step (a few MiB) and waits, so nothing keeps reading after the command ends.

    ``options`` is a :class:`~modelseal.hashing.engine.HashOptions`, or the keyword arguments of
    one (then it is built, and checked, in the background thread).
    """

    def __init__(
        self,
        model_path: str,
        options: Any,
        signature: str | None,
        progress: Callable[[int], None] | None,
    ) -> None:
        self._args = (model_path, options, signature)
        self._progress = progress
        self._stop = threading.Event()
        self._begun = threading.Event()  # the first bytes are hashed, or the work ended
        self._thread: threading.Thread | None = None
        self._outcome: Any = None
        self._error: BaseException | None = None

    def _report(self, count: int) -> None:
        self._begun.set()
        if self._stop.is_set():
            raise _Cancelled
        if self._progress is not None:
            self._progress(count)

    def _run(self) -> None:
        from modelseal.hashing.engine import HashOptions, hash_for_signing

        model_path, options, signature = self._args
        try:
            if isinstance(options, dict):
                options = HashOptions(**options).normalized()
            self._outcome = hash_for_signing(
                model_path, options, signature=signature, progress=self._report
            )
        except BaseException as exc:  # handed to result()
            self._error = exc
        finally:
            self._begun.set()

    def matches(self, model_path: str, options: Any, signature: str | None) -> bool:
        """Whether this job hashes exactly what ``(model_path, options, signature)`` asks for
        (``options``: normalized HashOptions) and reports no progress."""
        own_path, own_options, own_signature = self._args
        if (own_path, own_signature) != (model_path, signature) or self._progress is not None:
            return False
        if isinstance(own_options, dict):
            from modelseal.errors import ModelsealError
            from modelseal.hashing.engine import HashOptions

            try:
                own_options = HashOptions(**own_options).normalized()
            except (ModelsealError, TypeError):
                return False
        return bool(own_options == options)

    def wait_begun(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` seconds) until the first bytes are hashed or the work
        ended; whether it did."""
        return self._begun.wait(timeout)

    def start(self) -> None:
        """Start the work in a background thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="modelseal-hash", daemon=True)
            self._thread.start()

    def result(self) -> Any:
        """Wait for the work; its result (or its error, raised here)."""
        self.start()
        assert self._thread is not None
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._outcome

    def cancel(self) -> None:
        """Ask the work to stop."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def sign_request(argv: list[str]) -> tuple[str, dict[str, Any], str] | None:
    """``(model_path, HashOptions keywords, signature)`` of a plain ``sign`` command line, or
    ``None`` for anything else or anything unusual (help, ``--opt=value``, short options, an
    option given twice, ``--certificate-chain``, a value that does not parse): click then
    parses the line as always, and no hashing starts early."""
    if not argv or argv[0] != "sign":
        return None
    model_path: str | None = None
    values: dict[str, str] = {}
    fields: dict[str, Any] = {}
    ignore: list[str] = []
    args = iter(argv[1:])
    for arg in args:
        if arg in _VALUE_OPTIONS:
            value = next(args, None)
            if value is None or value.startswith("-"):
                return None
            if arg == "--ignore":
                ignore.append(value)
            elif arg in values:
                return None
            values[arg] = value
        elif arg in _FLAGS:
            flag = _FLAGS[arg]
            if flag is not None:
                fields[flag[0]] = flag[1]
        elif arg.startswith("-") or model_path is not None:
            return None
        else:
            model_path = arg
    signature = values.get("--signature")
    if model_path is None or signature is None:
        return None
    hash_type = values.get("--hash", "sha256").lower()
    if hash_type not in _HASHES:
        return None
    fields["hash_type"] = hash_type
    if ignore:
        fields["ignore"] = tuple(ignore)
    if "--shard-size" in values:
        from modelseal.sizes import parse_size

        shard_size = parse_size(values["--shard-size"])
        if shard_size is None:
            return None
        fields["shard_size"] = shard_size
    if "--workers" in values:
        try:
            fields["workers"] = int(values["--workers"])
        except ValueError:
            return None
        if fields["workers"] < 1:
            return None
    if "--passphrase-file" not in values and may_prompt():
        return None
    return model_path, fields, signature


def may_prompt() -> bool:
    """Whether loading a key without --passphrase-file could ask on this terminal."""
    return not os.environ.get(PASSPHRASE_ENV) and sys.stdin.isatty()


_PRESTARTED: list[EarlyHash] = []
_HEAD_START = 0.25  # seconds prestart() waits at most for the first hashed bytes


def prestart(argv: list[str]) -> bool:
    """Start hashing for a plain ``sign`` command line (see :func:`sign_request`), unless
    stderr is a terminal (the command then shows a progress bar). Whether it started."""
    request = sign_request(argv)
    if request is None or sys.stderr.isatty():
        return False
    model_path, fields, signature = request
    job = EarlyHash(model_path, fields, signature, None)
    job.start()
    _PRESTARTED.append(job)
    # Imports in two threads take turns on the GIL: let the hashing get going (its imports,
    # the listing) before the command's own imports compete with it; those then run while
    # the hashing threads work without the GIL.
    job.wait_begun(_HEAD_START)
    return True


def take_prestarted(model_path: str, options: Any, signature: str | None) -> EarlyHash | None:
    """The job :func:`prestart` started, if it hashes exactly this request; any other is
    cancelled (its outcome, even an error, is never used)."""
    job = _PRESTARTED.pop() if _PRESTARTED else None
    if job is None or job.matches(model_path, options, signature):
        return job
    job.cancel()
    return None


def discard_prestarted() -> None:
    """Stop a started job the command did not take (a usage error, another command)."""
    while _PRESTARTED:
        _PRESTARTED.pop().cancel()
