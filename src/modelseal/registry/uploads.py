"""Pushing a version: begin an upload (its signature checked first), receive its files
(:mod:`modelseal.registry.receive`), then publish it atomically or abort it."""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field
from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from modelseal.access import roles
from modelseal.access.roles import Decision
from modelseal.audit.record import utc_now
from modelseal.errors import (
    ConflictError,
    DigestMismatchError,
    InputError,
    ModelsealError,
    NotFoundError,
    UsageError,
)
from modelseal.hashing.manifest import Manifest
from modelseal.operation import Operation, Route, Status
from modelseal.registry import push_scan, reads
from modelseal.registry.core import RegistrySession
from modelseal.registry.models import Lineage as LineageValue
from modelseal.registry.sealing import seal
from modelseal.registry.signature import CheckedSignature, check_signature, empty_files
from modelseal.registry.views import (
    Digest,
    Lineage,
    ModelName,
    SealedVersion,
    UploadState,
    UploadView,
    VersionView,
)
from modelseal.store.schema import models, upload_files, uploads, version_files, version_keys
from modelseal.store.schema import versions as versions_table

MAX_METADATA_BYTES = 64 * 1024


@dataclasses.dataclass(frozen=True)
class Scanned:
    """What scanning an upload decided: its status, report (JSON) and whether to quarantine."""

    status: str | None
    report: str | None
    quarantine: bool


MAX_BUNDLE_BYTES = 16 * 1024 * 1024


class BeginUpload(Operation[UploadView]):
    """Start a push: the signature is checked now (against the registry's trust), and the
    answer lists the files the registry expects. With ``encrypted`` the client sends ciphertext
    (see :mod:`modelseal.registry.encryption`) and publishes with the version's wrapped key."""

    route: ClassVar[Route] = Route(
        "POST",
        "/v1/models/{name}/uploads",
        tag="uploads",
        errors=(403, 422),
        max_body=MAX_BUNDLE_BYTES + 4 * MAX_METADATA_BYTES,
    )
    name: ModelName
    bundle: str = Field(description="The OMS signature bundle (JSON text).",
                        max_length=MAX_BUNDLE_BYTES)  # fmt: skip
    public_key: str | None = Field(
        None, description="Signer's PEM public key (key bundles).", max_length=20000
    )
    metadata: dict[str, Any] = Field(default_factory=dict)
    lineage: Lineage = Field(default_factory=LineageValue)
    encrypted: bool = Field(
        False, description="The client sends ciphertext and publishes with a wrapped data key."
    )

    def run(self, session: RegistrySession) -> UploadView:
        """Record the upload; the files it expects."""
        name = self.name
        resource = f"model/{name}"
        session.require(roles.PUSH, "version.publish", resource, name)
        if session.registry.require_encryption and not self.encrypted:
            session.deny("version.publish", resource,
                         UsageError("this registry accepts only encrypted pushes",
                                    hint="push encrypted, with a key-encryption key",
                topic="push-encryption"))  # fmt: skip
        meta_json = json.dumps(self.metadata, sort_keys=True)
        if len(meta_json) > MAX_METADATA_BYTES:
            raise InputError("metadata is too large", hint="keep it under 64 KiB")
        key = self.public_key.encode("utf-8") if self.public_key else None
        try:
            checked = check_signature(self.bundle.encode("utf-8"), key, session.trust_now())
        except ModelsealError as exc:
            if exc.exit_code == 1:  # a signature that does not verify: a denied attempt
                session.deny("version.publish", resource, exc)
            raise
        upload_id = secrets.token_urlsafe(24)
        with session.transaction() as conn:
            conn.execute(
                insert(uploads).values(
                    id=upload_id,
                    model_name=name,
                    actor=session.actor.name,
                    created_at=utc_now(),
                    bundle=self.bundle,
                    public_key=checked.public_key_pem,
                    signer=checked.signer,
                    meta=meta_json,
                    lineage=json.dumps(self.lineage.to_dict(), sort_keys=True),
                    encrypted=self.encrypted,
                )
            )
        session.registry.uploads.put(upload_id, checked)
        manifest = checked.statement.manifest
        return UploadView(upload_id=upload_id, model=name, files=list(expected_files(checked)),
                          root_digest=Digest(sha256=manifest.root_digest.hex()),
                          encrypted=self.encrypted)  # fmt: skip


