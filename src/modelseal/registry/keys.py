"""Rotate the data keys the registry holds: re-wrap every encrypted version's data key under a
new key-encryption key, without touching a byte of ciphertext, then retire the old KEK.

The rotating client holds the KEKs (the registry never does); the registry swaps the wrapped
keys in one transaction with one audit record (``keys.rotate``: how many, from which KEKs, to
which, and which KEKs are being retired). The phases are those of
:func:`modelseal.crypto.rotation.rotate`:

1. every wrapped key is fetched and unwrapped first (any failure stops before a change); a new
   KEK is made current (``add_kek``) or ``new_provider`` names one;
2. each data key is wrapped again, the new wrap is checked to unwrap, and the registry replaces
   all of them at once (compare-and-swap on the old wrapped key: a concurrent change aborts it);
3. commit: the old KEKs are retired, so old wrapped keys (database backups, copies) stop
   unwrapping. An interrupted rotation can be run again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelseal.crypto.rotation import RotationReport, retired_set, rotation_target
from modelseal.errors import UsageError
from modelseal.registry.datakeys import ListVersionKeys, RotateVersionKeys
from modelseal.registry.views import KeyChange

if TYPE_CHECKING:
    from modelseal.crypto.providers import KeyProvider
    from modelseal.registry.backend import Backend


def rotate_version_keys(
    backend: Backend,
    *,
    provider: KeyProvider,
    new_provider: KeyProvider | None = None,
    commit: bool = True,
) -> RotationReport:
    """Re-wrap the data keys of every encrypted version wrapped by ``provider``'s KEKs."""
    from modelseal.crypto import envelope as env
    from modelseal.crypto.providers import RotatingProvider

    stored = backend.call(ListVersionKeys(provider=provider.name))
    if isinstance(provider, RotatingProvider):
        # Keys of the same scheme under other KEKs (another file, another token) stay as they are.
        mine = provider.kek_ids()
        stored = [k for k in stored if k.kek_id in mine]
    if not stored:
        raise UsageError(
            f"no version in the registry has a data key wrapped by this {provider.name} KEK",
            hint="check --kek",
        )
    found = [(k, env.from_dict(k.envelope)) for k in stored]
    # Unwrap everything before anything changes: a key that does not unwrap stops the rotation.
    plain = [provider.unwrap(e.wrapped, context=e.context) for _, e in found]
    old_ids = {e.wrapped.kek_id for _, e in found}
    target, new_id = rotation_target(provider, new_provider)
    changes = []
    for (key, envelope), data_key in zip(found, plain, strict=True):
        fresh = env.Envelope(
            target.wrap(data_key, context=envelope.context), envelope.associated_data_sha256
        )
        target.unwrap(fresh.wrapped, context=fresh.context)  # prove it before replacing
        new_id = fresh.wrapped.kek_id
        changes.append(
            KeyChange(model=key.model, version=key.version, old=key.envelope, new=fresh.to_dict())
        )
    drop: frozenset[str] = frozenset()
    if commit:
        if not isinstance(provider, RotatingProvider):
            raise UsageError(
                f"the {provider.name} provider cannot retire keys",
                hint="retire the old key with the provider's own tools, or pass --keep-old",
            )
        drop = retired_set(provider, new_provider, old_ids, new_id)
    backend.call(RotateVersionKeys(changes=changes, new_kek_id=new_id, retiring=sorted(drop)))
    if commit:
        assert isinstance(provider, RotatingProvider)
        provider.retire(drop)
    return RotationReport(
        new_id, tuple(f"{c.model}:{c.version}" for c in changes), tuple(sorted(drop)), commit
    )
