"""The models the metrics check runs: loaded only from bytes verified against a signer the
policy trusts, and scanned, by modelseal's Load capability (:func:`load_verified`; TorchScript
included). The baseline is pulled from the registry (verified against the registry's record)
and then loaded the same way, under the policy's signers: a baseline nobody the policy trusts
has signed is not compared with.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelseal.policy.signature_check import Signer

if TYPE_CHECKING:
    from modelseal.signing.bundle import OmsBundle

# The policy's framework names -> load_verified's.
_LOADERS = {
    "auto": "auto",
    "sklearn": "pickle",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "onnx": "onnx",
    "torchscript": "torchscript",
}


def load_model(
    path: Path, bundle: OmsBundle, signer: Signer, framework: str, allow: Sequence[str]
) -> tuple[Any, str]:
    """The model object at ``path`` and its manifest digest, verified against ``bundle`` with
    ``signer``'s key or anchors, scanned (``allow``: the policy's extra pickle globals), then
    loaded. Raises the :class:`~modelseal.errors.ModelsealError` that stopped it."""
    from modelseal.loading.verified import load_verified

    loaded = load_verified(
        path,
        signature=bundle,
        public_key=signer.public_key,
        trust=list(signer.anchors) or None,
        framework=_LOADERS[framework],
        allow=allow,
    )
    return loaded.obj, loaded.verification.root_digest