class GetUploadState(Operation[UploadState]):
    """The number the upload would get if published now (an encrypted push wraps its data key
    for it; publishing checks it is still next)."""

    route: ClassVar[Route] = Route("GET", "/v1/uploads/{upload_id}", tag="uploads", errors=(404,))
    upload_id: str = Field(max_length=64)

    def run(self, session: RegistrySession) -> UploadState:
        """The next version number of the upload's model."""
        with session.reading() as conn:
            row = upload_row(conn, session, self.upload_id)
            last = conn.execute(
                select(models.c.last_version).where(models.c.name == row["model_name"])
            ).scalar()
        return UploadState(next_version=int(last or 0) + 1)


class PublishUpload(Operation[VersionView]):
    """Make the upload a new version, atomically, with its audit record(s). An encrypted upload
    needs ``encryption``: the wrapped data key, made for the number it will get (else 409
    ``version-taken``: wrap again for the upload's next version and retry)."""

    route: ClassVar[Route] = Route(
        "POST", "/v1/uploads/{upload_id}/publish", tag="uploads", errors=(404, 409, 422)
    )
    upload_id: str = Field(max_length=64)
    encryption: SealedVersion | None = Field(
        None, description="Encrypted uploads: {version, envelope (envelope/v1), plaintext_sha256}."
    )

    def run(self, session: RegistrySession) -> VersionView:
        """The published version (scanned first: see :mod:`modelseal.registry.push_scan`)."""
        scanned = self._scan(session)
        for attempt in range(5):
            try:
                return VersionView.of(self._publish(session, scanned))
            except DigestMismatchError as exc:  # a plaintext digest the signature contradicts
                session.deny("version.publish", f"upload/{self.upload_id[:12]}", exc)
            except SqlIntegrityError:  # two first pushes of a new model raced: retry
                if attempt == 4:
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def _scan(self, session: RegistrySession) -> Scanned:
        """Scan the received files (a plaintext upload); refuse the publish when they are not
        clean and the policy says so. An encrypted upload reports the client's scan."""
        with session.reading() as conn:
            row = upload_row(conn, session, self.upload_id)
            files = {
                r.path: r.blob
                for r in conn.execute(
                    select(upload_files.c.path, upload_files.c.blob).where(
                        upload_files.c.upload_id == self.upload_id
                    )
                )
            }
        for blob in files.values():
            if not session.blobs.exists(blob):
                raise ConflictError(
                    "an uploaded blob disappeared before publishing",
                    hint="push again (the garbage collector may have run)",
                )
        if row["encrypted"]:
            scanned = self.encryption is not None and self.encryption.client_scanned
            return Scanned(push_scan.CLIENT_CLEAN if scanned else None, None, False)
        status, report = push_scan.scan_upload(session.blobs, files)
        if status == push_scan.CLEAN:
            return Scanned(status, push_scan.dumps(report), False)
        name = row["model_name"]
        if session.registry.push_scan == "refuse":
            session.deny("version.publish", f"model/{name}",
                         push_scan.refusal(name, status, report),
                         details={"scan": status, "summary": push_scan.summary(report),
                                  "upload": self.upload_id[:12]})  # fmt: skip
        return Scanned(status, push_scan.dumps(report), True)

    def _publish(self, session: RegistrySession, scanned: Scanned) -> Any:
        upload_id, sealed, actor = self.upload_id, self.encryption, session.actor
        with session.transaction() as conn:
            row = upload_row(conn, session, upload_id)
            name = row["model_name"]
            if bool(row["encrypted"]) != (sealed is not None):
                raise InputError(
                    "an encrypted upload is published with its wrapped data key, a plaintext "
                    "one without",
                    hint="push again",
                )
            checked = checked_signature(session, upload_id, row)
            expected = expected_files(checked)
            received = {
                r.path: (r.blob, int(r.size), r.stored, r.stored_size)
                for r in conn.execute(
                    select(upload_files).where(upload_files.c.upload_id == upload_id)
                )
            }
            missing = sorted(set(expected) - set(received))
            if missing:
                raise ConflictError(
                    f"upload incomplete: {len(missing)} file(s) not received "
                    f"(first {missing[0]!r})",
                    hint="push every file the signature lists",
                )
            for blob, _size, _stored, _stored_size in received.values():
                if not session.blobs.exists(blob):
                    raise ConflictError(
                        "an uploaded blob disappeared before publishing",
                        hint="push again (the garbage collector may have run)",
                    )
            now = utc_now()
            lineage = LineageValue.from_dict(json.loads(row["lineage"]))
            model_row = conn.execute(
                select(models.c.id, models.c.last_version)
                .where(models.c.name == name)
                .with_for_update()
            ).first()
            why = Decision(True, roles.decide(actor, roles.PUSH, name).reason)
            if model_row is None:
                mid = conn.execute(
                    insert(models)
                    .values(name=name, created_at=now, created_by=actor.name, last_version=0)
                    .returning(models.c.id)
                ).scalar_one()
                last = 0
                session.record(conn, "model.create", f"model/{name}", why)
            else:
                mid, last = int(model_row.id), int(model_row.last_version)
            number = last + 1
            manifest: Manifest = checked.statement.manifest
            root = manifest.root_digest.hex()
            key_row: dict[str, Any] | None = None
            if sealed is not None:
                received, key_row = seal(name, number, root, checked, received, sealed)
            if lineage.parent_version is not None and not 1 <= lineage.parent_version <= last:
                raise NotFoundError(
                    f"parent version {lineage.parent_version} of {name!r} does not exist",
                    hint="give an existing version as the parent",
                )
            conn.execute(update(models).where(models.c.id == mid).values(last_version=number))
            version_id = conn.execute(
                insert(versions_table)
                .values(
                    model_id=mid,
                    number=number,
                    root_digest=root,
                    manifest=json.dumps(manifest.to_dict(), sort_keys=True),
                    bundle=row["bundle"],
                    signer=row["signer"],
                    public_key=row["public_key"],
                    meta=row["meta"],
                    lineage=row["lineage"],
                    created_at=now,
                    created_by=actor.name,
                    scan_status=scanned.status,
                    scan_report=scanned.report,
                    quarantined_at=now if scanned.quarantine else None,
                )
                .returning(versions_table.c.id)
            ).scalar_one()
            conn.execute(
                insert(version_files),
                [
                    {"version_id": version_id, "path": p, "blob": b, "size": s, "stored": st,
                     "stored_size": ss}
                    for p, (b, s, st, ss) in sorted(received.items())
                ],
            )  # fmt: skip
            details: dict[str, Any] = {"signer": row["signer"], "files": len(received),
                                       "scan": scanned.status or "not-scanned"}  # fmt: skip
            if scanned.quarantine:
                details["quarantined"] = True
            if key_row is not None:
                conn.execute(
                    insert(version_keys).values(version_id=version_id, created_at=now, **key_row)
                )
                details["encrypted"] = {"provider": key_row["provider"],
                                        "kek_id": key_row["kek_id"]}  # fmt: skip
            conn.execute(delete(upload_files).where(upload_files.c.upload_id == upload_id))
            conn.execute(delete(uploads).where(uploads.c.id == upload_id))
            session.record(conn, "version.publish", f"model/{name}/versions/{number}", why,
                           digest=f"sha256:{root}", details=details)  # fmt: skip
            info = reads.version(conn, name, mid, number)
        session.registry.uploads.forget(upload_id)
        return info


