"""The registry service: every operation, with its authorization and its audit record.

Each state change runs in one database transaction together with its audit record; every denied
attempt is recorded in a transaction of its own. Blobs are written before the transaction that
publishes them, so a crash at any point leaves either no version or a whole one; blobs nobody
references are collected by :meth:`Registry.gc`.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import json
import secrets
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NoReturn

from sqlalchemy import Connection, Engine, and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from modelseal.access import roles, tokens
from modelseal.access.roles import Decision, Grant, Principal
from modelseal.audit.log import AuditLog
from modelseal.audit.record import AuditEvent, AuditRecord, format_time, utc_now
from modelseal.errors import InputError, ModelsealError, Reason, UsageError
from modelseal.hashing.manifest import Manifest, Serialization
from modelseal.store import db
from modelseal.registry.blobs import BlobStore, StoredBlob
from modelseal.registry.config import DEFAULT_MAX_FILE_BYTES, RegistryConfig
from modelseal.registry.errors import (
    AuthenticationError,
    ConflictError,
    DigestMismatchError,
    NotFoundError,
    PermissionDeniedError,
    TooLargeError,
    VersionTakenError,
)
from modelseal.audit.committer import GroupCommitter
from modelseal.registry.ingest import StreamingItems
from modelseal.registry.models import (
    FileEntry,
    GcReport,
    KeyChange,
    Lineage,
    ModelInfo,
    SealedVersion,
    UploadInfo,
    VersionInfo,
    VersionKey,
    VersionRef,
    check_alias,
    check_model_name,
)
from modelseal.store.schema import (
    aliases,
    grants,
    models,
    principals,
    trusted_keys,
    upload_files,
    uploads,
    version_files,
    version_keys,
    versions,
)
from modelseal.store.schema import tokens as tokens_table
from modelseal.registry.signature import CheckedSignature, Trust, check_signature, empty_files

MAX_METADATA_BYTES = 64 * 1024
MAX_KEY_CHANGES = 100_000
MAX_CACHED_UPLOADS = 256


class Registry:
    """One registry: a database, a blob store and the audit log."""

    def __init__(
        self,
        *,
        engine: Engine,
        blobs: BlobStore,
        audit: AuditLog,
        trust: Trust | None = None,
        require_encryption: bool = False,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ) -> None:
        self.engine = engine
        self.require_encryption = require_encryption
        self.max_file_bytes = max_file_bytes
        self.blobs = blobs
        self.audit = audit
        self.trust = trust or Trust()
        self._committer = GroupCommitter(engine, audit)
        # Parsed signatures of uploads in progress (bounded; re-parsed from the DB on a miss).
        self._manifests: collections.OrderedDict[str, CheckedSignature] = collections.OrderedDict()

    @classmethod
    def open(cls, config: RegistryConfig) -> Registry:
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
        )

    def close(self) -> None:
        self.engine.dispose()

    # ----------------------------------------------------------------- authorization and audit

    def _event(
        self,
        actor: Principal,
        action: str,
        resource: str,
        decision: Decision,
        *,
        reason: str | None = None,
        digest: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        return AuditEvent(
            actor=actor.name,
            roles=actor.roles,
            action=action,
            resource=resource,
            outcome="allowed" if decision.allowed else "denied",
            reason=reason if reason is not None else decision.reason,
            digest=digest,
            request_id=actor.request_id,
            source=actor.source,
            details=dict(details or {}),
        )

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
        event = self._event(
            actor, action, resource, Decision(False, reason), digest=digest, details=details
        )
        self._committer.append([event])

    def _require(
        self,
        actor: Principal,
        permission: str,
        action: str,
        resource: str,
        model: str | None = None,
    ) -> Decision:
        decision = roles.decide(actor, permission, model)
        if not decision.allowed:
            self.record_denial(actor, action, resource, decision.reason)
            raise PermissionDeniedError(
                f"{actor.name} may not {action} {resource}: {decision.reason}",
                hint="ask an administrator for a role that grants it",
            )
        return decision

    def _deny_input(
        self, actor: Principal, action: str, resource: str, error: ModelsealError, **kw: Any
    ) -> NoReturn:
        self.record_denial(actor, action, resource, error.message, **kw)
        raise error

    # ----------------------------------------------------------------------------- reads

    def list_models(self, actor: Principal) -> list[ModelInfo]:
        with db.reading(self.engine) as conn:
            rows = conn.execute(select(models).order_by(models.c.name)).mappings().all()
            alias_rows = conn.execute(select(aliases)).mappings().all()
        by_model: dict[int, dict[str, int]] = {}
        for a in alias_rows:
            by_model.setdefault(a["model_id"], {})[a["name"]] = a["version"]
        return [
            ModelInfo(r["name"], r["created_at"], r["created_by"], r["last_version"],
                      by_model.get(r["id"], {}))
            for r in rows
            if roles.may_read(actor, r["name"])
        ]  # fmt: skip

    def list_versions(
        self, actor: Principal, name: str, *, include_deleted: bool = True
    ) -> list[VersionInfo]:
        check_model_name(name)
        self._require(actor, roles.READ, "model.read", f"model/{name}", name)
        with db.reading(self.engine) as conn:
            model_id = self._model_id(conn, name)
            numbers = conn.execute(
                select(versions.c.number)
                .where(versions.c.model_id == model_id)
                .order_by(versions.c.number)
            ).scalars()
            found = [self._version(conn, name, model_id, n) for n in numbers]
        return [v for v in found if include_deleted or not v.deleted]

    def get_version(self, actor: Principal, ref: VersionRef) -> VersionInfo:
        self._require(actor, roles.READ, "model.read", f"model/{ref.model}", ref.model)
        with db.reading(self.engine) as conn:
            return self._resolve(conn, ref)

    def _resolve(self, conn: Connection, ref: VersionRef) -> VersionInfo:
        model_id = self._model_id(conn, ref.model)
        if ref.alias is not None:
            number = conn.execute(
                select(aliases.c.version).where(
                    aliases.c.model_id == model_id, aliases.c.name == ref.alias
                )
            ).scalar()
            if number is None:
                raise NotFoundError(
                    f"model {ref.model!r} has no alias {ref.alias!r}",
                    hint=f"see 'modelseal models list' for {ref.model}'s aliases",
                )
        elif ref.number is not None:
            number = ref.number
        else:
            number = conn.execute(
                select(func.max(versions.c.number)).where(
                    versions.c.model_id == model_id, versions.c.deleted_at.is_(None)
                )
            ).scalar()
            if number is None:
                raise NotFoundError(
                    f"model {ref.model!r} has no live version", hint="push one first"
                )
        return self._version(conn, ref.model, model_id, int(number))

    def _model_id(self, conn: Connection, name: str, *, lock: bool = False) -> int:
        query = select(models.c.id).where(models.c.name == name)
        if lock:
            query = query.with_for_update()
        model_id = conn.execute(query).scalar()
        if model_id is None:
            raise NotFoundError(
                f"unknown model {name!r}", hint="see 'modelseal models list' for the models"
            )
        return int(model_id)

    def _version(self, conn: Connection, name: str, model_id: int, number: int) -> VersionInfo:
        row = (
            conn.execute(
                select(versions).where(versions.c.model_id == model_id, versions.c.number == number)
            )
            .mappings()
            .first()
        )
        if row is None:
            raise NotFoundError(
                f"model {name!r} has no version {number}",
                hint=f"see 'modelseal versions list {name}'",
            )
        files = conn.execute(
            select(
                version_files.c.path,
                version_files.c.size,
                version_files.c.blob,
                version_files.c.stored,
                version_files.c.stored_size,
            )
            .where(version_files.c.version_id == row["id"])
            .order_by(version_files.c.path)
        ).all()
        key = (
            conn.execute(select(version_keys).where(version_keys.c.version_id == row["id"]))
            .mappings()
            .first()
        )
        names = conn.execute(
            select(aliases.c.name)
            .where(aliases.c.model_id == model_id, aliases.c.version == number)
            .order_by(aliases.c.name)
        ).scalars()
        return VersionInfo(
            model=name,
            number=number,
            root_digest=row["root_digest"],
            signer=row["signer"],
            created_at=row["created_at"],
            created_by=row["created_by"],
            metadata=json.loads(row["meta"]),
            lineage=Lineage.from_dict(json.loads(row["lineage"])),
            files=tuple(
                FileEntry(p, int(s), b, st, None if ss is None else int(ss))
                for p, s, b, st, ss in files
            ),
            aliases=tuple(names),
            bundle=row["bundle"],
            public_key=row["public_key"],
            deleted_at=row["deleted_at"],
            deleted_by=row["deleted_by"],
            delete_reason=row["delete_reason"],
            envelope=_envelope_doc(key) if key is not None else None,
        )

    def download(self, actor: Principal, ref: VersionRef) -> VersionInfo:
        """The version to download (the caller streams its files with :meth:`read_file`)."""
        self._require(actor, roles.DOWNLOAD, "model.download", f"model/{ref.model}", ref.model)
        with db.reading(self.engine) as conn:
            info = self._resolve(conn, ref)
        if info.deleted:
            raise ConflictError(
                f"version {info.model}:{info.number} was deleted "
                f"({info.delete_reason or 'no reason given'})",
                hint="pull another version",
            )
        return info

    def read_file(self, info: VersionInfo, path: str) -> Iterator[bytes]:
        for entry in info.files:
            if entry.path == path:  # encrypted: the ciphertext (the client decrypts)
                return self.blobs.read(entry.stored or entry.blob)
        raise NotFoundError(
            f"version {info.model}:{info.number} has no file {path!r}", hint="check the path"
        )

    # ---------------------------------------------------------------------------- uploads

    def begin_upload(
        self,
        actor: Principal,
        name: str,
        *,
        bundle: bytes,
        public_key: bytes | None,
        metadata: Mapping[str, Any] | None = None,
        lineage: Lineage | None = None,
        encrypted: bool = False,
    ) -> UploadInfo:
        """Start a push. With ``encrypted`` the client sends ciphertext (see
        :mod:`modelseal.registry.encryption`) and publishes with the version's wrapped key."""
        check_model_name(name)
        resource = f"model/{name}"
        self._require(actor, roles.PUSH, "version.publish", resource, name)
        if self.require_encryption and not encrypted:
            self._deny_input(
                actor,
                "version.publish",
                resource,
                UsageError(
                    "this registry accepts only encrypted pushes",
                    hint="push with --encrypt-with KEK_URI",
                ),
            )
        meta = dict(metadata or {})
        meta_json = json.dumps(meta, sort_keys=True)
        if len(meta_json) > MAX_METADATA_BYTES:
            raise InputError("metadata is too large", hint="keep it under 64 KiB")
        try:
            checked = check_signature(bundle, public_key, self._trust_now())
        except ModelsealError as exc:
            if exc.exit_code == 1:  # a signature that does not verify: a denied attempt
                self._deny_input(actor, "version.publish", resource, exc)
            raise
        upload_id = secrets.token_urlsafe(24)
        with self._committer.transaction() as conn:
            conn.execute(
                insert(uploads).values(
                    id=upload_id,
                    model_name=name,
                    actor=actor.name,
                    created_at=utc_now(),
                    bundle=bundle.decode("utf-8"),
                    public_key=checked.public_key_pem,
                    signer=checked.signer,
                    meta=meta_json,
                    lineage=json.dumps((lineage or Lineage()).to_dict(), sort_keys=True),
                    encrypted=encrypted,
                )
            )
        self._remember(upload_id, checked)
        manifest = checked.statement.manifest
        return UploadInfo(
            upload_id, name, tuple(_expected(checked)), manifest.root_digest.hex(), encrypted
        )

    def next_version(self, actor: Principal, upload_id: str) -> int:
        """The number the upload would get if published now (an encrypted push wraps its data
        key for it; publishing checks it is still next)."""
        with db.reading(self.engine) as conn:
            row = self._upload(conn, actor, upload_id)
            last = conn.execute(
                select(models.c.last_version).where(models.c.name == row["model_name"])
            ).scalar()
        return int(last or 0) + 1

    def _upload(self, conn: Connection, actor: Principal, upload_id: str) -> Mapping[Any, Any]:
        row = conn.execute(select(uploads).where(uploads.c.id == upload_id)).mappings().first()
        if row is None or row["actor"] != actor.name:
            raise NotFoundError(f"unknown upload {upload_id[:12]}...", hint="start the push again")
        return row

    def _checked(self, upload_id: str, row: Mapping[Any, Any]) -> CheckedSignature:
        checked = self._manifests.get(upload_id)
        if checked is None:  # another server process began it: re-check the stored bundle
            key = row["public_key"].encode() if row["public_key"] else None
            checked = check_signature(row["bundle"].encode(), key, self._trust_now())
            self._remember(upload_id, checked)
        return checked

    def _remember(self, upload_id: str, checked: CheckedSignature) -> None:
        self._manifests[upload_id] = checked
        while len(self._manifests) > MAX_CACHED_UPLOADS:
            self._manifests.popitem(last=False)

    def receive_file(
        self, actor: Principal, upload_id: str, path: str, chunks: Iterable[bytes]
    ) -> FileEntry:
        """Stream one file of an upload into the blob store, hashing it as the signed manifest
        says; a file whose digests differ from the signed ones is rejected."""
        with db.reading(self.engine) as conn:
            row = self._upload(conn, actor, upload_id)
        checked = self._checked(upload_id, row)
        manifest = checked.statement.manifest
        expected = _expected(checked)
        resource = f"model/{row['model_name']}"
        if path not in expected:
            raise InputError(
                f"{path!r} is not a file of the signed model",
                hint="push exactly the files the signature lists",
            )
        serialization = manifest.serialization
        limit = _signed_size(serialization.method, expected[path])
        if limit is not None and limit > self.max_file_bytes:
            self._too_large(actor, upload_id, resource, path)
        if row["encrypted"]:
            return self._receive_ciphertext(actor, row, upload_id, path, chunks, limit)
        # A shards signature fixes the size: stop a longer body early. Else the registry's cap.
        chunks = _bounded(chunks, limit, cap=self.max_file_bytes)
        try:
            blob, items = self._store_hashed(path, serialization, chunks)
        except _OverCapError:
            self._too_large(actor, upload_id, resource, path)
        except _TooLongError as exc:
            error = DigestMismatchError(
                f"{path!r} is longer than its signed size ({exc.limit} bytes)",
                reasons=[Reason("modified", f"{path} is longer than signed", path)],
                hint="push the signed files",
            )
            self._deny_input(actor, "version.publish", resource, error,
                             details={"path": path, "upload": upload_id[:12]})  # fmt: skip
        want = sorted(((i.start, i.end, i.digest) for i in expected[path]), key=_order)
        got = sorted(items, key=_order)
        if path in empty_files(checked.statement):
            got, want = [(None, None, b"")] * (blob.size > 0), []
        if got != want:
            error = DigestMismatchError(
                f"{path!r} does not match its signed digest",
                reasons=[Reason("modified", f"{path} differs from the signed manifest", path)],
                hint="the file changed after signing or in transit; push the signed files",
            )
            self._deny_input(
                actor,
                "version.publish",
                resource,
                error,
                details={"path": path, "upload": upload_id[:12]},
            )
        self._record_upload_file(actor, upload_id, path, blob=blob.digest, size=blob.size)
        return FileEntry(path, blob.size, blob.digest)

    def _too_large(self, actor: Principal, upload_id: str, resource: str, path: str) -> NoReturn:
        cap = self.max_file_bytes
        error = TooLargeError(
            f"{path!r} is larger than this registry accepts ({cap} bytes)",
            hint="ask the registry's admin to raise max_file_bytes (MODELSEAL_MAX_FILE_BYTES)",
        )
        self._deny_input(actor, "version.publish", resource, error,
                         details={"path": path, "upload": upload_id[:12]})  # fmt: skip

    def _record_upload_file(
        self, actor: Principal, upload_id: str, path: str, **values: Any
    ) -> None:
        """Record (or replace) what was received for ``path`` in the open upload."""
        with self._committer.transaction() as conn:
            self._upload(conn, actor, upload_id)
            conn.execute(
                delete(upload_files).where(
                    upload_files.c.upload_id == upload_id, upload_files.c.path == path
                )
            )
            conn.execute(insert(upload_files).values(upload_id=upload_id, path=path, **values))

    def _receive_ciphertext(
        self,
        actor: Principal,
        row: Mapping[Any, Any],
        upload_id: str,
        path: str,
        chunks: Iterable[bytes],
        limit: int | None,
    ) -> FileEntry:
        """Store one file's ciphertext. Without the key the registry checks what it can: the
        ciphertext's form and length (against the signed size for shards signatures); the
        pushing client checked the plaintext digests while encrypting (a mismatch it finds
        reaches here as the stream's error and is audited like one found here)."""
        from modelseal.registry import encryption as enc

        resource = f"model/{row['model_name']}"
        details = {"path": path, "upload": upload_id[:12], "encrypted": True}
        chunks = _bounded(
            chunks,
            None if limit is None else enc.ciphertext_size(limit),
            cap=enc.ciphertext_size(self.max_file_bytes),
        )
        try:
            blob = self.blobs.put(chunks)
        except _OverCapError:
            self._too_large(actor, upload_id, resource, path)
        except _TooLongError:
            error = DigestMismatchError(
                f"{path!r} is longer than its signed size ({limit} bytes)",
                reasons=[Reason("modified", f"{path} is longer than signed", path)],
                hint="push the signed files",
            )
            self._deny_input(actor, "version.publish", resource, error, details=details)
        except DigestMismatchError as exc:  # found by the encrypting client (embedded store)
            self._deny_input(actor, "version.publish", resource, exc, details=details)
        plain = enc.plaintext_size(blob.size)
        if plain is None or (limit is not None and plain != limit):
            error = DigestMismatchError(
                f"{path!r}: the ciphertext's length does not fit "
                + ("a streaming ciphertext" if plain is None else "the signed size"),
                reasons=[Reason("modified", f"{path} has the wrong ciphertext length", path)],
                hint="push the signed files with the same modelseal version",
            )
            self._deny_input(actor, "version.publish", resource, error, details=details)
        assert plain is not None
        self._record_upload_file(
            actor, upload_id, path, blob=blob.digest, size=plain,
            stored=blob.digest, stored_size=blob.size,
        )  # fmt: skip
        return FileEntry(path, plain, blob.digest, blob.digest, blob.size)

    def _store_hashed(
        self, path: str, serialization: Serialization, chunks: Iterable[bytes]
    ) -> tuple[StoredBlob, list[tuple[int | None, int | None, bytes]]]:
        """Store the stream, hashing it as ``serialization`` says; return the manifest items."""
        if serialization.method == "files" and serialization.hash_type == "sha256":
            # The blob's own SHA-256 is the manifest digest: hash once.
            blob = self.blobs.put(chunks)
            return blob, [(None, None, bytes.fromhex(blob.digest))]
        hasher = StreamingItems(path, serialization)
        blob = self.blobs.put(chunks, observe=hasher.update)
        return blob, [(i.start, i.end, i.digest) for i in hasher.items()]

    def publish(
        self, actor: Principal, upload_id: str, *, sealed: SealedVersion | None = None
    ) -> VersionInfo:
        """Make the upload a new version, atomically, with its audit record(s). An encrypted
        upload needs ``sealed``: the wrapped data key, made for the number it will get (else
        :class:`VersionTakenError`: wrap again for :meth:`next_version` and retry)."""
        for attempt in range(5):
            try:
                return self._publish(actor, upload_id, sealed)
            except DigestMismatchError as exc:  # a plaintext digest the signature contradicts
                self._deny_input(actor, "version.publish", f"upload/{upload_id[:12]}", exc)
            except SqlIntegrityError:  # two first pushes of a new model raced: retry
                if attempt == 4:
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def _publish(
        self, actor: Principal, upload_id: str, sealed: SealedVersion | None
    ) -> VersionInfo:
        with self._committer.transaction() as conn:
            row = self._upload(conn, actor, upload_id)
            name = row["model_name"]
            if bool(row["encrypted"]) != (sealed is not None):
                raise InputError(
                    "an encrypted upload is published with its wrapped data key, a plaintext "
                    "one without",
                    hint="push again",
                )
            checked = self._checked(upload_id, row)
            expected = _expected(checked)
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
                if not self.blobs.exists(blob):
                    raise ConflictError(
                        "an uploaded blob disappeared before publishing",
                        hint="push again (the garbage collector may have run)",
                    )
            now = utc_now()
            lineage = Lineage.from_dict(json.loads(row["lineage"]))
            model_row = conn.execute(
                select(models.c.id, models.c.last_version)
                .where(models.c.name == name)
                .with_for_update()
            ).first()
            if model_row is None:
                model_id = conn.execute(
                    insert(models)
                    .values(name=name, created_at=now, created_by=actor.name, last_version=0)
                    .returning(models.c.id)
                ).scalar_one()
                last = 0
                self._committer.record(
                    conn,
                    self._event(
                        actor,
                        "model.create",
                        f"model/{name}",
                        Decision(True, _why(actor, roles.PUSH, name)),
                    ),
                )
            else:
                model_id, last = int(model_row.id), int(model_row.last_version)
            number = last + 1
            manifest: Manifest = checked.statement.manifest
            root = manifest.root_digest.hex()
            key_row: dict[str, Any] | None = None
            if sealed is not None:
                received, key_row = _seal(name, number, root, checked, received, sealed)
            if lineage.parent_version is not None and not 1 <= lineage.parent_version <= last:
                raise NotFoundError(
                    f"parent version {lineage.parent_version} of {name!r} does not exist",
                    hint="give an existing version as the parent",
                )
            conn.execute(update(models).where(models.c.id == model_id).values(last_version=number))
            version_id = conn.execute(
                insert(versions)
                .values(
                    model_id=model_id,
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
                )
                .returning(versions.c.id)
            ).scalar_one()
            conn.execute(
                insert(version_files),
                [
                    {"version_id": version_id, "path": p, "blob": b, "size": s, "stored": st,
                     "stored_size": ss}
                    for p, (b, s, st, ss) in sorted(received.items())
                ],
            )  # fmt: skip
            details: dict[str, Any] = {"signer": row["signer"], "files": len(received)}
            if key_row is not None:
                conn.execute(
                    insert(version_keys).values(version_id=version_id, created_at=now, **key_row)
                )
                details["encrypted"] = {"provider": key_row["provider"],
                                        "kek_id": key_row["kek_id"]}  # fmt: skip
            conn.execute(delete(upload_files).where(upload_files.c.upload_id == upload_id))
            conn.execute(delete(uploads).where(uploads.c.id == upload_id))
            self._committer.record(
                conn,
                self._event(
                    actor,
                    "version.publish",
                    f"model/{name}/versions/{number}",
                    Decision(True, _why(actor, roles.PUSH, name)),
                    digest=f"sha256:{root}",
                    details=details,
                ),
            )
            info = self._version(conn, name, model_id, number)
        self._manifests.pop(upload_id, None)
        return info

    def abort_upload(self, actor: Principal, upload_id: str) -> None:
        with self._committer.transaction() as conn:
            self._upload(conn, actor, upload_id)
            conn.execute(delete(upload_files).where(upload_files.c.upload_id == upload_id))
            conn.execute(delete(uploads).where(uploads.c.id == upload_id))
        self._manifests.pop(upload_id, None)

    # ---------------------------------------------------------------------- aliases, delete

    def set_alias(self, actor: Principal, name: str, alias: str, number: int) -> VersionInfo:
        check_model_name(name)
        check_alias(alias)
        resource = f"model/{name}/aliases/{alias}"
        decision = self._require(actor, roles.alias_permission(alias), "alias.move", resource, name)
        with self._committer.transaction() as conn:
            model_id = self._model_id(conn, name, lock=True)
            target = self._version(conn, name, model_id, number)
            if target.deleted:
                raise ConflictError(
                    f"version {name}:{number} was deleted", hint="point the alias at a live version"
                )
            previous = conn.execute(
                select(aliases.c.version).where(
                    aliases.c.model_id == model_id, aliases.c.name == alias
                )
            ).scalar()
            values = {"version": number, "updated_at": utc_now(), "updated_by": actor.name}
            if previous is None:
                conn.execute(insert(aliases).values(model_id=model_id, name=alias, **values))
            else:
                conn.execute(
                    update(aliases)
                    .where(aliases.c.model_id == model_id, aliases.c.name == alias)
                    .values(**values)
                )
            self._committer.record(
                conn,
                self._event(
                    actor,
                    "alias.move",
                    resource,
                    decision,
                    digest=f"sha256:{target.root_digest}",
                    details={"alias": alias, "from": previous, "to": number},
                ),
            )
            return self._version(conn, name, model_id, number)

    def delete_version(
        self, actor: Principal, name: str, number: int, *, reason: str
    ) -> VersionInfo:
        """Tombstone a version: it stays in the record, is no longer downloadable, and loses
        its aliases (recorded in the audit entry)."""
        check_model_name(name)
        resource = f"model/{name}/versions/{number}"
        decision = self._require(actor, roles.DELETE, "version.delete", resource, name)
        with self._committer.transaction() as conn:
            model_id = self._model_id(conn, name, lock=True)
            info = self._version(conn, name, model_id, number)
            if info.deleted:
                raise ConflictError(
                    f"version {name}:{number} is already deleted", hint="nothing to do"
                )
            conn.execute(
                update(versions)
                .where(versions.c.model_id == model_id, versions.c.number == number)
                .values(deleted_at=utc_now(), deleted_by=actor.name, delete_reason=reason)
            )
            conn.execute(
                delete(aliases).where(aliases.c.model_id == model_id, aliases.c.version == number)
            )
            self._committer.record(
                conn,
                self._event(
                    actor,
                    "version.delete",
                    resource,
                    decision,
                    digest=f"sha256:{info.root_digest}",
                    details={"reason": reason, "aliases_removed": list(info.aliases)},
                ),
            )
            return self._version(conn, name, model_id, number)

    # -------------------------------------------------------------------------------- GC

    def gc(self, actor: Principal, *, grace_seconds: float = 3600.0) -> GcReport:
        """Delete blobs no live version or recent upload references, expired uploads, and
        abandoned temporary files, all older than ``grace_seconds``."""
        decision = self._require(actor, roles.GC, "registry.gc", "registry")
        cutoff = time.time() - grace_seconds
        cutoff_text = format_time(dt.datetime.fromtimestamp(cutoff, dt.UTC))
        with self._committer.transaction() as conn:
            stale = (
                conn.execute(select(uploads.c.id).where(uploads.c.created_at < cutoff_text))
                .scalars()
                .all()
            )
            for upload_id in stale:
                conn.execute(delete(upload_files).where(upload_files.c.upload_id == upload_id))
                conn.execute(delete(uploads).where(uploads.c.id == upload_id))
        with db.reading(self.engine) as conn:
            # An encrypted file's ``blob`` is its plaintext digest, not a stored object: only
            # its ciphertext (``stored``) keeps a blob alive.
            live = set(
                conn.execute(
                    select(func.coalesce(version_files.c.stored, version_files.c.blob))
                    .join(versions, versions.c.id == version_files.c.version_id)
                    .where(versions.c.deleted_at.is_(None))
                ).scalars()
            ) | set(conn.execute(select(upload_files.c.blob)).scalars())
        deleted = freed = temps = 0
        for digest, mtime in list(self.blobs.digests()):
            if digest in live or mtime > cutoff:
                continue
            size = self.blobs.size(digest)
            self.blobs.delete(digest)
            deleted, freed = deleted + 1, freed + size
        for path, mtime in list(self.blobs.temporaries()):
            if mtime <= cutoff:
                self.blobs.delete_path(path)
                temps += 1
        report = GcReport(deleted, freed, len(stale), temps)
        with self._committer.transaction() as conn:
            self._committer.record(
                conn,
                self._event(actor, "registry.gc", "registry", decision, details=report.to_dict()),
            )
        return report

    # ---------------------------------------------------------------------- access control

    def authenticate(self, value: str, *, request_id: str = "", source: str = "") -> Principal:
        """The principal a bearer token stands for; every failure is an audited denial."""
        anonymous = Principal("anonymous", request_id=request_id, source=source)
        parsed = tokens.parse(value)
        if parsed is None:
            self._auth_fail(anonymous, "token", "malformed token")
        token_id, secret = parsed
        with db.reading(self.engine) as conn:
            row = (
                conn.execute(
                    select(tokens_table, principals.c.name, principals.c.disabled_at)
                    .join(principals, principals.c.id == tokens_table.c.principal_id)
                    .where(tokens_table.c.id == token_id)
                )
                .mappings()
                .first()
            )
            ok = tokens.matches(secret, row["secret_hash"] if row else None)
            if row is None or not ok:
                self._auth_fail(anonymous, f"token/{token_id}", "unknown token")
            assert row is not None
            who = Principal(row["name"], request_id=request_id, source=source)
            if row["revoked_at"] is not None:
                self._auth_fail(who, f"token/{token_id}", "token revoked")
            if row["expires_at"] is not None and row["expires_at"] <= utc_now():
                self._auth_fail(who, f"token/{token_id}", "token expired")
            if row["disabled_at"] is not None:
                self._auth_fail(who, f"token/{token_id}", "user disabled")
            found = conn.execute(
                select(grants.c.role, grants.c.scope).where(
                    grants.c.principal_id == row["principal_id"]
                )
            ).all()
        return Principal(
            row["name"],
            tuple(Grant(r, s) for r, s in sorted(found)),
            request_id=request_id,
            source=source,
        )

    def _auth_fail(self, who: Principal, resource: str, reason: str) -> NoReturn:
        self.record_denial(who, "authenticate", resource, reason)
        raise AuthenticationError(
            f"authentication failed: {reason}", hint="use a valid, unexpired API token"
        )

    def _principal_id(self, conn: Connection, user: str, *, lock: bool = False) -> int:
        query = select(principals.c.id).where(principals.c.name == user)
        if lock:
            query = query.with_for_update()
        found = conn.execute(query).scalar()
        if found is None:
            raise NotFoundError(f"unknown user {user!r}", hint="see 'modelseal user list'")
        return int(found)

    def create_user(self, actor: Principal, user: str) -> None:
        check_model_name(user)
        decision = self._require(actor, roles.ACCESS_ADMIN, "user.create", f"user/{user}")
        try:
            with self._committer.transaction() as conn:
                if conn.execute(select(principals.c.id).where(principals.c.name == user)).first():
                    raise ConflictError(f"user {user!r} already exists", hint="choose another name")
                conn.execute(
                    insert(principals).values(
                        name=user, created_at=utc_now(), created_by=actor.name
                    )
                )
                self._committer.record(
                    conn, self._event(actor, "user.create", f"user/{user}", decision)
                )
        except SqlIntegrityError:
            raise ConflictError(
                f"user {user!r} already exists", hint="choose another name"
            ) from None

    def disable_user(self, actor: Principal, user: str) -> None:
        decision = self._require(actor, roles.ACCESS_ADMIN, "user.disable", f"user/{user}")
        with self._committer.transaction() as conn:
            pid = self._principal_id(conn, user, lock=True)
            conn.execute(
                update(principals).where(principals.c.id == pid).values(disabled_at=utc_now())
            )
            self._committer.record(
                conn, self._event(actor, "user.disable", f"user/{user}", decision)
            )

    def list_users(self, actor: Principal) -> list[dict[str, Any]]:
        self._require(actor, roles.ACCESS_ADMIN, "user.list", "users")
        with db.reading(self.engine) as conn:
            users = conn.execute(select(principals).order_by(principals.c.name)).mappings().all()
            all_grants = conn.execute(select(grants)).mappings().all()
            all_tokens = conn.execute(select(tokens_table)).mappings().all()
        out = []
        for u in users:
            out.append(
                {
                    "name": u["name"],
                    "created_at": u["created_at"],
                    "disabled": u["disabled_at"] is not None,
                    "roles": sorted(
                        str(Grant(g["role"], g["scope"]))
                        for g in all_grants
                        if g["principal_id"] == u["id"]
                    ),
                    "tokens": [
                        {
                            "id": t["id"],
                            "description": t["description"],
                            "created_at": t["created_at"],
                            "expires_at": t["expires_at"],
                            "revoked": t["revoked_at"] is not None,
                        }
                        for t in all_tokens
                        if t["principal_id"] == u["id"]
                    ],
                }
            )
        return out

    def grant_role(self, actor: Principal, user: str, role: str, scope: str = "*") -> None:
        roles.check_role(role)
        _check_scope(scope)
        resource = f"user/{user}/roles/{role}"
        decision = self._require(actor, roles.ACCESS_ADMIN, "role.grant", resource)
        with self._committer.transaction() as conn:
            pid = self._principal_id(conn, user, lock=True)
            exists = conn.execute(
                select(grants.c.role).where(
                    and_(
                        grants.c.principal_id == pid, grants.c.role == role, grants.c.scope == scope
                    )
                )
            ).first()
            if exists:
                raise ConflictError(
                    f"{user} already has {Grant(role, scope)}", hint="nothing to do"
                )
            conn.execute(
                insert(grants).values(
                    principal_id=pid,
                    role=role,
                    scope=scope,
                    granted_at=utc_now(),
                    granted_by=actor.name,
                )
            )
            self._committer.record(
                conn, self._event(actor, "role.grant", resource, decision, details={"scope": scope})
            )

    def revoke_role(self, actor: Principal, user: str, role: str, scope: str = "*") -> None:
        roles.check_role(role)
        resource = f"user/{user}/roles/{role}"
        decision = self._require(actor, roles.ACCESS_ADMIN, "role.revoke", resource)
        with self._committer.transaction() as conn:
            pid = self._principal_id(conn, user, lock=True)
            gone = conn.execute(
                delete(grants).where(
                    grants.c.principal_id == pid, grants.c.role == role, grants.c.scope == scope
                )
            ).rowcount
            if not gone:
                raise NotFoundError(
                    f"{user} does not have {Grant(role, scope)}", hint="see 'modelseal user list'"
                )
            self._committer.record(
                conn,
                self._event(actor, "role.revoke", resource, decision, details={"scope": scope}),
            )

    def create_token(
        self,
        actor: Principal,
        user: str,
        *,
        expires_in: dt.timedelta | None = None,
        description: str = "",
    ) -> tokens.NewToken:
        """A new token for ``user``; its value is returned once and never stored."""
        if expires_in is not None and expires_in.total_seconds() <= 0:
            raise InputError("a token's lifetime must be positive", hint="e.g. --expires-in 30d")
        decision = self._require(actor, roles.ACCESS_ADMIN, "token.create", f"user/{user}/tokens")
        new = tokens.generate()
        expires = format_time(dt.datetime.now(dt.UTC) + expires_in) if expires_in else None
        with self._committer.transaction() as conn:
            pid = self._principal_id(conn, user, lock=True)
            conn.execute(
                insert(tokens_table).values(
                    id=new.id,
                    principal_id=pid,
                    secret_hash=new.secret_hash,
                    description=description,
                    created_at=utc_now(),
                    expires_at=expires,
                )
            )
            self._committer.record(
                conn,
                self._event(
                    actor, "token.create", f"token/{new.id}", decision,
                    details={"user": user, "expires_at": expires},
                ),
            )  # fmt: skip
        return new

    def revoke_token(self, actor: Principal, token_id: str) -> None:
        """Revoke a token: administrators any, every user their own (a leaked token can be
        killed by its owner at once)."""
        with db.reading(self.engine) as conn:
            owner = conn.execute(
                select(principals.c.name)
                .join(tokens_table, tokens_table.c.principal_id == principals.c.id)
                .where(tokens_table.c.id == token_id)
            ).scalar()
        if owner is not None and owner == actor.name and not actor.superuser:
            decision = Decision(True, "own token")
        else:
            decision = self._require(actor, roles.ACCESS_ADMIN, "token.revoke", f"token/{token_id}")
        with self._committer.transaction() as conn:
            found = conn.execute(
                update(tokens_table)
                .where(tokens_table.c.id == token_id, tokens_table.c.revoked_at.is_(None))
                .values(revoked_at=utc_now())
            ).rowcount
            if not found:
                raise NotFoundError(
                    f"no active token {token_id!r}", hint="see 'modelseal token list'"
                )
            self._committer.record(
                conn, self._event(actor, "token.revoke", f"token/{token_id}", decision)
            )

    # ------------------------------------------------------------------------------ trust

    def _trust_now(self) -> Trust:
        """The configured trust plus the signer keys added through the registry."""
        with db.reading(self.engine) as conn:
            pems = tuple(r.encode() for r in conn.execute(select(trusted_keys.c.pem)).scalars())
        return dataclasses.replace(self.trust, pinned=self.trust.pinned + pems)

    def add_trusted_key(self, actor: Principal, pem: bytes, *, name: str) -> dict[str, str]:
        """Trust a signer key for pushes (once any key is trusted, only trusted keys may sign)."""
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        from modelseal.signing.keys import check_supported, key_hint, public_pem

        try:
            key = check_supported(load_pem_public_key(pem))
        except (ValueError, UnsupportedAlgorithm):
            raise InputError(
                "not a PEM public key", hint="give the signer's public key (.pub)"
            ) from None
        _check_label(name)
        hint = key_hint(key)
        key_id = hint[:16]
        resource = f"trust/keys/{key_id}"
        decision = self._require(actor, roles.TRUST, "trust.add", resource)
        with self._committer.transaction() as conn:
            if conn.execute(select(trusted_keys.c.id).where(trusted_keys.c.id == key_id)).first():
                raise ConflictError(f"key {key_id} is already trusted", hint="nothing to do")
            conn.execute(
                insert(trusted_keys).values(
                    id=key_id, name=name, pem=public_pem(key).decode("ascii"),
                    added_at=utc_now(), added_by=actor.name,
                )
            )  # fmt: skip
            self._committer.record(
                conn,
                self._event(actor, "trust.add", resource, decision, digest=f"sha256:{hint}",
                            details={"name": name}),
            )  # fmt: skip
        return {"id": key_id, "name": name}

    def remove_trusted_key(self, actor: Principal, key_id: str) -> None:
        resource = f"trust/keys/{key_id}"
        decision = self._require(actor, roles.TRUST, "trust.remove", resource)
        with self._committer.transaction() as conn:
            gone = conn.execute(delete(trusted_keys).where(trusted_keys.c.id == key_id)).rowcount
            if not gone:
                raise NotFoundError(
                    f"no trusted key {key_id!r}", hint="see 'modelseal registry trust list'"
                )
            self._committer.record(conn, self._event(actor, "trust.remove", resource, decision))

    def list_trusted_keys(self, actor: Principal) -> list[dict[str, str]]:
        self._require(actor, roles.TRUST, "trust.list", "trust/keys")
        with db.reading(self.engine) as conn:
            rows = conn.execute(select(trusted_keys).order_by(trusted_keys.c.id)).mappings()
            return [
                {"id": r["id"], "name": r["name"], "added_at": r["added_at"],
                 "added_by": r["added_by"]}
                for r in rows
            ]  # fmt: skip

    # ------------------------------------------------------------------ wrapped data keys

    def version_keys(self, actor: Principal, *, provider: str | None = None) -> list[VersionKey]:
        """The wrapped data keys of encrypted versions (for a key rotation; security
        engineers). Wrapped keys are useless without the KEK, which the registry never holds."""
        self._require(actor, roles.TRUST, "keys.list", "keys")
        query = (
            select(models.c.name, versions.c.number, versions.c.root_digest, version_keys)
            .join(versions, versions.c.id == version_keys.c.version_id)
            .join(models, models.c.id == versions.c.model_id)
            .order_by(models.c.name, versions.c.number)
        )
        if provider is not None:
            query = query.where(version_keys.c.provider == provider)
        with db.reading(self.engine) as conn:
            rows = conn.execute(query).mappings().all()
        return [
            VersionKey(r["name"], r["number"], r["root_digest"], _envelope_doc(r)) for r in rows
        ]

    def replace_version_keys(
        self,
        actor: Principal,
        changes: list[KeyChange],
        *,
        new_kek_id: str,
        retiring: list[str],
    ) -> int:
        """Replace wrapped data keys (a rotation: same data keys, new KEK), all in one
        transaction with one audit record. Each change names the wrapped key it replaces; if
        any is no longer current nothing changes (:class:`ConflictError`). ``retiring`` lists
        the KEKs the rotating client destroys once this commits (recorded, not done here)."""
        from modelseal.crypto import envelope as env

        decision = self._require(actor, roles.TRUST, "keys.rotate", "keys")
        if not changes or len(changes) > MAX_KEY_CHANGES:
            raise InputError("nothing to rotate", hint="the registry holds no such wrapped keys")
        now = utc_now()
        providers: set[str] = set()
        old_keks: set[str] = set()
        with self._committer.transaction() as conn:
            for change in changes:
                where = f"{change.model}:{change.number}"
                old = env.from_dict(change.old, where=f"the old envelope of {where}")
                new = env.from_dict(change.new, where=f"the new envelope of {where}")
                row = (
                    conn.execute(
                        select(version_keys)
                        .join(versions, versions.c.id == version_keys.c.version_id)
                        .join(models, models.c.id == versions.c.model_id)
                        .where(models.c.name == change.model, versions.c.number == change.number)
                        .with_for_update()
                    )
                    .mappings()
                    .first()
                )
                if row is None:
                    raise NotFoundError(f"{where} has no wrapped data key", hint="list them again")
                if _key_row(old) != {k: row[k] for k in ("provider", "kek_id", "wrapped",
                                                          "ad_sha256")}:  # fmt: skip
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
                    .values(rotated_at=now, **_key_row(new))
                )
                providers.add(new.wrapped.provider)
                old_keks.add(f"{old.wrapped.provider}:{old.wrapped.kek_id}")
            self._committer.record(
                conn,
                self._event(
                    actor, "keys.rotate", "keys", decision,
                    details={
                        "versions": [f"{c.model}:{c.number}" for c in changes][:1000],
                        "count": len(changes),
                        "from": sorted(old_keks),
                        "to": [f"{p}:{new_kek_id}" for p in sorted(providers)],
                        "retiring": sorted(retiring),
                    },
                ),
            )  # fmt: skip
        return len(changes)

    # ------------------------------------------------------------------------------ audit

    def audit_checkpoint(self, actor: Principal) -> str:
        self._require(actor, roles.AUDIT_READ, "audit.read", "audit")
        with db.reading(self.engine) as conn:
            return self.audit.checkpoint(conn)

    def audit_records(
        self, actor: Principal, *, start: int = 0, end: int | None = None, export: bool = False
    ) -> Iterator[AuditRecord]:
        """Check the permission now; the records stream from one read snapshot."""
        if export:
            self._require(actor, roles.AUDIT_EXPORT, "audit.export", "audit")
        else:
            self._require(actor, roles.AUDIT_READ, "audit.read", "audit")
        return self._records(start, end)

    def _records(self, start: int, end: int | None) -> Iterator[AuditRecord]:
        with db.reading(self.engine) as conn:
            yield from self.audit.records(conn, start, end)

    def audit_inclusion(self, actor: Principal, index: int, size: int | None) -> dict[str, Any]:
        self._require(actor, roles.AUDIT_READ, "audit.read", "audit")
        with db.reading(self.engine) as conn:
            size = size if size is not None else self.audit.size(conn)
            proof = self.audit.inclusion_proof(conn, index, size)
            record = self.audit.record(conn, index)
        return {"index": index, "size": size, "record": record.to_dict(),
                "proof": [p.hex() for p in proof]}  # fmt: skip

    def audit_consistency(self, actor: Principal, old: int, new: int | None) -> dict[str, Any]:
        self._require(actor, roles.AUDIT_READ, "audit.read", "audit")
        with db.reading(self.engine) as conn:
            new = new if new is not None else self.audit.size(conn)
            proof = self.audit.consistency_proof(conn, old, new)
        return {"old_size": old, "new_size": new, "proof": [p.hex() for p in proof]}


