"""Garbage collection: blobs no live version or recent upload references, expired uploads and
abandoned temporary files go, once they are older than a grace period."""

from __future__ import annotations

import datetime as dt
import time
from typing import ClassVar

from pydantic import Field
from sqlalchemy import delete, func, select

from modelseal.access import roles
from modelseal.audit.record import format_time
from modelseal.operation import Operation, Route
from modelseal.registry.core import RegistrySession
from modelseal.registry.views import GcReport
from modelseal.store.schema import upload_files, uploads, version_files, versions

# The longest grace period accepted (ten years): keeps the cutoff a valid date.
MAX_GRACE_SECONDS = 10 * 366 * 24 * 3600.0


class CollectGarbage(Operation[GcReport]):
    """Delete blobs no live version or recent upload references, expired uploads, and
    abandoned temporary files, all older than ``grace_seconds``."""

    route: ClassVar[Route] = Route("POST", "/v1/gc", tag="maintenance", errors=(403,))
    grace_seconds: float = Field(3600.0, ge=0, le=MAX_GRACE_SECONDS, allow_inf_nan=False)

    def run(self, session: RegistrySession) -> GcReport:
        """What was deleted (audited)."""
        decision = session.require(roles.GC, "registry.gc", "registry")
        cutoff = time.time() - self.grace_seconds
        cutoff_text = format_time(dt.datetime.fromtimestamp(cutoff, dt.UTC))
        with session.transaction() as conn:
            stale = (
                conn.execute(select(uploads.c.id).where(uploads.c.created_at < cutoff_text))
                .scalars()
                .all()
            )
            for upload_id in stale:
                conn.execute(delete(upload_files).where(upload_files.c.upload_id == upload_id))
                conn.execute(delete(uploads).where(uploads.c.id == upload_id))
        with session.reading() as conn:
            # An encrypted file's ``blob`` is its plaintext digest, not a stored object: only
            # its ciphertext (``stored``) keeps a blob alive.
            live = set(
                conn.execute(
                    select(func.coalesce(version_files.c.stored, version_files.c.blob))
                    .join(versions, versions.c.id == version_files.c.version_id)
                    .where(versions.c.deleted_at.is_(None))
                ).scalars()
            ) | set(conn.execute(select(upload_files.c.blob)).scalars())
        blobs = session.blobs
        deleted = freed = temps = 0
        for digest, mtime in list(blobs.digests()):
            if digest in live or mtime > cutoff:
                continue
            size = blobs.size(digest)
            blobs.delete(digest)
            deleted, freed = deleted + 1, freed + size
        for path, mtime in list(blobs.temporaries()):
            if mtime <= cutoff:
                blobs.delete_path(path)
                temps += 1
        report = GcReport(blobs_deleted=deleted, bytes_freed=freed, uploads_expired=len(stale),
                          temporaries_deleted=temps)  # fmt: skip
        with session.transaction() as conn:
            session.record(conn, "registry.gc", "registry", decision, details=report.model_dump())
        return report
