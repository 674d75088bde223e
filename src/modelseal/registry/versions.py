"""Models, versions and aliases: listing, resolving, downloading, moving aliases, tombstones."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from sqlalchemy import delete, func, insert, select, update

from modelseal.access import roles
from modelseal.audit.record import utc_now
from modelseal.errors import ConflictError, InputError, NotFoundError
from modelseal.operation import Download, Operation, Route, Status
from modelseal.registry import reads
from modelseal.registry.core import RegistrySession
from modelseal.registry.models import VersionInfo, VersionRef
from modelseal.registry.views import (
    AliasName,
    AliasView,
    ModelName,
    ModelView,
    ScanReportView,
    VersionNumber,
    VersionView,
)
from modelseal.store.schema import aliases, models, versions


class ListModels(Operation[list[ModelView]]):
    """The models the caller may read, with their latest live version and where their aliases
    point."""

    route: ClassVar[Route] = Route("GET", "/v1/models", tag="models")

    def run(self, session: RegistrySession) -> list[ModelView]:
        """Models sorted by name; those the caller may not read are left out."""
        with session.reading() as conn:
            rows = conn.execute(select(models).order_by(models.c.name)).mappings().all()
            alias_rows = conn.execute(select(aliases)).mappings().all()
            live = dict(
                conn.execute(
                    select(versions.c.model_id, func.max(versions.c.number))
                    .where(versions.c.deleted_at.is_(None), versions.c.quarantined_at.is_(None))
                    .group_by(versions.c.model_id)
                ).all()
            )
        by_model: dict[int, dict[str, int]] = {}
        for a in alias_rows:
            by_model.setdefault(a["model_id"], {})[a["name"]] = a["version"]
        return [
            ModelView(name=r["name"], created_at=r["created_at"], created_by=r["created_by"],
                      latest_version=live.get(r["id"]), aliases=by_model.get(r["id"], {}))
            for r in rows
            if roles.may_read(session.actor, r["name"])
        ]  # fmt: skip


class ListVersions(Operation[list[VersionView]]):
    """The live versions of a model; with ``include_deleted`` the tombstoned ones too (marked
    ``deleted``)."""

    route: ClassVar[Route] = Route(
        "GET", "/v1/models/{name}/versions", tag="models", errors=(403, 404)
    )
    name: ModelName
    include_deleted: bool = False

    def run(self, session: RegistrySession) -> list[VersionView]:
        """The versions, oldest first."""
        found = list_versions(session, self.name)
        return [VersionView.of(v) for v in found if self.include_deleted or not v.deleted]


def list_versions(session: RegistrySession, name: str) -> list[VersionInfo]:
    """Every version of ``name`` as the registry stores it (the caller may read it)."""
    session.require(roles.READ, "model.read", f"model/{name}", name)
    with session.reading() as conn:
        mid = reads.model_id(conn, name)
        numbers = conn.execute(
            select(versions.c.number).where(versions.c.model_id == mid).order_by(versions.c.number)
        ).scalars()
        return [reads.version(conn, name, mid, n) for n in numbers]


class _Ref(Operation[VersionView]):
    name: ModelName
    version: VersionNumber | None = Field(None, description="A version number.")
    alias: AliasName | None = Field(None, description="An alias (e.g. production).")

    @property
    def ref(self) -> VersionRef:
        """The version this request names (the latest live one when it names none)."""
        if self.version is not None and self.alias is not None:
            raise InputError("give a version or an alias, not both", hint="drop one of them")
        return VersionRef(self.name, number=self.version, alias=self.alias)


class ResolveVersion(_Ref):
    """One version (by number, alias, or the latest live one), with its signature bundle."""

    route: ClassVar[Route] = Route(
        "GET", "/v1/models/{name}/resolve", tag="models", errors=(403, 404)
    )

    def run(self, session: RegistrySession) -> VersionView:
        """The version and its bundle (read permission)."""
        return VersionView.of(get_version(session, self.ref), with_bundle=True)


def get_version(session: RegistrySession, ref: VersionRef) -> VersionInfo:
    """The version ``ref`` names as the registry stores it (the caller may read it)."""
    session.require(roles.READ, "model.read", f"model/{ref.model}", ref.model)
    with session.reading() as conn:
        return reads.resolve(conn, ref)


class GetDownload(_Ref):
    """Like resolve, but checks the download permission and that the version is live; an
    encrypted version comes with its wrapped data key (the client unwraps it)."""

    route: ClassVar[Route] = Route(
        "GET", "/v1/models/{name}/download", tag="models", errors=(403, 404, 409)
    )

    def run(self, session: RegistrySession) -> VersionView:
        """The version, its bundle and (encrypted) its wrapped data key."""
        info = downloadable(session, self.ref)
        return VersionView.of(info, with_bundle=True, with_key=True)


def downloadable(session: RegistrySession, ref: VersionRef) -> VersionInfo:
    """The live version ``ref`` names, if the caller may download it (audited when denied)."""
    session.require(roles.DOWNLOAD, "model.download", f"model/{ref.model}", ref.model)
    with session.reading() as conn:
        info = reads.resolve(conn, ref)
    if info.deleted:
        raise ConflictError(
            f"version {info.model}:{info.number} was deleted "
            f"({info.delete_reason or 'no reason given'})",
            hint="pull another version",
        )
    _refuse_quarantined(info, "downloaded")
    return info


def _refuse_quarantined(info: VersionInfo, what: str) -> None:
    if info.quarantined:
        raise ConflictError(
            f"version {info.model}:{info.number} is quarantined: its scan found it "
            f"{info.scan_status} ({info.scan_summary}); it cannot be {what}",
            hint="a security engineer reviews the scan report and releases or deletes it",
            topic=f"quarantine:{info.model}:{info.number}",
        )


class DownloadFile(Operation[Download]):
    """One file of a live version, as stored (ciphertext for an encrypted version)."""

    route: ClassVar[Route] = Route(
        "GET",
        "/v1/models/{name}/versions/{number}/files/{path:path}",
        tag="models",
        errors=(403, 404, 409),
        answer="bytes",
    )
    name: ModelName
    number: VersionNumber
    path: str = Field(max_length=4096)

    def run(self, session: RegistrySession) -> Download:
        """The file's size and a stream of its bytes (the download is audited)."""
        info = downloadable(session, VersionRef(self.name, number=self.number))
        for entry in info.files:
            if entry.path == self.path:  # encrypted: the ciphertext (the client decrypts)
                resource = f"model/{info.model}/versions/{info.number}"
                decision = roles.decide(session.actor, roles.DOWNLOAD, info.model)
                session.committer.append([
                    session.event("model.download", resource, decision,
                                  digest=f"sha256:{info.root_digest}",
                                  details={"path": entry.path, "bytes": entry.transfer_size})
                ])  # fmt: skip
                return Download(entry.transfer_size, session.blobs.read(entry.stored or entry.blob))
        raise NotFoundError(
            f"version {info.model}:{info.number} has no file {self.path!r}", hint="check the path"
        )


