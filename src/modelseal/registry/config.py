"""Where the registry keeps things. Precedence: explicit arguments (CLI flags) > ``MODELSEAL_*``
environment variables > ``$MODELSEAL_HOME/config.toml`` (table ``[registry]``) > defaults under
``$MODELSEAL_HOME`` (default ``~/.modelseal``)."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path
from typing import Any

from modelseal.errors import InputError
from modelseal.sizes import parse_size

DEFAULT_ORIGIN = "modelseal.local/audit"
# The largest file an upload may hold, whatever its signature says: a bound on what one push can
# write to the blob store before its digests are checked. Generous (single files of large models
# reach a few hundred GiB); set ``max_file_bytes`` to change it.
DEFAULT_MAX_FILE_BYTES = 1 << 40
DEFAULT_AUTH_FAILURE_LIMIT = 30
# Requests the server handles at once in worker threads (AnyIO's own default). Concurrent writes
# share commits (group commit), so a busy server appends more audit records per second with more.
DEFAULT_SERVER_THREADS = 40


@dataclasses.dataclass(frozen=True)
class RegistryConfig:
    """Where a registry keeps things and its limits (see the module docstring for precedence)."""

    home: Path
    db_url: str
    blob_url: str
    audit_key: Path
    audit_origin: str
    server: str | None = None
    token: str | None = None
    # Client side: the KEK pushes encrypt with and pulls unwrap with by default (a provider URI).
    encryption_kek: str | None = None
    # Registry side: refuse plaintext pushes.
    require_encryption: bool = False
    # Registry side: the largest file an upload may hold (bytes).
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    # Server side: failed authentications allowed per source address per minute (0: no limit).
    auth_failure_limit: int = DEFAULT_AUTH_FAILURE_LIMIT
    # Server side: requests handled at once in worker threads.
    server_threads: int = DEFAULT_SERVER_THREADS
    # Server side: the proxies whose X-Forwarded-For/-Proto headers are believed (addresses or
    # networks, comma-separated; "*" for any). Empty: none, the peer's address is the client's.
    forwarded_allow_ips: str = ""
    # Registry side: what happens to a pushed version whose scan is not clean ("refuse": not
    # published; "quarantine": published but not downloadable or aliasable until released).
    push_scan: str = "refuse"
    # Registry side: aliases that move only with a passing, signed gate decision for the exact
    # digest (enforced once a gate key is trusted), and the policy digest decisions must carry.
    protected_aliases: tuple[str, ...] = ("production",)
    gate_policy_digest: str | None = None

    @property
    def witness_path(self) -> Path:
        """The last checkpoint ``audit verify`` accepted, kept outside the database."""
        return self.home / "audit" / "witness.checkpoint"

    @property
    def audit_vkey(self) -> Path:
        """The audit log's public note key (next to its private key)."""
        return self.audit_key.with_suffix(".vkey")

    @classmethod
    def resolve(
        cls,
        *,
        home: str | os.PathLike[str] | None = None,
        db_url: str | None = None,
        blob_url: str | None = None,
        audit_key: str | os.PathLike[str] | None = None,
        server: str | None = None,
        token: str | None = None,
        encryption_kek: str | None = None,
    ) -> RegistryConfig:
        """The configuration from flags, ``MODELSEAL_*`` variables, ``config.toml`` and defaults."""
        env = os.environ
        root = Path(home or env.get("MODELSEAL_HOME") or Path.home() / ".modelseal").expanduser()
        file = _read_config(root / "config.toml")

        def pick(value: Any, env_name: str, key: str) -> Any:
            if value is not None:
                return value
            if env.get(env_name):
                return env[env_name]
            return file.get(key)

        key_path = pick(audit_key, "MODELSEAL_AUDIT_KEY", "audit_key")
        return cls(
            home=root,
            db_url=pick(db_url, "MODELSEAL_DB_URL", "db_url")
            or f"sqlite:///{root / 'registry.db'}",
            blob_url=pick(blob_url, "MODELSEAL_BLOB_URL", "blob_url") or str(root / "blobs"),
            audit_key=Path(key_path).expanduser() if key_path else root / "audit" / "log-key.pem",
            audit_origin=pick(None, "MODELSEAL_AUDIT_ORIGIN", "audit_origin") or DEFAULT_ORIGIN,
            server=pick(server, "MODELSEAL_SERVER", "server"),
            token=pick(token, "MODELSEAL_TOKEN", "token"),
            encryption_kek=pick(encryption_kek, "MODELSEAL_ENCRYPTION_KEK", "encryption_kek"),
            require_encryption=_flag(
                pick(None, "MODELSEAL_REQUIRE_ENCRYPTION", "require_encryption"),
                "require_encryption",
            ),
            max_file_bytes=_size(
                pick(None, "MODELSEAL_MAX_FILE_BYTES", "max_file_bytes"),
                "max_file_bytes",
                DEFAULT_MAX_FILE_BYTES,
            ),
            auth_failure_limit=_count(
                pick(None, "MODELSEAL_AUTH_FAILURE_LIMIT", "auth_failure_limit"),
                "auth_failure_limit",
                DEFAULT_AUTH_FAILURE_LIMIT,
            ),
            server_threads=_count(
                pick(None, "MODELSEAL_SERVER_THREADS", "server_threads"),
                "server_threads",
                DEFAULT_SERVER_THREADS,
                minimum=1,
            ),
            forwarded_allow_ips=proxies(
                pick(None, "MODELSEAL_FORWARDED_ALLOW_IPS", "forwarded_allow_ips")
            ),
            push_scan=_policy(pick(None, "MODELSEAL_PUSH_SCAN", "push_scan")),
            protected_aliases=_aliases(
                pick(None, "MODELSEAL_PROTECTED_ALIASES", "protected_aliases")
            ),
            gate_policy_digest=_digest(
                pick(None, "MODELSEAL_GATE_POLICY_DIGEST", "gate_policy_digest")
            ),
        )


