"""Scanning what is pushed, before it is published.

The registry scans the exact bytes of a plaintext upload (from its blob store, laid out as the
signed model) with :func:`modelseal.scan`. What happens to a version that is not clean is the
registry's policy (``push_scan``): ``refuse`` (the default) denies the publish, audited, and
stores nothing new; ``quarantine`` publishes it quarantined: it is recorded with its report but
cannot be downloaded or get an alias until a security engineer releases it. An encrypted upload
cannot be scanned here (the registry never holds its key): the pushing client scans the
plaintext before it encrypts, and the version is recorded as scanned by the client.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from modelseal.errors import InputError, UnsafeModelError
from modelseal.registry.blobs import BlobStore
from modelseal.registry.transfer import safe_destination

Policy = Literal["refuse", "quarantine"]
POLICIES: tuple[Policy, ...] = ("refuse", "quarantine")
# What a version's scan status can be: scanned here (clean, unsafe, unscannable), scanned by
# the pushing client before encrypting (client-clean), or pushed before scans were recorded.
CLEAN, UNSAFE, UNSCANNABLE, CLIENT_CLEAN = "clean", "unsafe", "unscannable", "client-clean"


def check_policy(value: str) -> Policy:
    """``value`` if it names a push-scan policy, else :class:`InputError`."""
    if value not in POLICIES:
        raise InputError(
            f"invalid push_scan policy {value!r}", hint=f"use one of: {', '.join(POLICIES)}"
        )
    return value


def scan_upload(blobs: BlobStore, files: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
    """Scan an upload's files (manifest path -> blob digest) as the model they make up; its
    status and report (paths relative to the model)."""
    from modelseal.scanning import scan

    with _laid_out(blobs, files) as root:
        report = scan(root).to_dict()
    # Paths in the report (files, findings' locations) are relative to the model, as signed.
    text = json.dumps(report)
    text = text.replace(json.dumps(str(root) + os.sep)[1:-1], "")
    text = text.replace(json.dumps(str(root))[1:-1], ".")
    relative: dict[str, Any] = json.loads(text)
    return str(relative["status"]), relative


def summary(report: Mapping[str, Any]) -> str:
    """One line: how many findings, the worst, how many regions could not be scanned."""
    findings = [f for entry in report.get("files", []) for f in entry.get("findings", [])]
    unscannable = sum(len(entry.get("unscannable", [])) for entry in report.get("files", []))
    worst = max((str(f.get("severity", "")) for f in findings), default="", key=_rank)
    parts = [f"{len(findings)} finding(s)" + (f", worst {worst}" if worst else "")]
    if unscannable:
        parts.append(f"{unscannable} part(s) not scannable")
    return "; ".join(parts)


def refusal(model: str, status: str, report: Mapping[str, Any]) -> UnsafeModelError:
    """The error that refuses publishing a version that is not clean."""
    return UnsafeModelError(
        f"{model}: the pushed files are {status} ({summary(report)})",
        hint="do not publish this model; scan it with modelseal to see each finding",
        topic="push-scan",
    )


def dumps(report: Mapping[str, Any]) -> str:
    """The report as stored with the version."""
    return json.dumps(report, sort_keys=True, separators=(",", ":"))


_SEVERITIES = ("info", "low", "medium", "high", "critical")


def _rank(severity: str) -> int:
    return _SEVERITIES.index(severity.lower()) if severity.lower() in _SEVERITIES else -1


@contextlib.contextmanager
def _laid_out(blobs: BlobStore, files: Mapping[str, str]) -> Iterator[Path]:
    """A private directory holding the files at their manifest paths (hard links to local
    blobs where possible, copies otherwise); removed afterwards."""
    top = Path(tempfile.mkdtemp(prefix="modelseal-scan-"))
    try:
        root = top / "model"
        single = list(files) == ["."]
        if not single:
            root.mkdir(mode=0o700)
        for path, digest in files.items():
            target = root if single else safe_destination(root, path)
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            local = blobs.local_path(digest)
            if local is not None:
                with contextlib.suppress(OSError):
                    os.link(local, target)
                    continue
            with open(target, "xb") as out:
                for chunk in blobs.read(digest):
                    out.write(chunk)
        yield root
    finally:
        shutil.rmtree(top, ignore_errors=True)