class SetAlias(Operation[VersionView]):
    """Point an alias at a live version (created if new); every move is audited."""

    route: ClassVar[Route] = Route(
        "PUT", "/v1/models/{name}/aliases/{alias}", tag="models", errors=(403, 404, 409)
    )
    name: ModelName
    alias: AliasName
    version: VersionNumber

    def run(self, session: RegistrySession) -> VersionView:
        """Move the alias; the version it now points at."""
        name, alias, number = self.name, self.alias, self.version
        resource = f"model/{name}/aliases/{alias}"
        permission = roles.alias_permission(alias, session.registry.protected_aliases)
        decision = session.require(permission, "alias.move", resource, name)
        if alias in session.registry.protected_aliases:
            from modelseal.registry.attestations import require_decision

            with session.reading() as conn:
                wanted = reads.version(conn, name, reads.model_id(conn, name), number)
            _check_movable(wanted)  # a deleted or held version: say that, not "no decision"
            require_decision(session, wanted, alias, resource)
        with session.transaction() as conn:
            mid = reads.model_id(conn, name, lock=True)
            target = reads.version(conn, name, mid, number)
            _check_movable(target)
            previous = conn.execute(
                select(aliases.c.version).where(aliases.c.model_id == mid, aliases.c.name == alias)
            ).scalar()
            values = {"version": number, "updated_at": utc_now(), "updated_by": session.actor.name}
            if previous is None:
                conn.execute(insert(aliases).values(model_id=mid, name=alias, **values))
            else:
                conn.execute(
                    update(aliases)
                    .where(aliases.c.model_id == mid, aliases.c.name == alias)
                    .values(**values)
                )
            session.record(conn, "alias.move", resource, decision,
                           digest=f"sha256:{target.root_digest}",
                           details={"alias": alias, "from": previous, "to": number})  # fmt: skip
            return VersionView.of(reads.version(conn, name, mid, number))


