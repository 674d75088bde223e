"""Rules of containers: nesting and expansion, zip archives, tar archives."""

from __future__ import annotations

from modelseal.scanning.report import Severity
from modelseal.scanning.rules.rule import Rule

ARCHIVE_DEPTH = Rule(
    "archive.depth",
    Severity.HIGH,
    "archives are nested deeper than the scan allows",
    "Archives inside archives, repeated, hide content from tools that stop early and exhaust "
    "those that do not; what lies deeper is not scanned.",
    "Do not load the model; unpack it yourself and scan what it holds.",
    cwe=(409,),
)
ARCHIVE_BOMB = Rule(
    "archive.bomb",
    Severity.HIGH,
    "decompressed content exceeds the scan budget",
    "A small compressed stream that expands to gigabytes (a decompression bomb) exhausts "
    "memory or disk when loaded; the rest of it is not scanned.",
    "Do not load the model. If it is a genuine, very large model, raise the scan's budget "
    "(max_expanded) and scan again.",
    cwe=(409,),
)
ZIP_BAD_CRC = Rule(
    "zip.bad-crc",
    Severity.MEDIUM,
    "a zip member's data does not match its CRC",
    "Readers that skip the check (torch.load does) see content that others reject, so a "
    "scanner that trusts the CRC and a loader that does not disagree on what the file holds.",
    "Re-create the archive from trusted sources.",
    cwe=(354,),
)
ZIP_SIZE_MISMATCH = Rule(
    "zip.size-mismatch",
    Severity.MEDIUM,
    "a zip member's sizes disagree with its data",
    "Sizes in the directory that do not match the data make readers cut a member at different "
    "places, so different tools see different content.",
    "Re-create the archive from trusted sources.",
    cwe=(130,),
)
ZIP_TOO_MANY_MEMBERS = Rule(
    "zip.too-many-members",
    Severity.HIGH,
    "the zip archive has more members than the scan allows",
    "Hundreds of thousands of members exhaust the tools that list them; the members past the "
    "limit are not scanned.",
    "Do not load the model; if it is genuine, raise max_members and scan again.",
    cwe=(400,),
)
ZIP_DUPLICATE_NAME = Rule(
    "zip.duplicate-name",
    Severity.HIGH,
    "two zip members share a name",
    "Readers disagree on which of two same-named members they load (the first or the last): "
    "a scanner can check the benign one while the loader runs the other.",
    "Re-create the archive from trusted sources.",
    cwe=(436,),
)
ZIP_MEMBER_NAME = Rule(
    "zip.member-name",
    Severity.MEDIUM,
    "a zip member's name is absolute, climbs out, or is otherwise unsafe",
    "Names with '..', absolute paths, drive letters or control characters make extraction "
    "write outside the target directory (zip slip) or make lookups find the wrong member.",
    "Do not extract the archive; re-create it from trusted sources.",
    cwe=(22,),
)
ZIP_ENCRYPTED = Rule(
    "zip.encrypted",
    Severity.HIGH,
    "a zip member is encrypted",
    "An encrypted member cannot be inspected, so whatever it holds is unknown.",
    "Decrypt the archive and scan its content.",
)
ZIP_NAME_MISMATCH = Rule(
    "zip.name-mismatch",
    Severity.HIGH,
    "a zip member's local header names another file than the central directory",
    "Tools that read the archive sequentially (local headers) see a different member than "
    "those that use the central directory, as torch does: a scanner can be shown one file "
    "while the loader reads another.",
    "Re-create the archive from trusted sources.",
    cwe=(436,),
)
ZIP_HEADER_MISMATCH = Rule(
    "zip.header-mismatch",
    Severity.MEDIUM,
    "a zip member's local header disagrees with the central directory",
    "Flags or compression method that differ between the two headers make readers decode the "
    "member differently.",
    "Re-create the archive from trusted sources.",
    cwe=(436,),
)
TAR_MEMBER_NAME = Rule(
    "tar.member-name",
    Severity.MEDIUM,
    "a tar member's name is absolute, climbs out, or is otherwise unsafe",
    "Names with '..' or absolute paths make extraction write outside the target directory "
    "(tar slip).",
    "Do not extract the archive; re-create it from trusted sources.",
    cwe=(22,),
    cve=("CVE-2007-4559",),
)
TAR_LINK = Rule(
    "tar.link",
    Severity.MEDIUM,
    "a tar member is a symbolic or hard link",
    "Extracting a link member can redirect later members' writes anywhere the link points.",
    "Do not extract the archive; re-create it without links.",
    cwe=(59,),
    cve=("CVE-2007-4559",),
)