class AbortUpload(Operation[Status]):
    """Drop an upload in progress (its blobs go at the next garbage collection)."""

    route: ClassVar[Route] = Route("DELETE", "/v1/uploads/{upload_id}", tag="uploads",
                                   errors=(404,))  # fmt: skip
    upload_id: str = Field(max_length=64)

    def run(self, session: RegistrySession) -> Status:
        """Forget the upload."""
        with session.transaction() as conn:
            upload_row(conn, session, self.upload_id)
            conn.execute(delete(upload_files).where(upload_files.c.upload_id == self.upload_id))
            conn.execute(delete(uploads).where(uploads.c.id == self.upload_id))
        session.registry.uploads.forget(self.upload_id)
        return Status(status="aborted")


def upload_row(conn: Connection, session: RegistrySession, upload_id: str) -> Mapping[Any, Any]:
    """The upload ``upload_id`` of this session's principal (another's is not found)."""
    row = conn.execute(select(uploads).where(uploads.c.id == upload_id)).mappings().first()
    if row is None or row["actor"] != session.actor.name:
        raise NotFoundError(f"unknown upload {upload_id[:12]}...", hint="start the push again")
    return row


def checked_signature(
    session: RegistrySession, upload_id: str, row: Mapping[Any, Any]
) -> CheckedSignature:
    """The upload's parsed signature (re-checked from the stored bundle on a cache miss)."""
    checked = session.registry.uploads.get(upload_id)
    if checked is None:
        key = row["public_key"].encode() if row["public_key"] else None
        checked = check_signature(row["bundle"].encode(), key, session.trust_now())
        session.registry.uploads.put(upload_id, checked)
    return checked


def expected_files(checked: CheckedSignature) -> dict[str, list[Any]]:
    """Each file the signature covers, with its manifest items (none for signed empty files)."""
    out: dict[str, list[Any]] = {}
    for item in checked.statement.manifest.items:
        out.setdefault(item.path, []).append(item)
    for path in empty_files(checked.statement):
        out.setdefault(path, [])
    return out