def _check_movable(target: VersionInfo) -> None:
    """An alias may point at ``target`` only if it is live and not quarantined."""
    if target.deleted:
        raise ConflictError(
            f"version {target.model}:{target.number} was deleted",
            hint="point the alias at a live version",
        )
    _refuse_quarantined(target, "given an alias")


class RemoveAlias(Operation[Status]):
    """Remove an alias (the version it pointed at stays); audited like a move."""

    route: ClassVar[Route] = Route(
        "DELETE", "/v1/models/{name}/aliases/{alias}", tag="models", errors=(403, 404)
    )
    name: ModelName
    alias: AliasName

    def run(self, session: RegistrySession) -> Status:
        """Drop the alias."""
        name, alias = self.name, self.alias
        resource = f"model/{name}/aliases/{alias}"
        decision = session.require(
            roles.alias_permission(alias, session.registry.protected_aliases),
            "alias.remove",
            resource,
            name,
        )
        with session.transaction() as conn:
            mid = reads.model_id(conn, name, lock=True)
            previous = conn.execute(
                select(aliases.c.version).where(aliases.c.model_id == mid, aliases.c.name == alias)
            ).scalar()
            if previous is None:
                raise NotFoundError(
                    f"model {name!r} has no alias {alias!r}",
                    hint=f"list the aliases of {name}",
                    topic=f"aliases:{name}",
                )
            conn.execute(delete(aliases).where(aliases.c.model_id == mid, aliases.c.name == alias))
            session.record(conn, "alias.remove", resource, decision,
                           details={"alias": alias, "from": previous})  # fmt: skip
        return Status(status="removed")


class ReleaseVersion(Operation[VersionView]):
    """Release a quarantined version after reviewing its scan report (security engineers);
    audited with the reason."""

    route: ClassVar[Route] = Route(
        "POST",
        "/v1/models/{name}/versions/{number}/release",
        tag="models",
        errors=(403, 404, 409),
    )
    name: ModelName
    number: VersionNumber
    reason: str = Field(min_length=1, max_length=1000)

    def run(self, session: RegistrySession) -> VersionView:
        """The released version."""
        name, number = self.name, self.number
        resource = f"model/{name}/versions/{number}"
        decision = session.require(roles.TRUST, "version.release", resource, name)
        with session.transaction() as conn:
            mid = reads.model_id(conn, name, lock=True)
            info = reads.version(conn, name, mid, number)
            if not info.quarantined:
                raise ConflictError(f"version {name}:{number} is not quarantined",
                                    hint="nothing to do")  # fmt: skip
            conn.execute(
                update(versions)
                .where(versions.c.model_id == mid, versions.c.number == number)
                .values(quarantined_at=None)
            )
            session.record(conn, "version.release", resource, decision,
                           digest=f"sha256:{info.root_digest}",
                           details={"reason": self.reason, "scan": info.scan_status})  # fmt: skip
            return VersionView.of(reads.version(conn, name, mid, number))


