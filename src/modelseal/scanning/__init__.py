"""Scan model files for malicious content without importing, unpickling or executing anything.

:func:`scan` is the public entry point; the CLI's ``modelseal scan`` is a thin skin over it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from modelseal.scanning.allowlist import Allowlist
from modelseal.scanning.context import Options
from modelseal.scanning.engine import scan_paths
from modelseal.scanning.pickle_vm import Limits
from modelseal.scanning.report import (
    FileReport,
    Finding,
    Location,
    ScanReport,
    Severity,
    Unscannable,
)

__all__ = [
    "Allowlist",
    "FileReport",
    "Finding",
    "Limits",
    "Location",
    "ScanReport",
    "Severity",
    "Unscannable",
    "scan",
]


def scan(
    path: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    allow: Iterable[str] = (),
    allow_config: str | os.PathLike[str] | None = None,
    allowlist: Allowlist | None = None,
    strict: bool = False,
    limits: Limits | None = None,
) -> ScanReport:
    """Scan files, directories (recursively) and the archives inside them.

    Nothing from a scanned file is imported, unpickled or executed. The report lists every
    finding with its severity and location, and every region that could not be parsed; it is
    ``clean`` only when everything was parsed and nothing was found. ``allow`` adds globals
    (``module.name``, ``module:qualname`` or ``module.*``) to the allow-list, as does the TOML file
    ``allow_config`` (``[scan] allow = [...]``). ``strict`` treats files of no recognised format as
    unscannable. Raises :class:`modelseal.errors.ScanPathError` for a missing path and
    :class:`modelseal.errors.AllowlistError` for a bad allow-list.
    """
    base = allowlist or Allowlist()
    if allow_config is not None:
        base = Allowlist.from_file(allow_config, base=base)
    base = base.extended(allow)
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    options = Options(allowlist=base, strict=strict, limits=limits or Limits())
    return scan_paths(paths, options)
