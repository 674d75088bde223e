"""The environment a model was trained in, and the one it is about to be deployed in.

An environment document records the Python version and the installed packages (name, version,
and a hash: of a lock file's pinned hashes, or of the installed files' RECORD). The training job
captures it (``modelseal env capture``) and pushes it with the model; the gate captures the
deployment environment and reports each difference the policy cares about.
"""

from __future__ import annotations

import hashlib
import platform
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelseal.errors import InputError
from modelseal.policy.decision import CheckResult
from modelseal.policy.document import EnvironmentPolicy

FORMAT = "modelseal-environment/1"
_NAME = re.compile(r"[-_.]+")


class Package(BaseModel):
    """One installed or pinned package."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    hashes: list[str] = Field(default_factory=list, description="sha256:<hex> values.")


class Environment(BaseModel):
    """A Python environment: interpreter version and packages by normalised name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: str = FORMAT
    python: str
    platform: str = ""
    source: str = Field("", description="Where the package list came from.")
    packages: dict[str, Package] = Field(default_factory=dict)


def normalise(name: str) -> str:
    """A package name as PEP 503 compares them."""
    return _NAME.sub("-", name).lower()


def capture(lock: str | Path | None = None) -> Environment:
    """This interpreter's environment; with ``lock`` (a requirements file with ``==`` pins and
    ``--hash`` options) the packages are the lock file's instead of the installed ones."""
    python = platform.python_version()
    where = platform.platform()
    if lock is not None:
        return Environment(
            python=python,
            platform=where,
            source=f"lock:{Path(lock).name}",
            packages=_from_requirements(Path(lock)),
        )
    from importlib import metadata

    packages: dict[str, Package] = {}
    for dist in metadata.distributions():
        name, version = _name_version(dist.read_text("METADATA") or dist.read_text("PKG-INFO"))
        if not name:
            continue
        record = dist.read_text("RECORD") or ""
        digest = hashlib.sha256(record.encode("utf-8")).hexdigest() if record else ""
        packages[normalise(name)] = Package(
            version=version, hashes=[f"sha256:{digest}"] if digest else []
        )
    return Environment(python=python, platform=where, source="installed", packages=packages)


def _name_version(text: str | None) -> tuple[str, str]:
    """Name and Version from a distribution's core metadata headers (read directly: the email
    parser the standard library uses costs milliseconds per package)."""
    name = version = ""
    for line in (text or "").splitlines():
        if not line.strip():
            break  # the headers end at the first empty line
        key, _, value = line.partition(":")
        if key == "Name":
            name = value.strip()
        elif key == "Version":
            version = value.strip()
    return name, version


def read_environment(data: Any, where: str) -> Environment:
    """An environment document from JSON values; :class:`InputError` naming ``where``."""
    try:
        return Environment.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first.get("loc", ())) or "(top level)"
        raise InputError(
            f"{where}: not an environment document: {path}: {first.get('msg')}",
            hint="write it with 'capture' (modelseal env capture)",
        ) from None


def compare(
    policy: EnvironmentPolicy | None, trained: Environment | None, deployed: Environment
) -> CheckResult:
    """Every difference between the training and the deployment environment the policy
    cares about; no recorded training environment fails."""
    section = policy or EnvironmentPolicy()
    if trained is None:
        return CheckResult(
            check="environment",
            passed=False,
            lines=["environment: required the model's recorded training environment; found none"],
        )
    lines: list[str] = []
    if not _same_python(trained.python, deployed.python, section.python):
        lines.append(
            f"environment: Python {trained.python} at training, {deployed.python} here "
            f"(the policy requires the {section.python} version to match)"
        )
    wanted = _wanted(section.packages, trained, deployed)
    kinds = {_hash_kind(trained), _hash_kind(deployed)}
    if section.hashes and len(kinds) > 1:  # a wheel's hash and an install's RECORD never match
        lines.append(
            f"environment: required file hashes of the same kind; the training environment "
            f"has {_hash_kind(trained)} hashes, this one {_hash_kind(deployed)} hashes"
        )
    for name in wanted:
        mine, theirs = trained.packages.get(name), deployed.packages.get(name)
        if mine is None or theirs is None:
            side = "training" if mine is None else "deployment"
            lines.append(f"environment: {name} is missing from the {side} environment")
        elif mine.version != theirs.version:
            lines.append(f"environment: {name} {mine.version} at training, {theirs.version} here")
        elif section.hashes and len(kinds) == 1 and not (mine.hashes and theirs.hashes):
            side = "training" if not mine.hashes else "deployment"
            lines.append(f"environment: {name} has no recorded hash in the {side} environment")
        elif section.hashes and len(kinds) == 1 and not set(mine.hashes) & set(theirs.hashes):
            lines.append(f"environment: {name} {mine.version}: different files (hashes differ)")
    details = {
        "trained_python": trained.python,
        "deployed_python": deployed.python,
        "compared": len(wanted),
        "differences": len(lines),
    }
    if lines:
        return CheckResult(check="environment", passed=False, lines=lines, details=details)
    return CheckResult(
        check="environment",
        passed=True,
        details=details,
        lines=[
            f"environment: Python {deployed.python} and {len(wanted)} package(s) match training"
        ],
    )


def _hash_kind(environment: Environment) -> str:
    """What a package's hashes are of: a lock file's (the wheels) or an install's (RECORD)."""
    return "lock-file" if environment.source.startswith("lock:") else "installed"


def _same_python(trained: str, deployed: str, level: str) -> bool:
    parts = {"exact": 3, "minor": 2, "major": 1, "any": 0}[level]
    return trained.split(".")[:parts] == deployed.split(".")[:parts]


def _wanted(names: Iterable[str], trained: Environment, deployed: Environment) -> list[str]:
    chosen = [normalise(n) for n in names]
    if "*" in names:
        return sorted(set(trained.packages) | set(deployed.packages))
    return sorted(set(chosen))


MAX_LOCK_BYTES = 16 << 20
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;\\]+)")
_HASH = re.compile(r"--hash[= ](sha256:[0-9a-fA-F]{64})")


def _from_requirements(path: Path) -> dict[str, Package]:
    from modelseal.fsinput import read_regular

    try:
        data = read_regular(path, MAX_LOCK_BYTES + 1)
        if len(data) > MAX_LOCK_BYTES:
            raise InputError(f"lock file {str(path)!r} is larger than 16 MiB", hint="check it")
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"cannot read lock file {str(path)!r}: {exc}",
            hint="give a requirements file with == pins",
        ) from None
    packages: dict[str, Package] = {}
    current: str | None = None
    for raw in text.replace("\\\n", " ").splitlines():
        line = raw.split("#", 1)[0] if not raw.lstrip().startswith("--hash") else raw
        pin = _PIN.match(line)
        if pin:
            current = normalise(pin.group(1))
            hashes = [h.lower() for h in _HASH.findall(line)]
            packages[current] = Package(version=pin.group(3), hashes=hashes)
        elif current is not None and _HASH.search(line):
            old = packages[current]
            extra = [h.lower() for h in _HASH.findall(line)]
            packages[current] = Package(version=old.version, hashes=old.hashes + extra)
    if not packages:
        raise InputError(
            f"lock file {str(path)!r} pins no package",
            hint="give a requirements file with name==version lines",
        )
    return packages
