"""modelseal's pytest plugin: fixtures for your own model tests.

Installed with modelseal (entry point ``pytest11``); nothing is imported until a fixture is
used. Fixtures:

``modelseal_keys``
    A fresh ECDSA P-256 key pair on disk (:class:`KeyPair`: ``private``, ``public``), the
    private key unencrypted and 0600, for tests only.
``modelseal_sign``
    ``modelseal_sign(path)`` signs a model file or directory with ``modelseal_keys`` and returns
    the signature's path.
``modelseal_registry``
    An empty embedded registry in a temporary home (:class:`TemporaryRegistry`): ``push``,
    ``pull`` and ``call`` (any registry operation), as its local administrator.
``verified_model``
    ``verified_model(path, signature, trust)`` loads a model only if it verifies against
    ``trust`` (a public key file, or a list of CA certificate files for certificate
    signatures) and scans clean, exactly as :func:`modelseal.load` does.

The gate as tests: ``pytest --modelseal-policy POLICY --modelseal-model REF`` adds one test
item per check of the policy (see :mod:`modelseal.testing.gate_items`); ``--junitxml`` gives
every CI a report of each check.

Example::

    def test_my_model_is_signed(modelseal_sign, modelseal_keys, verified_model):
        signature = modelseal_sign("model.safetensors")
        weights = verified_model("model.safetensors", signature, modelseal_keys.public)
        assert "encoder.weight" in weights
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from modelseal.registry.backend import LocalBackend
    from modelseal.registry.views import VersionView

OutT = TypeVar("OutT")
PathLike = str | os.PathLike[str]


def pytest_addoption(parser: pytest.Parser) -> None:
    """The ``--modelseal-*`` options of the gate."""
    from modelseal.testing.gate_items import add_options

    add_options(parser)


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """With ``--modelseal-policy``: one item per check of the policy, first."""
    if config.getoption("modelseal_policy", None):
        from modelseal.testing.gate_items import add_items

        add_items(session, config, items)


@dataclasses.dataclass(frozen=True)
class KeyPair:
    """A signing key pair on disk."""

    private: Path
    public: Path


@pytest.fixture
def modelseal_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    """A fresh ECDSA P-256 key pair (private key unencrypted, 0600: for tests only)."""
    from modelseal.signing.keys import generate_key, write_key_pair

    folder = tmp_path_factory.mktemp("modelseal-keys")
    pair = KeyPair(folder / "signer.key", folder / "signer.pub")
    write_key_pair(generate_key("ecdsa-p256"), pair.private, pair.public, passphrase=None)
    return pair


@pytest.fixture
def modelseal_sign(
    modelseal_keys: KeyPair, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[PathLike], Path]:
    """``sign(path)``: sign a model with ``modelseal_keys``; the signature's path."""
    import modelseal

    folder = tmp_path_factory.mktemp("modelseal-signatures")

    def sign(path: PathLike) -> Path:
        signature = folder / f"{Path(path).name or 'model'}.sig"
        modelseal.sign(path, private_key=modelseal_keys.private, signature=signature)
        return signature

    return sign


class TemporaryRegistry:
    """An embedded registry in a temporary home, used as its local administrator."""

    def __init__(self, home: Path) -> None:
        from modelseal.registry.backend import LocalBackend
        from modelseal.registry.config import RegistryConfig

        self.home = home
        self.config = RegistryConfig.resolve(home=home)
        self.backend: LocalBackend = LocalBackend.open(self.config)

    def call(self, operation: Any) -> Any:
        """Run any registry operation (see :mod:`modelseal.registry.catalogue`)."""
        return self.backend.call(operation)

    def push(
        self,
        model: PathLike,
        *,
        name: str,
        signature: PathLike,
        public_key: PathLike | None = None,
        **options: Any,
    ) -> VersionView:
        """Publish a signed model as the next version of ``name``."""
        from modelseal.registry.backend import push

        return push(self.backend, model, name=name, signature=signature, public_key=public_key,
                    **options)  # fmt: skip

    def pull(self, ref: str, dest: PathLike, **options: Any) -> VersionView:
        """Download ``ref`` (``NAME[:VERSION|@ALIAS]``) into ``dest``, verified."""
        from modelseal.registry.backend import pull
        from modelseal.registry.models import VersionRef

        return pull(self.backend, VersionRef.parse(ref), dest, **options)

    def close(self) -> None:
        """Close the registry's database."""
        self.backend.close()


@pytest.fixture
def modelseal_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporaryRegistry]:
    """An empty embedded registry (SQLite and a local blob folder) in a temporary home."""
    registry = TemporaryRegistry(tmp_path_factory.mktemp("modelseal-registry"))
    try:
        yield registry
    finally:
        registry.close()


@pytest.fixture
def verified_model() -> Callable[..., Any]:
    """``verified_model(path, signature, trust, **options)``: the loaded model, only if it
    verifies against ``trust`` (a public key file, or CA certificate files) and scans clean."""
    import modelseal

    def load(
        path: PathLike, signature: PathLike, trust: PathLike | Sequence[PathLike], **options: Any
    ) -> Any:
        if isinstance(trust, str | os.PathLike):
            return modelseal.load(path, signature=signature, public_key=trust, **options)
        return modelseal.load(path, signature=signature, trust=list(trust), **options)

    return load