def _aliases(value: Any) -> tuple[str, ...]:
    from modelseal.registry.models import check_alias

    if value is None:
        return ("production",)
    items = value if isinstance(value, list) else str(value).split(",")
    try:
        return tuple(check_alias(str(item).strip()) for item in items if str(item).strip())
    except InputError as exc:
        raise InputError(
            f"invalid protected_aliases: {exc.message}", hint="list alias names, e.g. production"
        ) from None


def _digest(value: Any) -> str | None:
    import re

    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip().lower().removeprefix("sha256:")
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise InputError(
            "invalid gate_policy_digest", hint="the policy file's SHA-256, 64 hex digits"
        )
    return text


def _policy(value: Any) -> str:
    from modelseal.registry.push_scan import check_policy

    return check_policy(str(value).strip().lower()) if value is not None else "refuse"


def proxies(value: Any) -> str:
    """Trusted proxy addresses as uvicorn takes them (checked: each an IP address, a network or
    ``*``)."""
    import ipaddress

    if value is None:
        return ""
    items = value if isinstance(value, list) else str(value).split(",")
    found = [str(item).strip() for item in items if str(item).strip()]
    for item in found:
        if item == "*":
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise InputError(
                f"invalid forwarded_allow_ips entry {item!r}",
                hint="give IP addresses or networks (e.g. 10.0.0.5,10.1.0.0/16), or '*'",
            ) from None
    return ",".join(found)


def _flag(value: Any, name: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise InputError(f"invalid {name} {value!r}", hint="use true or false")


def _count(value: Any, name: str, default: int, *, minimum: int = 0) -> int:
    """A whole number >= ``minimum`` (0: the setting is off)."""
    if value is None:
        return default
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) < minimum:
        if minimum == 0:
            hint = "use a whole number, 0 to turn it off"
        else:
            hint = f"use a whole number of at least {minimum}"
        raise InputError(f"invalid {name} {value!r}", hint=hint)
    return int(text)


def _size(value: Any, name: str, default: int) -> int:
    """A byte count: an integer, or a string such as ``500GiB`` or ``2T``."""
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    size = None if isinstance(value, bool) else parse_size(str(value))
    if size is None:
        raise InputError(f"invalid {name} {value!r}", hint="use a size such as 500GiB or 2T")
    return size


def _read_config(path: Path) -> dict[str, Any]:
    try:
        from modelseal.fsinput import read_regular

        data = read_regular(path, 16 << 20)  # never waits on a FIFO
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise InputError(f"cannot read {str(path)!r}: {exc.strerror}", hint="check it") from None
    try:
        parsed = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{str(path)!r} is not valid TOML: {exc}", hint="fix the file") from None
    section = parsed.get("registry", {})
    if not isinstance(section, dict):
        raise InputError(f"{str(path)!r}: [registry] must be a table", hint="fix the file")
    return section
