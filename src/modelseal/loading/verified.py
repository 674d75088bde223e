"""Verify, scan, then load: from exactly the bytes that were verified.

Every covered file is read once into memory and hashed from that memory; those bytes are scanned
and handed to the framework. Nothing is read from the path a second time, so a file swapped after
the check is never loaded; the swap is still noticed (file identity is compared afterwards) and
reported as :class:`~modelseal.errors.ModelChangedError`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelseal.errors import (
    ModelChangedError,
    Reason,
    UnsafeModelError,
    UnscannableModelError,
    UsageError,
    VerificationError,
)
from modelseal.hashing.engine import Buffer, FileIdentity, HashOutcome, Reader
from modelseal.hashing.tensors import tensor_payload_ranges
from modelseal.hashing.walk import open_beneath, open_root
from modelseal.loading.parse import parse_buffers as _parse
from modelseal.scanning.allowlist import Allowlist
from modelseal.signing.api import PathLike, VerificationResult, verify_outcome
from modelseal.signing.bundle import OmsBundle, read_bundle
from modelseal.signing.keys import PublicKey

if TYPE_CHECKING:
    from modelseal.crypto.keyset import Keyset
    from modelseal.crypto.providers import KeyProvider

FRAMEWORKS = (
    "auto",
    "safetensors",
    "torch",
    "numpy",
    "onnx",
    "pickle",
    "xgboost",
    "lightgbm",
    "keras",
    "torchscript",
)  # fmt: skip  (pickle covers joblib)
# Where the verified bytes live -> the hashing engine's reader (see load_verified).
MEMORY_MODES: dict[str, Reader] = {"copy": "capture", "map": "map"}


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A verified, scanned, loaded model and what was loaded."""

    obj: Any
    framework: str
    files: tuple[str, ...]
    tensors: int
    parameters: int
    verification: VerificationResult

    def to_dict(self) -> dict[str, Any]:
        """What was loaded, as a JSON-ready dict (the object itself is not included)."""
        return {
            "loaded": True,
            "framework": self.framework,
            "files": list(self.files),
            "tensors": self.tensors,
            "parameters": self.parameters,
            "signer": self.verification.signer,
            "root_digest": {"sha256": self.verification.root_digest},
        }


# Test seam: called after verification and scanning, before anything is parsed.
_after_verification: Callable[[Path], None] | None = None


Passphrase = str | bytes
"""A passphrase: text (encoded as UTF-8) or bytes."""


@dataclasses.dataclass(frozen=True)
class _KeyOptions:
    """How to decrypt an encrypted model (kept by VerifiedModel to re-check it later)."""

    keyset: Keyset | PathLike | None
    key_provider: KeyProvider | str | None
    associated_data: bytes
    passphrase: bytes | None

    @property
    def encrypted(self) -> bool:
        return self.keyset is not None or self.key_provider is not None


def _key_options(
    keyset: Keyset | PathLike | None,
    key_provider: KeyProvider | str | None,
    associated_data: str | bytes,
    passphrase: Passphrase | None,
) -> _KeyOptions:
    if keyset is not None and key_provider is not None:
        raise UsageError("give a keyset or a key provider, not both", hint="pass only one")
    if isinstance(associated_data, str):
        associated_data = associated_data.encode("utf-8")
    if not isinstance(associated_data, bytes):
        raise UsageError("associated_data must be bytes or str", hint="e.g. b'' or 'name'")
    if isinstance(passphrase, str):
        passphrase = passphrase.encode("utf-8")
    if passphrase is not None and not isinstance(passphrase, bytes):
        raise UsageError("passphrase must be str or bytes", hint="e.g. 'my passphrase'")
    opens_a_file = isinstance(key_provider, str) or isinstance(keyset, (str, os.PathLike))
    if passphrase is not None and not opens_a_file:
        raise UsageError(
            "a passphrase goes with a keyset file or a key-provider URI",
            hint="pass keyset='keyset.json' or key_provider='local:kek.json' with it",
        )
    return _KeyOptions(keyset, key_provider, associated_data, passphrase)


def _allowlist(allow: Iterable[str], allow_config: PathLike | None) -> Allowlist:
    if isinstance(allow, str):
        raise UsageError("allow must be a list of names, not one string", hint="allow=['m.C']")
    base = Allowlist.from_file(allow_config) if allow_config is not None else Allowlist()
    return base.extended(allow)