def _envelope_doc(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "modelseal": "envelope/v1",
        "associatedDataSha256": row["ad_sha256"],
        "dataKey": {"provider": row["provider"], "kekId": row["kek_id"], "wrapped": row["wrapped"]},
    }


def _key_row(envelope: Any) -> dict[str, Any]:
    import base64

    return {
        "provider": envelope.wrapped.provider,
        "kek_id": envelope.wrapped.kek_id,
        "wrapped": base64.b64encode(envelope.wrapped.ciphertext).decode("ascii"),
        "ad_sha256": envelope.associated_data_sha256,
    }


_EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _seal(
    name: str,
    number: int,
    root: str,
    checked: CheckedSignature,
    received: dict[str, tuple[str, int, str | None, int | None]],
    sealed: SealedVersion,
) -> tuple[dict[str, tuple[str, int, str | None, int | None]], dict[str, Any]]:
    """Check an encrypted upload's wrapped key and plaintext digests; the file rows to store
    (plaintext digest as the file's identity, the ciphertext blob as ``stored``) and the key row.
    The registry cannot unwrap the key: it checks the key claims this exact version."""
    import re

    from modelseal.crypto import envelope as env
    from modelseal.registry import encryption as enc

    if sealed.number != number:
        raise VersionTakenError(
            f"version {sealed.number} of {name!r} is taken; the next is {number}",
            hint="wrap the data key for the next number and publish again",
            next_version=number,
        )
    envelope = env.from_dict(sealed.envelope, where="the version's envelope")
    want = env.ad_digest(enc.version_associated_data(name, number, root))
    if envelope.associated_data_sha256 != want:
        raise InputError(
            f"the wrapped data key was not made for {name}:{number} (sha256:{root[:16]}...)",
            hint="wrap the data key for this model, version and manifest digest",
        )
    if set(sealed.plaintext_sha256) != set(received):
        raise InputError(
            "the plaintext digests do not list exactly the uploaded files",
            hint="push again",
        )
    signed = enc.SignedFiles.from_statement(checked.statement)
    rows: dict[str, tuple[str, int, str | None, int | None]] = {}
    for path, (stored, size, _, stored_size) in received.items():
        claimed = sealed.plaintext_sha256[path].lower()
        if not re.fullmatch(r"[0-9a-f]{64}", claimed):
            raise InputError(f"invalid plaintext digest for {path!r}", hint="64 hex digits")
        known = signed.digest_of(path) or (_EMPTY_SHA256 if size == 0 else None)
        if known is not None and claimed != known:
            raise enc.mismatch(path)
        rows[path] = (claimed, size, stored, stored_size)
    return rows, _key_row(envelope)


