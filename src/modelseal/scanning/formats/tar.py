"""Tar archives of every variant ``tarfile`` reads (v7, ustar, GNU, pax; bare or compressed),
including legacy ``torch.save`` tar checkpoints.

Members are never extracted: each regular member is scanned through a window onto the archive
(or, in a compressed tar, as it streams). Links are reported, never followed. In a legacy torch
tar the ``storages`` and ``tensors`` members are not raw data: torch unpickles a count and one
record per storage or tensor from them, so they are walked as pickles with the raw blocks
skipped by their declared sizes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, BinaryIO, cast

from modelseal.scanning import rules
from modelseal.scanning.context import Context, scan_stream
from modelseal.scanning.formats.compressed import scan_forward
from modelseal.scanning.formats.pickles import _STORAGE_SIZES as STORAGE_SIZES
from modelseal.scanning.formats.zip import _name_problems
from modelseal.scanning.pickle_vm import GlobalRef, PickleError, PickleVM, Seq
from modelseal.scanning.report import Location, Severity
from modelseal.scanning.streams import CHUNK, Forward, PlainCodec, SliceFile, reader

if TYPE_CHECKING:
    import tarfile

_TORCH_MEMBERS = frozenset({"sys_info", "pickle", "storages", "tensors"})


def _items(value: Any) -> list[Any] | None:
    if isinstance(value, Seq) and value.kind in ("tuple", "list") and value.n == len(value.items):
        return value.items
    return None


def _storages_walker() -> Any:
    """after_stop for the ``storages`` member: a count, then per storage a pickled
    ``(key, location, storage_type)``, an int64 element count and the raw bytes; then views."""
    state = {"left": -1}

    def after(vm: PickleVM) -> None:
        if state["left"] == -1:
            if not isinstance(vm.last_value, int) or vm.last_value < 0:
                raise PickleError("legacy torch tar: storage count is unreadable")
            state["left"] = vm.last_value
            return
        if state["left"] == 0:
            vm.single = True  # the storage views: torch reads nothing after them
            return
        items = _items(vm.last_value)
        kind = items[2] if items and len(items) == 3 else None
        if not isinstance(kind, GlobalRef):
            raise PickleError("legacy torch tar: storage record is unreadable")
        size = STORAGE_SIZES.get(kind.name.removesuffix("Storage"))
        if not size:
            raise PickleError(f"legacy torch tar: storage type {kind!r} is unknown")
        numel = int.from_bytes(vm.need(8), "little", signed=True)
        if numel < 0 or not vm.src.skip(numel * size):
            raise PickleError("legacy torch tar: storage data is truncated")
        state["left"] -= 1
        if state["left"] == 0:
            vm.single = False

    return after


def _tensors_walker() -> Any:
    """after_stop for ``tensors``: a count, then per tensor a pickled record and its shape."""
    state = {"left": -1}

    def after(vm: PickleVM) -> None:
        if state["left"] == -1:
            if not isinstance(vm.last_value, int) or vm.last_value < 0:
                raise PickleError("legacy torch tar: tensor count is unreadable")
            state["left"] = vm.last_value
        else:
            ndim = int.from_bytes(vm.need(4), "little", signed=True)
            if not 0 <= ndim <= 64:
                raise PickleError("legacy torch tar: tensor record is unreadable")
            vm.need(4 + 16 * ndim + 8)
            state["left"] -= 1
        if state["left"] == 0:
            vm.single = True

    return after


def _link_outside(info: tarfile.TarInfo) -> bool:
    target = info.linkname
    if target.startswith(("/", "\\")):
        return True
    depth = info.name.count("/") if info.issym() else 0
    for part in target.replace("\\", "/").split("/"):
        depth += -1 if part == ".." else 0 if part in ("", ".") else 1
        if depth < 0:
            return True
    return False


def _check_member(ctx: Context, info: tarfile.TarInfo, loc: Location, torch: bool) -> bool:
    """Findings about a member's header; True when its content should be scanned."""
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
        outside = _link_outside(info)
        hijack = torch and info.name in _TORCH_MEMBERS
        ctx.find(
            rules.TAR_LINK,
            Severity.HIGH if outside or hijack else Severity.MEDIUM,
            loc,
            info.linkname,
            "link member "
            + (
                "that torch's legacy loader extracts and reads: it reads the link's target"
                if hijack
                else "pointing outside the archive"
                if outside
                else "(not followed): extracting it can redirect later writes"
            ),
        )
        return False
    if info.ischr() or info.isblk() or info.isfifo():
        ctx.find(
            rules.TAR_SPECIAL,
            Severity.MEDIUM,
            loc,
            info.name,
            "device or FIFO member: extracting it creates a special file",
        )
        return False
    return info.isfile()


