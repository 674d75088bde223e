"""C2SP signed notes and tlog checkpoints, signed with an Ed25519 key kept outside the database.

A checkpoint body is three lines: the log's origin, the tree size in decimal, and the base64 root
hash. The signed note appends a blank line and one signature line per signer::

    — <key name> <base64(key hash (4 bytes) || Ed25519 signature)>

where the key hash is the first four bytes of ``SHA-256(key name || "\\n" || 0x01 || public
key)``. Verifier keys are written ``<name>+<hex key hash>+<base64(0x01 || public key)>``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import hashlib
import os
import re
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from modelseal.errors import InputError, KeyFileError, NoteError

ED25519_ALG = 0x01
SIG_PREFIX = "\u2014 "  # em dash and a space
_NAME = re.compile(r"\A[^\s+]+\Z")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


def key_hash(name: str, public: bytes) -> bytes:
    """The C2SP key hash of a note key: SHA-256 of name, newline, type and key, first 4 bytes."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ED25519_ALG]) + public).digest()[:4]


@dataclasses.dataclass(frozen=True)
class NoteSigner:
    """An Ed25519 note key with its name."""

    name: str
    key: Ed25519PrivateKey

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise KeyFileError(
                f"invalid note key name {self.name!r}", hint="use a name without spaces or '+'"
            )

    @property
    def verifier(self) -> NoteVerifier:
        """The verifier for notes this key signs."""
        return NoteVerifier(self.name, self.key.public_key())

    @functools.cached_property
    def _tag(self) -> bytes:
        return key_hash(self.name, self.verifier.raw)

    def sign(self, text: str) -> str:
        """``text`` (ending in a newline) as a signed note."""
        return text + "\n" + self.signature_line(text)

    def signature_line(self, text: str) -> str:
        """The note's signature line (ending in a newline) for ``text``."""
        sig = self.key.sign(_check_text(text))
        return SIG_PREFIX + self.name + " " + base64.b64encode(self._tag + sig).decode() + "\n"


@dataclasses.dataclass(frozen=True)
class NoteVerifier:
    """An Ed25519 note public key with its name."""

    name: str
    key: Ed25519PublicKey

    @property
    def raw(self) -> bytes:
        """The raw Ed25519 public key."""
        return self.key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def key_hash(self) -> bytes:
        """The key's C2SP key hash."""
        return key_hash(self.name, self.raw)

    def encode(self) -> str:
        """The vkey string: ``name+hexhash+base64(0x01||key)``."""
        material = base64.b64encode(bytes([ED25519_ALG]) + self.raw).decode()
        return f"{self.name}+{self.key_hash.hex()}+{material}"

    @classmethod
    def decode(cls, vkey: str) -> NoteVerifier:
        """A verifier from its C2SP ``vkey`` text (``name+hash+base64``)."""
        # The base64 key material may itself contain '+': split only the first two.
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3 or len(parts[1]) != 8:
            raise NoteError("malformed verifier key", hint="expected name+hash+key")
        name, hexhash, material = parts
        try:
            raw = base64.b64decode(material, validate=True)
            expected = bytes.fromhex(hexhash)
        except (binascii.Error, ValueError):
            raise NoteError("malformed verifier key", hint="expected name+hash+key") from None
        if len(raw) != 33 or raw[0] != ED25519_ALG:
            raise NoteError("verifier key is not an Ed25519 key", hint="use an Ed25519 note key")
        verifier = cls(name, Ed25519PublicKey.from_public_bytes(raw[1:]))
        if verifier.key_hash != expected:
            raise NoteError("verifier key hash does not match its key", hint="the key was edited")
        return verifier

    def verify(self, note: str) -> str:
        """Return the note's text if one of its signatures is by this key; else raise."""
        text, signatures = split_note(note)
        body = _check_text(text)
        for name, blob in signatures:
            if name != self.name or blob[:4] != self.key_hash:
                continue
            try:
                self.key.verify(blob[4:], body)
            except InvalidSignature:
                raise NoteError(
                    f"checkpoint signature by {self.name!r} does not verify",
                    hint="the checkpoint was altered or signed by another key",
                ) from None
            return text
        raise NoteError(
            f"checkpoint is not signed by {self.name!r}",
            hint="verify with the log's public key (audit/log-key.vkey)",
        )


def _check_text(text: str) -> bytes:
    if not text.endswith("\n") or _CONTROL.search(text):
        raise NoteError("malformed note text", hint="a note's text ends in a newline")
    return text.encode("utf-8")


