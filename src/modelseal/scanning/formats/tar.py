"""Tar archives (legacy ``torch.save`` tar checkpoints and any tar of models)."""

from __future__ import annotations

import tarfile
from typing import BinaryIO

from modelseal.scanning import rules
from modelseal.scanning.context import Context, scan_stream
from modelseal.scanning.formats.zip import _name_problems
from modelseal.scanning.report import Location, Severity
from modelseal.scanning.streams import SliceFile, reader


def scan_tar(
    ctx: Context, stream: BinaryIO, size: int | None, location: Location, depth: int
) -> None:
    ctx.saw("tar")
    try:
        tf = tarfile.open(fileobj=stream, mode="r:")  # noqa: SIM115
        members = tf.getmembers()
    except (tarfile.TarError, OSError, EOFError) as exc:
        ctx.fail(location, f"tar archive is unreadable: {exc}")
        return
    if {m.name for m in members} >= {"sys_info", "pickle", "storages"}:
        ctx.saw("torch-legacy-tar")
    for info in members:
        loc = location.inside(info.name)
        problem = _name_problems(info.name)
        if problem:
            ctx.find(
                rules.TAR_MEMBER_NAME,
                Severity.MEDIUM,
                loc,
                info.name,
                f"member name {problem}; extraction may write outside the target",
            )
        if info.issym() or info.islnk():
            ctx.find(
                rules.TAR_LINK,
                Severity.MEDIUM,
                loc,
                info.linkname,
                "link member: extracting it can redirect later writes",
            )
            continue
        if not info.isfile():
            continue
        if info.sparse is not None:
            ctx.fail(loc, "sparse tar member cannot be scanned")
            continue
        if not ctx.budget.spend(info.size):
            ctx.fail(loc, "scan budget exhausted")
            return
        if info.name == "storages" and "torch-legacy-tar" in ctx.formats:
            continue  # raw tensor bytes that torch copies without parsing
        member = reader(SliceFile(stream, info.offset_data, info.size))
        scan_stream(ctx, member, info.size, loc, depth + 1)
