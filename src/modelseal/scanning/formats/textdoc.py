"""Text of no binary format: YAML configs (``model_config.yaml`` in ``.nemo`` archives, Hydra and
Lightning configs) and XML. Binary data of unknown format is left alone; text that is neither
YAML nor XML is plain text.
"""

from __future__ import annotations

import codecs
from typing import BinaryIO

from modelseal.scanning.context import Context
from modelseal.scanning.formats.xmldoc import scan_xml
from modelseal.scanning.formats.yamldoc import scan_yaml
from modelseal.scanning.report import Location

MAX_TEXT = 64 << 20


def is_text(head: bytes) -> bool:
    """Whether a stream starting with ``head`` is text (UTF-8, or UTF-16 with a BOM)."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, b"<\0?\0", b"\0<\0?")):
        return True  # UTF-16 (XML may omit the BOM: parsers detect "<?" itself)
    if b"\0" in head:
        return False
    for cut in range(4):  # the head may end inside a multi-byte character
        try:
            head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return True
    return False


def _decode(data: bytes) -> str:
    for start, codec in (
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
        (b"<\0?\0", "utf-16-le"),
        (b"\0<\0?", "utf-16-be"),
    ):
        if data.startswith(start):
            return data.decode(codec, "replace")
    return data.decode("utf-8-sig", "replace")


def scan_text(
    ctx: Context, stream: BinaryIO, size: int | None, location: Location, depth: int = 0
) -> str | None:
    """Scan a text stream as XML or YAML; returns ``"xml"``, ``"yaml"``, ``"text"`` (too large
    to scan) or None (plain text, or not text at all)."""
    head = stream.read(4096)
    stream.seek(0)
    if not head or not is_text(head):
        return None
    if (size is not None and size > MAX_TEXT) or len(data := stream.read(MAX_TEXT + 1)) > MAX_TEXT:
        stream.seek(MAX_TEXT)
        if b"\0" in stream.read(1 << 16):
            return None  # a text header on binary data
        ctx.fail(location, f"text file larger than {MAX_TEXT} bytes is not scanned as a config")
        return "text"
    text = _decode(data)
    if text.lstrip().startswith("<"):
        scan_xml(ctx, text, location)
        return "xml"
    if scan_yaml(ctx, data, location):
        ctx.saw("yaml")
        return "yaml"
    return None  # plain text: scanned, but no format of its own (--strict counts it)


def scan_text_file(
    ctx: Context, stream: BinaryIO, size: int | None, location: Location, depth: int
) -> None:
    """The ``text`` scanner: :func:`scan_text`, with the kind found in ``ctx.last_json_kind``."""
    ctx.last_json_kind = scan_text(ctx, stream, size, location, depth) or "unknown"