def split_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """Split a signed note into its text and ``(key name, key hash || signature)`` pairs."""
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise NoteError("malformed signed note: no signature block", hint="is this a checkpoint?")
    text, block = note[: cut + 1], note[cut + 2 :]
    signatures: list[tuple[str, bytes]] = []
    for line in block.splitlines():
        if not line.startswith(SIG_PREFIX):
            raise NoteError("malformed signature line in signed note", hint="is this a checkpoint?")
        fields = line[len(SIG_PREFIX) :].split(" ")
        if len(fields) != 2:
            raise NoteError("malformed signature line in signed note", hint="is this a checkpoint?")
        try:
            blob = base64.b64decode(fields[1], validate=True)
        except binascii.Error:
            raise NoteError(
                "malformed signature in signed note", hint="is this a checkpoint?"
            ) from None
        if len(blob) < 5:
            raise NoteError("malformed signature in signed note", hint="is this a checkpoint?")
        signatures.append((fields[0], blob))
    if not signatures:
        raise NoteError("signed note carries no signature", hint="is this a checkpoint?")
    return text, signatures


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A tree head: origin, size and root hash (C2SP tlog-checkpoint)."""

    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        """The checkpoint body: origin, size, base64 root, each on its own line."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """A checkpoint from its body text; :class:`NoteError` if malformed."""
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "" or not lines[0]:
            raise NoteError("malformed checkpoint", hint="expected origin, size, root hash lines")
        origin, size_text, root_text = lines[0], lines[1], lines[2]
        if not size_text.isdigit() or (size_text.startswith("0") and size_text != "0"):
            raise NoteError("malformed checkpoint tree size", hint="expected a decimal number")
        try:
            root = base64.b64decode(root_text, validate=True)
        except binascii.Error:
            raise NoteError("malformed checkpoint root hash", hint="expected base64") from None
        if len(root) != 32:
            raise NoteError("malformed checkpoint root hash", hint="expected 32 bytes")
        return cls(origin, int(size_text), root)


def generate_signer(name: str) -> NoteSigner:
    """A new Ed25519 note signer named ``name``."""
    return NoteSigner(name, Ed25519PrivateKey.generate())


def write_signer(signer: NoteSigner, key_path: Path) -> None:
    """Write the private key (mode 0600, PKCS#8 PEM with the name in a header comment) and the
    verifier key beside it (``.vkey``)."""
    from modelseal.fsutil import atomic_write

    try:
        key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise KeyFileError(
            f"cannot create the audit log key's folder {str(key_path.parent)!r}: {exc.strerror}",
            hint="check the registry home and the audit key path",
        ) from None
    pem = signer.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    atomic_write(
        key_path, f"# note-key-name: {signer.name}\n".encode() + pem, mode=0o600, overwrite=False
    )
    atomic_write(key_path.with_suffix(".vkey"), (signer.verifier.encode() + "\n").encode())


def load_signer(key_path: Path) -> NoteSigner:
    """Load a note key written by :func:`write_signer`; refuse one others can read."""
    try:
        from modelseal.fsinput import read_regular

        st = os.stat(key_path)
        data = read_regular(key_path, 1 << 20)  # never waits on a FIFO
    except OSError as exc:
        raise KeyFileError(
            f"cannot read the audit log key {str(key_path)!r}: {exc.strerror}",
            hint="check the audit key path, or open the registry once to create it",
        ) from None
    if st.st_mode & 0o077:
        raise KeyFileError(
            f"audit log key {str(key_path)!r} is readable by others (mode {st.st_mode & 0o777:o})",
            hint=f"chmod 600 {key_path}",
        )
    first, _, pem = data.partition(b"\n")
    prefix = b"# note-key-name: "
    if not first.startswith(prefix):
        raise KeyFileError(f"{str(key_path)!r} is not a modelseal note key", hint="check the path")
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except ValueError:
        raise KeyFileError(f"{str(key_path)!r} is not a valid key", hint="check the path") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{str(key_path)!r} is not an Ed25519 key", hint="check the path")
    return NoteSigner(first[len(prefix) :].decode("utf-8").strip(), key)


def load_or_create_signer(key_path: Path, name: str) -> NoteSigner:
    """The log's signing key at ``key_path`` (created 0600 on first use, with its .vkey)."""
    if not key_path.exists():
        try:
            write_signer(generate_signer(name), key_path)
        except InputError:
            if not key_path.exists():  # lost a creation race: use the winner's key
                raise
    return load_signer(key_path)