def load_verified(
    path: PathLike,
    *,
    signature: PathLike | OmsBundle,
    public_key: PathLike | PublicKey | None = None,
    trust: Sequence[PathLike] | None = None,
    framework: str = "auto",
    allow_unsigned_files: bool = False,
    allow: Iterable[str] = (),
    allow_config: PathLike | None = None,
    tensor_type: str | None = None,
    scan: bool = True,
    at: dt.datetime | None = None,
    keyset: Keyset | PathLike | None = None,
    key_provider: KeyProvider | str | None = None,
    associated_data: str | bytes = b"",
    passphrase: Passphrase | None = None,
    memory: str = "copy",
    contents: Mapping[str, Buffer | bytes] | None = None,
) -> LoadedModel:
    """Verify ``path`` against ``signature``, scan the verified bytes, load them.

    ``framework`` is ``auto`` (by content) or one of :data:`FRAMEWORKS`; ``tensor_type`` picks
    ``numpy`` or ``torch`` arrays for tensor files (default: torch for PyTorch checkpoints, numpy
    otherwise). ``allow`` extends the built-in pickle allow-list (plain data, NumPy, PyTorch,
    scikit-learn, XGBoost, LightGBM) with exact names (``mypkg.models.Net``) or patterns
    (``mypkg.models.*``: classes only); ``allow_config`` is a TOML file with
    ``[scan] allow = [...]``. The scanner and the restricted unpickler use that one list.
    Files the signature does not cover are refused unless ``allow_unsigned_files``
    (they are then ignored, never loaded). ``scan=False`` skips the scan (the restricted
    unpickler still applies the allow-list); ``at`` checks certificates at that time.
    Raises a :class:`modelseal.errors.VerificationError` subclass (integrity, signature,
    :class:`UnsafeModelError`, :class:`ModelChangedError`) or a
    :class:`modelseal.errors.UsageError`; nothing is returned on failure.

    An encrypted model (``modelseal encrypt``: a file, or a directory) is loaded with its
    ``keyset`` (a :class:`modelseal.crypto.Keyset`, or the path of a keyset file) or
    ``key_provider`` (a :class:`modelseal.crypto.KeyProvider`, or a URI such as
    ``local:kek.json``), the ``passphrase`` of that file if it is protected (str or bytes), and
    the ``associated_data`` it was bound to: it is decrypted into memory only (every segment
    authenticated), then verified against ``signature``, scanned and loaded from those bytes.
    The plaintext never touches disk (see docs/loading.md for Keras models with assets).

    ``memory`` is where the verified bytes live: ``"copy"`` (default) reads each file once into
    fresh process memory, so nothing done to the files afterwards can reach the loaded model;
    ``"map"`` keeps a safetensors file or a PyTorch checkpoint as a private mapping of the
    file, hashed, scanned and parsed from there: its structure (header, zip directory, pickle) is
    made a private copy before hashing, its tensor values stay shared with the page cache (every
    other file is copied). That saves copying the weights, but an in-place write to them by
    someone who can write the file would show through later (a replaced file would not). See
    docs/loading.md.

    ``contents`` are the model's bytes already in memory (relative name -> bytes; ``"."`` for
    a single file), as a download delivered them: they are verified, scanned and loaded as
    given, with nothing read from disk, and ``path`` only names the model.
    """
    if memory not in MEMORY_MODES:
        raise UsageError(f"unknown memory mode {memory!r}", hint="use 'copy' or 'map'")
    if framework not in FRAMEWORKS:
        raise UsageError(
            f"unknown framework {framework!r}", hint=f"use one of: {', '.join(FRAMEWORKS)}"
        )
    if tensor_type not in (None, "numpy", "torch"):
        raise UsageError(f"unknown tensor type {tensor_type!r}", hint="use 'numpy' or 'torch'")
    allowlist = _allowlist(allow, allow_config)
    keys = _key_options(keyset, key_provider, associated_data, passphrase)
    if contents is not None and keys.encrypted:
        raise UsageError(
            "give either the bytes of a model or the keys to decrypt its file, not both",
            hint="decrypt first, or load the encrypted file with its keys",
        )
    given = contents is not None
    if keys.encrypted:
        contents = _decrypt_in_memory(path, keys)
    result, outcome = verify_outcome(
        path,
        signature=signature,
        public_key=public_key,
        trust_anchors=tuple(trust or ()),
        at=at,
        reader=MEMORY_MODES[memory],
        shared_ranges=tensor_payload_ranges if memory == "map" else None,
        allow_unsigned_files=allow_unsigned_files,
        contents=contents,
    )
    buffers = outcome.captured
    if scan:
        _scan(buffers, allowlist)
    if _after_verification is not None:
        _after_verification(Path(path))
    shown = Path(path)
    if keys.encrypted:  # frameworks that look at the name see the plaintext's (no ".enc")
        from modelseal.hashing.memory import model_name_of

        shown = shown.with_name(model_name_of(shown))
    obj, kind, count, params = _parse(shown, buffers, framework, tensor_type, allowlist)
    if not keys.encrypted and not given:  # (else no file was read: nothing to re-check)
        _check_unchanged(Path(path), outcome)
    return LoadedModel(obj, kind, tuple(sorted(buffers)), count, params, result)


