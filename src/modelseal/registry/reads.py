"""Reading models and versions from the database (shared by the operations)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, func, select

from modelseal.errors import NotFoundError
from modelseal.registry.models import FileEntry, Lineage, VersionInfo, VersionRef
from modelseal.store.schema import aliases, models, version_files, version_keys, versions


def model_id(conn: Connection, name: str, *, lock: bool = False) -> int:
    """The row id of model ``name`` (locked for update with ``lock``)."""
    query = select(models.c.id).where(models.c.name == name)
    if lock:
        query = query.with_for_update()
    found = conn.execute(query).scalar()
    if found is None:
        raise NotFoundError(
            f"unknown model {name!r}", hint="list the models to see what exists", topic="models"
        )
    return int(found)


def resolve(conn: Connection, ref: VersionRef) -> VersionInfo:
    """The version ``ref`` names: by number, by alias, or the latest live one."""
    mid = model_id(conn, ref.model)
    if ref.alias is not None:
        number = conn.execute(
            select(aliases.c.version).where(aliases.c.model_id == mid, aliases.c.name == ref.alias)
        ).scalar()
        if number is None:
            raise NotFoundError(
                f"model {ref.model!r} has no alias {ref.alias!r}",
                hint=f"list the models to see {ref.model}'s aliases",
                topic="models",
            )
    elif ref.number is not None:
        number = ref.number
    else:
        number = conn.execute(
            select(func.max(versions.c.number)).where(
                versions.c.model_id == mid,
                versions.c.deleted_at.is_(None),
                versions.c.quarantined_at.is_(None),
            )
        ).scalar()
        if number is None:
            raise NotFoundError(f"model {ref.model!r} has no live version", hint="push one first")
    return version(conn, ref.model, mid, int(number))


def version(conn: Connection, name: str, mid: int, number: int) -> VersionInfo:
    """Version ``number`` of model ``name`` (row id ``mid``), with its files and aliases."""
    row = (
        conn.execute(select(versions).where(versions.c.model_id == mid,
                                            versions.c.number == number))
        .mappings()
        .first()
    )  # fmt: skip
    if row is None:
        raise NotFoundError(
            f"model {name!r} has no version {number}",
            hint=f"list the versions of {name} to see which exist",
            topic=f"versions:{name}",
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
        .where(aliases.c.model_id == mid, aliases.c.version == number)
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
        envelope=envelope_doc(key) if key is not None else None,
        scan_status=row["scan_status"],
        scan_summary=_scan_summary(row["scan_report"]),
        quarantined_at=row["quarantined_at"],
    )


def _scan_summary(report: str | None) -> str | None:
    if report is None:
        return None
    import json

    from modelseal.registry.push_scan import summary

    return summary(json.loads(report))


def envelope_doc(row: Mapping[Any, Any]) -> dict[str, Any]:
    """The envelope/v1 document of a stored wrapped data key."""
    return {
        "modelseal": "envelope/v1",
        "associatedDataSha256": row["ad_sha256"],
        "dataKey": {"provider": row["provider"], "kekId": row["kek_id"], "wrapped": row["wrapped"]},
    }
