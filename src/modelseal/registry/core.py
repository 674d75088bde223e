"""One registry: a database, a blob store and the audit log, and how an operation runs on it.

Every operation (see :mod:`modelseal.registry.catalogue`) runs in a :class:`RegistrySession`:
the registry as seen by one principal. Each state change commits in one transaction together
with its audit record; every denied attempt is recorded in a transaction of its own. Blobs are
written before the transaction that publishes them, so a crash at any point leaves either no
version or a whole one; blobs nobody references are collected by
:class:`modelseal.registry.gc.CollectGarbage`.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from sqlalchemy import Engine, select

from modelseal.access import authn
from modelseal.access.roles import Principal
from modelseal.access.session import Session
from modelseal.audit.committer import GroupCommitter
from modelseal.audit.log import AuditLog
from modelseal.operation import Operation, runner
from modelseal.registry.blobs import BlobStore
from modelseal.registry.config import DEFAULT_MAX_FILE_BYTES, RegistryConfig
from modelseal.registry.signature import CheckedSignature, Trust
from modelseal.store import db
from modelseal.store.schema import trusted_keys

OutT = TypeVar("OutT")
MAX_CACHED_UPLOADS = 256


class Registry:
    """A registry's state, shared by every session: engine, blobs, audit log, trust, limits."""

    def __init__(
        self,
        *,
        engine: Engine,
        blobs: BlobStore,
        audit: AuditLog,
        trust: Trust | None = None,
        require_encryption: bool = False,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        push_scan: str = "refuse",
        protected_aliases: tuple[str, ...] = ("production",),
        gate_policy_digest: str | None = None,
    ) -> None:
        from modelseal.registry.push_scan import check_policy

        self.engine = engine
        self.push_scan = check_policy(push_scan)
        # Aliases that move only with a passing gate decision (once a gate key is trusted), made
        # under this policy digest if one is set.
        self.protected_aliases = tuple(protected_aliases)
        self.gate_policy_digest = gate_policy_digest
        self.blobs = blobs
        self.audit = audit
        self.trust = trust or Trust()
        self.require_encryption = require_encryption
        self.max_file_bytes = max_file_bytes
        self.committer = GroupCommitter(engine, audit)
        self.uploads = SignatureCache()

    @classmethod
    def open(cls, config: RegistryConfig) -> Registry:
        """Open (and migrate) the registry ``config`` describes."""
        from modelseal.audit.note import load_or_create_signer

        engine = db.create_engine(config.db_url)
        db.migrate(engine)
        signer = load_or_create_signer(config.audit_key, config.audit_origin)
        anchors = tuple(sorted((config.home / "trust" / "anchors").glob("*.pem")))
        trust = Trust(keys_dir=config.home / "trust" / "keys", anchors=anchors)
        return cls(
            engine=engine,
            blobs=BlobStore(config.blob_url),
            audit=AuditLog(signer),
            trust=trust,
            require_encryption=config.require_encryption,
            max_file_bytes=config.max_file_bytes,
            push_scan=config.push_scan,
            protected_aliases=config.protected_aliases,
            gate_policy_digest=config.gate_policy_digest,
        )

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def session(self, actor: Principal) -> RegistrySession:
        """The registry as ``actor`` sees it."""
        return RegistrySession(self.engine, self.committer, actor, self)

    def run(self, actor: Principal, operation: Operation[OutT]) -> OutT:
        """Run ``operation`` for ``actor`` (authorized and audited by the operation itself)."""
        return runner(operation)(self.session(actor))

    def receive(self, actor: Principal, operation: Operation[OutT], body: Iterable[bytes]) -> OutT:
        """Run an operation whose input includes a byte stream (an upload's file)."""
        return runner(operation)(self.session(actor), body)

    def authenticate(self, value: str, *, request_id: str = "", source: str = "") -> Principal:
        """The principal a bearer token stands for; every failure is an audited denial."""
        anonymous = Principal("anonymous", request_id=request_id, source=source)
        return authn.authenticate(Session(self.engine, self.committer, anonymous), value)

    def record_denial(
        self,
        actor: Principal,
        action: str,
        resource: str,
        reason: str,
        *,
        digest: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a denied attempt by ``actor`` (durable when this returns)."""
        self.session(actor).record_denial(action, resource, reason, digest=digest,
                                          details=details)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class RegistrySession(Session):
    """The registry as seen by one principal, for one call."""

    registry: Registry

    @property
    def blobs(self) -> BlobStore:
        """Where file contents live."""
        return self.registry.blobs

    def gate_keys(self) -> list[Any]:
        """The public keys trusted to sign gate decisions (empty: the gate is not required)."""
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        with self.reading() as conn:
            query = select(trusted_keys.c.pem).where(trusted_keys.c.purpose == "gate")
            return [load_pem_public_key(p.encode()) for p in conn.execute(query).scalars()]

    def trust_now(self) -> Trust:
        """The configured trust plus the signer keys added through the registry."""
        with self.reading() as conn:
            query = select(trusted_keys.c.pem).where(trusted_keys.c.purpose == "signer")
            pems = tuple(r.encode() for r in conn.execute(query).scalars())
        trust = self.registry.trust
        return dataclasses.replace(trust, pinned=trust.pinned + pems)


class SignatureCache:
    """Parsed signatures of uploads in progress (bounded; re-parsed from the database on a
    miss, e.g. when another server process began the upload)."""

    def __init__(self, size: int = MAX_CACHED_UPLOADS) -> None:
        self._size = size
        self._items: collections.OrderedDict[str, CheckedSignature] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, upload_id: str) -> CheckedSignature | None:
        """The parsed signature of ``upload_id``, if this process has it."""
        with self._lock:
            return self._items.get(upload_id)

    def put(self, upload_id: str, checked: CheckedSignature) -> None:
        """Keep ``checked`` for ``upload_id``, forgetting the oldest past the bound."""
        with self._lock:
            self._items[upload_id] = checked
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def forget(self, upload_id: str) -> None:
        """Drop ``upload_id`` (published or aborted)."""
        with self._lock:
            self._items.pop(upload_id, None)