class GetScanReport(Operation[ScanReportView]):
    """The full report of scanning a version's files when it was pushed."""

    route: ClassVar[Route] = Route(
        "GET", "/v1/models/{name}/versions/{number}/scan", tag="models", errors=(403, 404)
    )
    name: ModelName
    number: VersionNumber

    def run(self, session: RegistrySession) -> ScanReportView:
        """The report (empty for a version the registry could not scan itself)."""
        import json

        session.require(roles.READ, "model.read", f"model/{self.name}", self.name)
        with session.reading() as conn:
            mid = reads.model_id(conn, self.name)
            row = conn.execute(
                select(versions.c.scan_status, versions.c.scan_report).where(
                    versions.c.model_id == mid, versions.c.number == self.number
                )
            ).first()
        if row is None:
            raise NotFoundError(
                f"model {self.name!r} has no version {self.number}",
                hint="list the versions",
                topic=f"versions:{self.name}",
            )
        report = json.loads(row.scan_report) if row.scan_report else {}
        return ScanReportView(model=self.name, version=self.number,
                              status=row.scan_status or "not-scanned", report=report)  # fmt: skip


class ListAliases(Operation[list[AliasView]]):
    """A model's aliases: where each points, who moved it last and when."""

    route: ClassVar[Route] = Route(
        "GET", "/v1/models/{name}/aliases", tag="models", errors=(403, 404)
    )
    name: ModelName

    def run(self, session: RegistrySession) -> list[AliasView]:
        """The aliases, sorted by name."""
        name = self.name
        session.require(roles.READ, "model.read", f"model/{name}", name)
        with session.reading() as conn:
            mid = reads.model_id(conn, name)
            rows = conn.execute(
                select(aliases).where(aliases.c.model_id == mid).order_by(aliases.c.name)
            ).mappings()
            return [AliasView(alias=r["name"], version=r["version"], updated_at=r["updated_at"],
                              updated_by=r["updated_by"]) for r in rows]  # fmt: skip


class DeleteVersion(Operation[VersionView]):
    """Tombstone a version: it stays in the record, is no longer downloadable, and loses its
    aliases (recorded in the audit entry)."""

    route: ClassVar[Route] = Route(
        "POST",
        "/v1/models/{name}/versions/{number}/delete",
        tag="models",
        errors=(403, 404, 409),
    )
    name: ModelName
    number: VersionNumber
    reason: str = Field(min_length=1, max_length=1000)

    def run(self, session: RegistrySession) -> VersionView:
        """The tombstoned version."""
        name, number = self.name, self.number
        resource = f"model/{name}/versions/{number}"
        decision = session.require(roles.DELETE, "version.delete", resource, name)
        with session.transaction() as conn:
            mid = reads.model_id(conn, name, lock=True)
            info = reads.version(conn, name, mid, number)
            if info.deleted:
                raise ConflictError(
                    f"version {name}:{number} is already deleted", hint="nothing to do"
                )
            conn.execute(
                update(versions)
                .where(versions.c.model_id == mid, versions.c.number == number)
                .values(deleted_at=utc_now(), deleted_by=session.actor.name,
                        delete_reason=self.reason)
            )  # fmt: skip
            conn.execute(
                delete(aliases).where(aliases.c.model_id == mid, aliases.c.version == number)
            )
            session.record(conn, "version.delete", resource, decision,
                           digest=f"sha256:{info.root_digest}",
                           details={"reason": self.reason,
                                    "aliases_removed": list(info.aliases)})  # fmt: skip
            return VersionView.of(reads.version(conn, name, mid, number))
