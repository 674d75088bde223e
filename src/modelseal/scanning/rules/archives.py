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
    "Flags, compression method, sizes or CRC that differ between the two headers make "
    "sequential and directory readers decode the member differently.",
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
    Severity.HIGH,
    "a tar member is a symbolic or hard link",
    "Extracting a link member can redirect later members' writes anywhere the link points; one "
    "that points outside the archive, or is named like a member torch's legacy loader extracts "
    "and reads, makes the loader read any local file (high).",
    "Do not extract the archive; re-create it without links.",
    lowest=Severity.MEDIUM,
    cwe=(59,),
    cve=("CVE-2007-4559",),
)
TAR_SPECIAL = Rule(
    "tar.special",
    Severity.MEDIUM,
    "a tar member is a device or a FIFO",
    "Extracting a device or FIFO member creates a special file that can block or redirect the "
    "reads of whatever opens it later.",
    "Do not extract the archive; re-create it with regular files only.",
    cwe=(67,),
)
TAR_DUPLICATE_NAME = Rule(
    "tar.duplicate-name",
    Severity.HIGH,
    "two tar members share a name",
    "Extraction keeps the last of two same-named members while a reader may take the first: a "
    "scanner can check the benign one while the loader runs the other.",
    "Re-create the archive from trusted sources.",
    cwe=(436,),
)
TAR_TRAILING_DATA = Rule(
    "tar.trailing-data",
    Severity.MEDIUM,
    "data follows the end of a tar archive",
    "tarfile stops at the end-of-archive blocks; readers that go on (ignore-zeros modes, a zip "
    "reader looking at the end of the file) see content the archive does not list.",
    "Re-create the archive from trusted sources.",
    cwe=(436,),
)
ZIP_STORAGE_CONTENT = Rule(
    "zip.storage-content",
    Severity.HIGH,
    "a tensor storage record holds unsafe content",
    "torch copies storage records as raw bytes, but a record that is a pickle or an archive with "
    "unsafe content runs when any reader takes the record for a file of its own.",
    "Do not load the model; re-create it from trusted weights.",
    cwe=(502,),
)
ZIP_MULTIPLE_EOCD = Rule(
    "zip.multiple-eocd",
    Severity.HIGH,
    "several end-of-central-directory records describe different members",
    "zipfile and torch take the last end record; readers that take another one load other "
    "members, so what is scanned and what is loaded can differ.",
    "Re-create the archive from trusted sources.",
    cwe=(436,),
)
ZIP_HIDDEN_MEMBER = Rule(
    "zip.hidden-member",
    Severity.HIGH,
    "a zip member exists only in the local headers",
    "Streaming readers walk local headers and load a member the central directory does not "
    "list, which directory readers (and scanners that trust them) never see.",
    "Re-create the archive from trusted sources.",
    cwe=(436,),
)
ZIP_OVERLAPPING_MEMBERS = Rule(
    "zip.overlapping-members",
    Severity.HIGH,
    "zip members share bytes",
    "Members whose data overlaps build non-recursive decompression bombs and make one file's "
    "content depend on which member a reader takes.",
    "Do not load the model; re-create the archive from trusted sources.",
    cwe=(409, 436),
)
ZIP_TRAILING_DATA = Rule(
    "zip.trailing-data",
    Severity.MEDIUM,
    "data follows a zip archive's end record",
    "No zip reader covers bytes after the end record; a loader that sniffs the file another way "
    "may take them for the model.",
    "Re-create the archive from trusted sources.",
    cwe=(436,),
)
POLYGLOT_TAR = Rule(
    "polyglot.tar",
    Severity.HIGH,
    "the file is a valid tar archive and also another format",
    "torch.load's legacy path and tarfile read the tar, other loaders read the other format: "
    "the content a scanner checks and the content a loader runs can differ.",
    "Do not load the model; re-create it in one unambiguous format.",
    cwe=(436,),
)
POLYGLOT_ZIP = Rule(
    "polyglot.zip",
    Severity.HIGH,
    "a zip archive is found at the end of a file of another format",
    "Python's zipfile (Keras and anything calling zipfile.is_zipfile) finds the archive from its "
    "end record, while loaders that check the first bytes read the other format.",
    "Do not load the model; re-create it in one unambiguous format.",
    cwe=(436,),
)
SEVENZIP_ENCRYPTED = Rule(
    "sevenzip.encrypted",
    Severity.HIGH,
    "a 7z archive is encrypted",
    "An encrypted archive cannot be inspected, so whatever it holds is unknown.",
    "Decrypt the archive and scan its content.",
)
SEVENZIP_MEMBER_NAME = Rule(
    "sevenzip.member-name",
    Severity.MEDIUM,
    "a 7z member's name is absolute, climbs out, or is otherwise unsafe",
    "Names with '..', absolute paths or control characters make extraction write outside the "
    "target directory.",
    "Do not extract the archive; re-create it from trusted sources.",
    cwe=(22,),
)
SEVENZIP_LINK = Rule(
    "sevenzip.link",
    Severity.MEDIUM,
    "a 7z member is a symbolic link or junction",
    "Extracting a link member can redirect later members' writes anywhere the link points.",
    "Do not extract the archive; re-create it without links.",
    cwe=(59,),
)
SEVENZIP_DUPLICATE_NAME = Rule(
    "sevenzip.duplicate-name",
    Severity.HIGH,
    "two 7z members share a name",
    "Extraction keeps one of two same-named members and readers may take the other: a scanner "
    "can check the benign one while the loader runs the other.",
    "Re-create the archive from trusted sources.",
    cwe=(436,),
)