def _scan_member(
    ctx: Context, content: BinaryIO, size: int | None, loc: Location, name: str, depth: int
) -> None:
    hook = {"storages": _storages_walker, "tensors": _tensors_walker}.get(name)
    if hook is not None and "torch-legacy-tar" in ctx.formats:
        ctx.saw("pickle")
        try:
            ctx.run_pickle(content, size, loc, after_stop=hook())
        except (OSError, ValueError, EOFError) as exc:
            ctx.fail(loc, f"cannot read tar member: {exc}")
        return
    if isinstance(content, Forward):
        scan_forward(ctx, content, loc, depth + 1, size)
    else:
        scan_stream(ctx, content, size, loc, depth + 1)


def scan_tar(
    ctx: Context, stream: BinaryIO, size: int | None, location: Location, depth: int
) -> None:
    """Scan every member of a tar archive (seekable: random access; decoded: as it streams)."""
    import tarfile  # here, not at import: start-up counts and most scans meet no tar

    ctx.saw("tar")
    streaming = isinstance(stream, Forward)
    try:
        tf = tarfile.open(fileobj=stream, mode="r|" if streaming else "r:")  # noqa: SIM115
    except (tarfile.TarError, OSError, EOFError) as exc:
        ctx.fail(location, f"tar archive is unreadable: {exc}")
        return
    seen: set[str] = set()
    torch = False
    end = 0
    count = 0
    try:
        for info in tf:
            count += 1
            if count > ctx.options.max_members:
                ctx.fail(location, f"more than {ctx.options.max_members} tar members")
                return
            ctx.budget.check_time()
            loc = location.inside(info.name)
            if info.name in seen:
                ctx.find(
                    rules.TAR_DUPLICATE_NAME,
                    Severity.HIGH,
                    loc,
                    info.name,
                    "two members share this name; extraction keeps the last, a reader may "
                    "take the first",
                )
            seen.add(info.name)
            if not torch and info.name in ("pickle", "storages", "sys_info"):
                torch = True
                ctx.saw("torch-legacy-tar")
            end = max(end, info.offset_data + ((info.size + 511) // 512) * 512)
            if not _check_member(ctx, info, loc, torch):
                continue
            if streaming or info.sparse is not None:
                member = tf.extractfile(info)
                if member is None:
                    continue
                # Only a sparse member expands (holes become zeros); the rest is already charged
                # by the decoder the tar streams from.
                budget = ctx.budget if info.sparse is not None else None
                forward = Forward(PlainCodec(cast(BinaryIO, member)), budget, what="tar member")
                content: BinaryIO = cast(BinaryIO, forward)
                _scan_member(ctx, content, None, loc, info.name, depth)
                content.seek(0, 2)  # charge every byte of a sparse member's expansion
            else:
                content = reader(SliceFile(stream, info.offset_data, info.size))
                _scan_member(ctx, content, info.size, loc, info.name, depth)
    except (tarfile.TarError, EOFError) as exc:
        ctx.fail(location, f"tar archive is unreadable past a member: {exc}")
        return
    if not streaming and size is not None and size > end:
        _scan_trailing(ctx, stream, end, size, location, depth)


def _scan_trailing(
    ctx: Context, stream: BinaryIO, end: int, size: int, location: Location, depth: int
) -> None:
    """Data after the archive's last member other than zero blocks: tarfile stops before it,
    other readers (``--ignore-zeros``, a zip reader looking at the end) may not."""
    pos = end
    stream.seek(pos)
    while pos < size:
        chunk = stream.read(min(CHUNK, size - pos))
        if not chunk:
            return
        stripped = chunk.lstrip(b"\0")
        if stripped:
            pos += len(chunk) - len(stripped)
            break
        pos += len(chunk)
    else:
        return
    block = pos - pos % 512
    loc = location.inside(f"<data after the archive @ {block}>")
    ctx.find(
        rules.TAR_TRAILING_DATA,
        Severity.MEDIUM,
        loc,
        "trailing data",
        "data after the end of the tar archive: tarfile ignores it, other readers may not",
    )
    scan_stream(ctx, reader(SliceFile(stream, block, size - block)), size - block, loc, depth + 1)
