"""The wrapped data keys of encrypted versions: listed for a key rotation and replaced in one
transaction (security engineers). Wrapped keys are useless without the key-encryption key,
which the registry never holds."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from sqlalchemy import select, update

from modelseal.access import roles
from modelseal.audit.record import utc_now
from modelseal.errors import ConflictError, InputError, NotFoundError
from modelseal.operation import Operation, Route
from modelseal.registry.core import RegistrySession
from modelseal.registry.reads import envelope_doc
from modelseal.registry.sealing import key_row
from modelseal.registry.views import Digest, KeyChange, Replaced, VersionKey
from modelseal.store.schema import models, version_keys, versions

# A rotation's changes travel in one body of at most 64 MiB (a change is about 600 bytes).
MAX_KEY_CHANGES = 100_000


class ListVersionKeys(Operation[list[VersionKey]]):
    """The wrapped data keys of encrypted versions (for a key rotation)."""

    route: ClassVar[Route] = Route("GET", "/v1/keys", tag="keys", errors=(403,))
    provider: str | None = Field(None, max_length=64, description="Only keys of this provider.")

    def run(self, session: RegistrySession) -> list[VersionKey]:
        """The keys, by model and version."""
        session.require(roles.TRUST, "keys.list", "keys")
        query = (
            select(models.c.name, versions.c.number, versions.c.root_digest, version_keys)
            .join(versions, versions.c.id == version_keys.c.version_id)
            .join(models, models.c.id == versions.c.model_id)
            .order_by(models.c.name, versions.c.number)
        )
        if self.provider is not None:
            query = query.where(version_keys.c.provider == self.provider)
        with session.reading() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            VersionKey(model=r["name"], version=r["number"],
                       root_digest=Digest(sha256=r["root_digest"]), envelope=envelope_doc(r))
            for r in rows
        ]  # fmt: skip


class RotateVersionKeys(Operation[Replaced]):
    """Replace wrapped data keys (a rotation: same data keys, new KEK), all in one transaction
    with one audit record. Each change names the wrapped key it replaces; if any is no longer
    current nothing changes (409). ``retiring`` lists the KEKs the rotating client destroys once
    this commits (recorded, not done here)."""

    route: ClassVar[Route] = Route("POST", "/v1/keys/rotate", tag="keys", errors=(403, 404, 409))
    changes: list[KeyChange] = Field(max_length=MAX_KEY_CHANGES)
    new_kek_id: str = Field(max_length=512)
    retiring: list[str] = Field(default_factory=list, max_length=1000)

    def run(self, session: RegistrySession) -> Replaced:
        """How many wrapped keys were replaced."""
        from modelseal.crypto import envelope as env

        decision = session.require(roles.TRUST, "keys.rotate", "keys")
        changes = self.changes
        if not changes:
            raise InputError("nothing to rotate", hint="the registry holds no such wrapped keys")
        now = utc_now()
        providers: set[str] = set()
        old_keks: set[str] = set()
        with session.transaction() as conn:
            for change in changes:
                where = f"{change.model}:{change.version}"
                old = env.from_dict(change.old, where=f"the old envelope of {where}")
                new = env.from_dict(change.new, where=f"the new envelope of {where}")
                row = (
                    conn.execute(
                        select(version_keys)
                        .join(versions, versions.c.id == version_keys.c.version_id)
                        .join(models, models.c.id == versions.c.model_id)
                        .where(models.c.name == change.model, versions.c.number == change.version)
                        .with_for_update()
                    )
                    .mappings()
                    .first()
                )
                if row is None:
                    raise NotFoundError(f"{where} has no wrapped data key", hint="list them again")
                current = {k: row[k] for k in ("provider", "kek_id", "wrapped", "ad_sha256")}
                if key_row(old) != current:
                    raise ConflictError(
                        f"the wrapped data key of {where} changed during the rotation",
                        hint="run the rotation again",
                    )
                if new.associated_data_sha256 != row["ad_sha256"]:
                    raise InputError(
                        f"the new wrapped key of {where} is bound to another version",
                        hint="re-wrap the same data key for the same version",
                    )
                conn.execute(
                    update(version_keys)
                    .where(version_keys.c.version_id == row["version_id"])
                    .values(rotated_at=now, **key_row(new))
                )
                providers.add(new.wrapped.provider)
                old_keks.add(f"{old.wrapped.provider}:{old.wrapped.kek_id}")
            session.record(
                conn, "keys.rotate", "keys", decision,
                details={
                    "versions": [f"{c.model}:{c.version}" for c in changes][:1000],
                    "count": len(changes),
                    "from": sorted(old_keks),
                    "to": [f"{p}:{self.new_kek_id}" for p in sorted(providers)],
                    "retiring": sorted(self.retiring),
                },
            )  # fmt: skip
        return Replaced(replaced=len(changes))