def load(
    path: PathLike,
    *,
    signature: PathLike | OmsBundle,
    public_key: PathLike | PublicKey | None = None,
    trust: Sequence[PathLike] | None = None,
    framework: str = "auto",
    allow_unsigned_files: bool = False,
    allow: Iterable[str] = (),
    allow_config: PathLike | None = None,
    tensor_type: str | None = None,
    scan: bool = True,
    at: dt.datetime | None = None,
    keyset: Keyset | PathLike | None = None,
    key_provider: KeyProvider | str | None = None,
    associated_data: str | bytes = b"",
    passphrase: Passphrase | None = None,
    memory: str = "copy",
) -> Any:
    """Verify, scan, then load ``path``; return the framework object.

    The object is returned only if the signature verifies, the scan is clean and the bytes
    handed to the framework are the bytes that were hashed; otherwise a
    :class:`modelseal.errors.VerificationError` subclass or a :class:`modelseal.errors.UsageError`
    is raised. Every option is described at :func:`load_verified`.
    """
    return load_verified(
        path,
        signature=signature,
        public_key=public_key,
        trust=trust,
        framework=framework,
        allow_unsigned_files=allow_unsigned_files,
        allow=allow,
        allow_config=allow_config,
        tensor_type=tensor_type,
        scan=scan,
        at=at,
        keyset=keyset,
        key_provider=key_provider,
        associated_data=associated_data,
        passphrase=passphrase,
        memory=memory,
    ).obj


def _decrypt_in_memory(path: PathLike, keys: _KeyOptions) -> dict[str, bytes]:
    """The plaintext of an encrypted model, in memory only, named as the manifest names it."""
    from modelseal.crypto.api import decrypt_to_memory

    keyset = keys.keyset
    if keyset is not None and isinstance(keyset, (str, os.PathLike)):
        from modelseal.crypto.keyset import read_keyset_file

        keyset = read_keyset_file(keyset, passphrase=keys.passphrase)
    provider = keys.key_provider
    if isinstance(provider, str):
        from modelseal.crypto.providers import open_provider

        provider = open_provider(provider, passphrase=keys.passphrase)
    plain = decrypt_to_memory(
        path, keyset=keyset, provider=provider, associated_data=keys.associated_data
    )
    source = Path(path)
    if source.is_dir() and not source.is_symlink():
        return plain
    # One encrypted file is a single-file model: OMS names it ".".
    return {".": next(iter(plain.values()))}


def scan_buffers(buffers: Mapping[str, Buffer], allow: Iterable[str] = ()) -> None:
    """Scan verified bytes (name -> bytes) before anything parses them: an
    :class:`UnsafeModelError` listing every finding and unscannable part, else nothing."""
    from modelseal.scanning.allowlist import Allowlist

    _scan(buffers, Allowlist().extended(tuple(allow)))


def _needed_classes(findings: Sequence[Any]) -> list[str]:
    """Unlisted globals that look like a model's own classes (never a dangerous callable)."""
    from modelseal.scanning.report import Severity

    names: list[str] = []
    for finding in findings:
        if finding.rule != "pickle.global" or finding.severity >= Severity.HIGH:
            continue
        leaf = finding.subject.rpartition(".")[2]
        if leaf[:1].isupper() and finding.subject not in names:
            names.append(finding.subject)
    return names


def _scan(buffers: Mapping[str, Buffer], allowlist: Allowlist) -> None:
    from modelseal.scanning.engine import Options, scan_bytes

    options = Options(allowlist=allowlist)
    reasons: list[Reason] = []
    findings: list[Any] = []
    for name in sorted(buffers):
        report = scan_bytes(buffers[name], options, name=name)
        findings.extend(report.findings)
        for finding in report.findings:
            message = (
                f"{name}: {finding.subject} ({finding.severity.label}, {finding.rule}): "
                f"{finding.message}"
            )
            reasons.append(Reason("unsafe-content", message, path=name))
        for region in report.unscannable:
            reasons.append(
                Reason("unscannable", f"{name}: cannot scan: {region.reason}", path=name)
            )
    if not reasons:
        return
    hint = "run 'modelseal scan' for details; nothing was loaded"
    needed = _needed_classes(findings)
    if needed and len(needed) == len(reasons):
        hint = (
            f"the model needs classes outside the allow-list; if you trust them, allow them: "
            f"allow={needed!r} (load-check: "
            + " ".join(f"--allow {n}" for n in needed)
            + "); nothing was loaded"
        )
    # Unsafe content beats unscannable (exit 1); only unscannable regions are exit 2.
    error = UnsafeModelError if findings else UnscannableModelError
    raise error(
        f"refusing to load: {reasons[0].message}"
        + (f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""),
        reasons=reasons,
        hint=hint,
    )