def _why(actor: Principal, permission: str, model: str | None) -> str:
    return roles.decide(actor, permission, model).reason


class _TooLongError(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


def _signed_size(method: str, items: list[Any]) -> int | None:
    """The file size a signature fixes (shards record offsets; files mode does not)."""
    if method != "shards":
        return None
    return max((int(i.end) for i in items), default=0)


class _OverCapError(Exception):
    """A file went past the registry's ``max_file_bytes``."""


def _bounded(chunks: Iterable[bytes], limit: int | None, *, cap: int) -> Iterator[bytes]:
    """``chunks``, stopped as soon as they go past the signed size ``limit`` (if any) or the
    registry's ``cap``: nothing past either is ever written."""
    seen = 0
    for chunk in chunks:
        seen += len(chunk)
        if limit is not None and seen > limit:
            raise _TooLongError(limit)
        if seen > cap:
            raise _OverCapError
        yield chunk


def _order(item: tuple[int | None, int | None, bytes]) -> tuple[int, int]:
    return (item[0] or 0, item[1] or 0)


def _expected(checked: CheckedSignature) -> dict[str, list[Any]]:
    """Each file the signature covers, with its manifest items (none for signed empty files)."""
    out: dict[str, list[Any]] = {}
    for item in checked.statement.manifest.items:
        out.setdefault(item.path, []).append(item)
    for path in empty_files(checked.statement):
        out.setdefault(path, [])
    return out


def _check_label(name: str) -> None:
    if not name or len(name) > 200 or any(ord(c) < 0x20 for c in name):
        raise InputError(f"invalid name {name!r}", hint="a short printable label")


def _check_scope(scope: str) -> None:
    if not scope or len(scope) > 200 or any(c.isspace() for c in scope):
        raise InputError(f"invalid scope {scope!r}", hint="a glob on model names, e.g. 'fraud-*'")
