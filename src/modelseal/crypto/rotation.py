"""Key rotation: re-wrap every data key under a new key-encryption key, then retire the old.

Data is never re-encrypted: only envelopes (a few hundred bytes each) are rewritten, each
atomically. Rotation is two-phase so an interruption loses nothing:

1. make the new KEK current (``add_kek``) or use the one ``new_provider`` names, then re-wrap
   every target's data key and check the new wrap unwraps before replacing its envelope;
2. commit: retire the old KEKs (local: delete them from the keyset file; PKCS#11: destroy the
   key objects; AWS KMS: disable the key). From then on old envelopes (backups, copies) no
   longer unwrap. Artifacts not listed as targets and wrapped by a retired KEK are lost too:
   list them all, or pass ``commit=False`` and commit later by rotating again.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

from modelseal.crypto import envelope as env
from modelseal.crypto.api import read_envelope, write_envelope
from modelseal.crypto.providers import KeyProvider, RotatingProvider
from modelseal.errors import ProviderError, UsageError

PathLike = str | os.PathLike[str]


@dataclasses.dataclass(frozen=True)
class RotationReport:
    """What :func:`rotate` did."""

    new_kek_id: str
    rewrapped: tuple[str, ...]
    retired: tuple[str, ...]
    committed: bool

    def to_dict(self) -> dict[str, Any]:
        """This report as a JSON-ready dict."""
        return {
            "new_kek_id": self.new_kek_id,
            "rewrapped": list(self.rewrapped),
            "retired": list(self.retired),
            "committed": self.committed,
        }


def rotation_target(
    provider: KeyProvider, new_provider: KeyProvider | None
) -> tuple[KeyProvider, str]:
    """Where rotated keys go: ``new_provider``, or a new KEK that ``provider`` makes in its own
    keyset file or token (returned with its id; "" for another provider's current key)."""
    if new_provider is not None:
        return new_provider, ""
    if not isinstance(provider, RotatingProvider):
        raise UsageError(
            f"the {provider.name} provider cannot make a new key by itself",
            hint="name the new key with --new-kek",
        )
    return provider, provider.add_kek()


def rotate(
    targets: Sequence[PathLike],
    *,
    provider: KeyProvider,
    new_provider: KeyProvider | None = None,
    commit: bool = True,
) -> RotationReport:
    """Re-wrap the data keys of ``targets`` (encrypted files or directories) and, with
    ``commit``, retire the KEKs they were wrapped with (see the module docstring)."""
    if not targets:
        raise UsageError("nothing to rotate", hint="name the encrypted files and directories")
    found = [read_envelope(t) for t in targets]  # all readable before anything changes
    for (_, envelope), target in zip(found, targets, strict=True):
        if envelope.wrapped.provider != provider.name:
            raise ProviderError(
                f"{str(target)!r} is wrapped by the {envelope.wrapped.provider!r} provider, "
                f"not {provider.name!r}",
                hint="rotate it with the provider that wrapped it",
            )
    old_ids = {e.wrapped.kek_id for _, e in found}
    target_provider, new_id = rotation_target(provider, new_provider)
    rewrapped = []
    for (path, envelope), target in zip(found, targets, strict=True):
        fresh = env.rewrap(envelope, provider, target_provider)
        target_provider.unwrap(fresh.wrapped, context=fresh.context)  # prove it before replacing
        write_envelope(path, fresh)
        new_id = fresh.wrapped.kek_id
        rewrapped.append(str(target))
    retired: list[str] = []
    if commit:
        if not isinstance(provider, RotatingProvider):
            raise UsageError(
                f"the {provider.name} provider cannot retire keys",
                hint="retire the old key with the provider's own tools",
            )
        drop = retired_set(provider, new_provider, old_ids, new_id)
        provider.retire(drop)
        retired = sorted(drop)
    return RotationReport(new_id, tuple(rewrapped), tuple(retired), commit)


def retired_set(
    provider: RotatingProvider,
    new_provider: KeyProvider | None,
    old_ids: set[str],
    new_id: str,
) -> frozenset[str]:
    """The KEKs a committed rotation retires: every other KEK of the provider when it made the
    new one itself, else the ones the targets were wrapped with (never the new one)."""
    if new_provider is None:
        return frozenset(provider.kek_ids() - {new_id})
    same = new_provider.name == provider.name
    drop = frozenset(old_ids - {new_id}) if same else frozenset(old_ids)
    if provider.current_kek_id() in drop:  # the current KEK goes only with its whole store
        drop = frozenset(provider.kek_ids() - {new_id})
    return drop
