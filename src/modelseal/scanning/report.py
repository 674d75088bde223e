"""Typed scan results: findings, unscannable regions, per-file and whole-scan reports."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from typing import Any

from modelseal.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE


class Severity(enum.IntEnum):
    """How bad a finding is; larger is worse."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        """The severity's name in lower case (``critical``)."""
        return self.name.lower()


@dataclasses.dataclass(frozen=True)
class Location:
    """Where something was found: a file, the archive members leading to it, a byte offset.

    ``offset`` counts bytes from the start of the innermost member (decompressed stream), or of the
    file itself when ``members`` is empty.
    """

    path: str
    members: tuple[str, ...] = ()
    offset: int | None = None

    def at(self, offset: int | None) -> Location:
        """The same place at byte ``offset``."""
        return dataclasses.replace(self, offset=offset)

    def inside(self, member: str) -> Location:
        """A place inside archive member ``member`` (offset unset)."""
        return Location(self.path, (*self.members, member), None)

    def __str__(self) -> str:
        text = self.path + "".join(f" > {m}" for m in self.members)
        return text if self.offset is None else f"{text} @ {self.offset}"

    def to_dict(self) -> dict[str, Any]:
        """The location as JSON values."""
        return {"path": self.path, "members": list(self.members), "offset": self.offset}


@dataclasses.dataclass(frozen=True)
class Finding:
    """One piece of unsafe or suspicious content.

    ``rule`` is a stable identifier (``pickle.global``, ``zip.bad-crc``...), ``subject`` the global
    or construct found (``os.system``), ``message`` says why it matters.
    """

    rule: str
    severity: Severity
    location: Location
    subject: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        """The finding as JSON values."""
        return {
            "rule": self.rule,
            "severity": self.severity.label,
            "location": self.location.to_dict(),
            "subject": self.subject,
            "message": self.message,
        }


@dataclasses.dataclass(frozen=True)
class Unscannable:
    """A file or region that could not be parsed fully, so it can never be called clean."""

    location: Location
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """The unscannable region as JSON values."""
        return {"location": self.location.to_dict(), "reason": self.reason}


@dataclasses.dataclass(frozen=True)
class FileReport:
    """What the scan found in one file given on the command line or found in a directory."""

    path: str
    formats: tuple[str, ...]
    findings: tuple[Finding, ...]
    unscannable: tuple[Unscannable, ...]
    size: int

    @property
    def status(self) -> str:
        """``unscannable`` beats ``unsafe`` beats ``clean`` (fail closed)."""
        if self.unscannable:
            return "unscannable"
        return "unsafe" if self.findings else "clean"

    def to_dict(self) -> dict[str, Any]:
        """The file's report as JSON values."""
        return {
            "path": self.path,
            "status": self.status,
            "formats": list(self.formats),
            "size": self.size,
            "findings": [f.to_dict() for f in self.findings],
            "unscannable": [u.to_dict() for u in self.unscannable],
        }


@dataclasses.dataclass(frozen=True)
class ScanReport:
    """The result of :func:`modelseal.scan`: one :class:`FileReport` per file scanned."""

    files: tuple[FileReport, ...]

    @property
    def findings(self) -> tuple[Finding, ...]:
        """Every finding of every file."""
        return tuple(f for r in self.files for f in r.findings)

    @property
    def unscannable(self) -> tuple[Unscannable, ...]:
        """Every unscannable region of every file."""
        return tuple(u for r in self.files for u in r.unscannable)

    @property
    def clean(self) -> bool:
        """True only when every file was parsed fully and nothing was found."""
        return not self.findings and not self.unscannable

    @property
    def exit_code(self) -> int:
        """0 clean, 1 unsafe content found, 2 anything unscannable (even with findings)."""
        if self.unscannable:
            return EXIT_USAGE
        return EXIT_FAILURE if self.findings else EXIT_OK

    def worst(self) -> Severity | None:
        """The worst severity found, or None when nothing was found."""
        return max((f.severity for f in self.findings), default=None)

    def to_dict(self) -> dict[str, Any]:
        """The whole report as JSON values."""
        return {
            "status": (
                "unscannable" if self.unscannable else "unsafe" if self.findings else "clean"
            ),
            "exit_code": self.exit_code,
            "files": [r.to_dict() for r in self.files],
        }


def sort_findings(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """Worst first, then by location, so output is stable."""
    return tuple(
        sorted(
            findings,
            key=lambda f: (
                -f.severity,
                f.location.path,
                f.location.members,
                f.location.offset or 0,
                f.rule,
                f.subject,
            ),
        )
    )