def _check_unchanged(root: Path, outcome: HashOutcome) -> None:
    """Compare each file's identity now with when it was read (fail closed on any change)."""
    is_file = "." in outcome.identities
    changed: list[str] = []
    try:
        root_fd = open_root(root, is_file)
    except Exception:
        changed = sorted(outcome.identities)
    else:
        try:
            for name, before in outcome.identities.items():
                try:
                    fd = os.dup(root_fd) if is_file else open_beneath(root_fd, name)
                except OSError:
                    changed.append(name)
                    continue
                try:
                    if FileIdentity.of(os.fstat(fd)) != before:
                        changed.append(name)
                finally:
                    os.close(fd)
        finally:
            os.close(root_fd)
    if changed:
        reasons = [
            Reason("changed", f"{n}: changed on disk during loading", path=n) for n in changed
        ]
        raise ModelChangedError(
            f"model changed on disk while it was loaded: {', '.join(sorted(changed))}",
            reasons=reasons,
            hint="something is modifying the model; nothing was returned",
        )


class VerifiedModel:
    """A loaded model that keeps its signed manifest, for servers.

    :meth:`check` re-hashes the files on disk (never loading anything) and returns the reasons
    they differ from what was verified; :meth:`watch` does so on a timer and calls back on a
    swap. Use as a context manager to stop the timer.
    """

    def __init__(
        self,
        path: PathLike,
        *,
        signature: PathLike | OmsBundle,
        public_key: PathLike | PublicKey | None = None,
        trust: Sequence[PathLike] | None = None,
        framework: str = "auto",
        allow_unsigned_files: bool = False,
        allow: Iterable[str] = (),
        allow_config: PathLike | None = None,
        tensor_type: str | None = None,
        scan: bool = True,
        at: dt.datetime | None = None,
        keyset: Keyset | PathLike | None = None,
        key_provider: KeyProvider | str | None = None,
        associated_data: str | bytes = b"",
        passphrase: Passphrase | None = None,
        memory: str = "copy",
    ) -> None:
        """Verify, scan and load ``path`` (every option as in :func:`load_verified`)."""
        self.path = Path(path)
        self._bundle = signature if isinstance(signature, OmsBundle) else read_bundle(signature)
        self._signature_path = None if isinstance(signature, OmsBundle) else signature
        self._public_key = public_key
        self._trust = tuple(trust or ())
        self._keys = _key_options(keyset, key_provider, associated_data, passphrase)
        self.loaded = load_verified(
            path,
            signature=self._bundle,
            public_key=public_key,
            trust=self._trust,
            framework=framework,
            allow_unsigned_files=allow_unsigned_files,
            allow=allow,
            allow_config=allow_config,
            tensor_type=tensor_type,
            scan=scan,
            at=at,
            keyset=keyset,
            key_provider=key_provider,
            associated_data=associated_data,
            passphrase=passphrase,
            memory=memory,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def model(self) -> Any:
        """The loaded object, as verified when this was opened (never reloaded)."""
        return self.loaded.obj

    def check(self) -> list[Reason]:
        """Reasons the files on disk no longer match the verified model (empty if they do)."""
        try:
            contents = _decrypt_in_memory(self.path, self._keys) if self._keys.encrypted else None
            verify_outcome(
                self.path,
                signature=self._bundle,
                public_key=self._public_key,
                trust_anchors=self._trust,
                reader="read",
                contents=contents,
            )
        except VerificationError as exc:
            return list(exc.reasons) or [Reason("changed", exc.message)]
        return []

    def watch(self, interval: float, on_change: Callable[[list[Reason]], None]) -> None:
        """Re-check every ``interval`` seconds in a daemon thread; call ``on_change`` on a swap."""
        if interval <= 0:
            raise UsageError("the watch interval must be positive", hint="e.g. 60 (seconds)")
        if self._thread is not None:
            raise UsageError("already watching", hint="call close() first")

        def loop() -> None:
            while not self._stop.wait(interval):
                reasons = self.check()
                if reasons:
                    on_change(reasons)

        self._thread = threading.Thread(target=loop, name="modelseal-watch", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop watching; returns once the watcher thread has ended."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> VerifiedModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
