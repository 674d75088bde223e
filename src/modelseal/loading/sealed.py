"""Verified bytes as a sealed in-memory file, for a framework that will only read a path.

Some loaders take bytes only by copying them while holding the interpreter lock (onnxruntime
turns a ``bytes`` object into a C++ string: a GiB stops every other thread for half a second).
Given a path instead, they read it with the lock released. The path handed over here is a
Linux ``memfd``: anonymous memory, never on disk, written once from the verified buffer and then
sealed against writes, growth and shrinking, so what the framework reads is exactly what was
verified, and nothing (not even this process) can change it afterwards.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

_CHUNK = 64 << 20  # bytes per write() (each one releases the interpreter lock)


def available() -> bool:
    """Whether sealed memory files work here (Linux with ``/proc``)."""
    try:
        import fcntl
    except ImportError:  # not a POSIX system
        return False
    return (
        hasattr(os, "memfd_create")
        and hasattr(fcntl, "F_ADD_SEALS")
        and os.path.isdir(f"/proc/{os.getpid()}/fd")
    )


@contextlib.contextmanager
def sealed_file(data: Any, name: str = "model") -> Iterator[str]:
    """A read-only path holding exactly ``data`` (any buffer) while the block runs."""
    import fcntl

    fd = os.memfd_create(f"modelseal-{name}"[:200], os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            done += os.write(fd, view[done : done + _CHUNK])
        seals = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
        yield f"/proc/{os.getpid()}/fd/{fd}"
    finally:
        os.close(fd)
