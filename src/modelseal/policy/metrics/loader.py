"""The models the metrics check runs: loaded only from bytes verified against a signer the
policy trusts, and scanned, by modelseal's Load capability (:func:`load_verified`).

TorchScript, which :func:`load_verified` does not turn into a module, is verified into memory
(``verify_outcome``), scanned there, and handed to ``torch.jit.load`` from those bytes. The
baseline is pulled from the registry (verified against the registry's record) and then loaded
the same way, under the policy's signers: a baseline nobody the policy trusts has signed is
not compared with.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelseal.errors import TensorFormatError, UnsafeModelError, UsageError
from modelseal.policy.signature_check import Signer

if TYPE_CHECKING:
    from modelseal.registry.backend import Backend
    from modelseal.signing.bundle import OmsBundle

# The policy's framework names -> load_verified's.
_LOADERS = {
    "auto": "auto",
    "sklearn": "pickle",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "onnx": "onnx",
}


def load_model(
    path: Path, bundle: OmsBundle, signer: Signer, framework: str, allow: Sequence[str]
) -> tuple[Any, str]:
    """The model object at ``path`` and its manifest digest, verified against ``bundle`` with
    ``signer``'s key or anchors, scanned (``allow``: the policy's extra pickle globals), then
    loaded. Raises the :class:`~modelseal.errors.ModelsealError` that stopped it."""
    from modelseal.loading.verified import load_verified

    if framework == "torchscript":
        return _torchscript(path, bundle, signer, allow)
    try:
        loaded = load_verified(
            path,
            signature=bundle,
            public_key=signer.public_key,
            trust=list(signer.anchors) or None,
            framework=_LOADERS[framework],
            allow=allow,
        )
    except TensorFormatError:
        if framework != "auto":
            raise
        # A PyTorch archive that is not a plain state dict: TorchScript, or refused there.
        return _torchscript(path, bundle, signer, allow)
    return loaded.obj, loaded.verification.root_digest


def _torchscript(
    path: Path, bundle: OmsBundle, signer: Signer, allow: Sequence[str]
) -> tuple[Any, str]:
    from modelseal.policy.scan_check import scan_buffers
    from modelseal.signing.api import verify_outcome

    result, outcome = verify_outcome(
        path,
        signature=bundle,
        public_key=signer.public_key,
        trust_anchors=signer.anchors,
        reader="capture",
    )
    buffers = outcome.captured
    report = scan_buffers(buffers, allow)
    if report["status"] != "clean":
        raise UnsafeModelError(
            f"refusing to load {path.name}: its scan is {report['status']}",
            hint="run 'modelseal scan' for details; nothing was loaded",
        )
    if list(buffers) != ["."]:
        raise TensorFormatError(
            f"{path.name}: a TorchScript model is one file", hint="gate the .pt file itself"
        )
    try:
        import torch
    except ImportError:
        raise UsageError(
            "loading a TorchScript model needs the torch package",
            hint='pip install "modelseal[torch]"',
        ) from None
    try:
        stream = io.BytesIO(bytes(buffers["."]))
        module = torch.jit.load(stream, map_location="cpu")  # type: ignore[no-untyped-call]
        return module.eval(), result.root_digest
    except RuntimeError as exc:
        raise TensorFormatError(
            f"{path.name}: not a TorchScript model ({str(exc).strip().splitlines()[0]})",
            hint="export with torch.jit.save, or to ONNX",
        ) from None


@contextmanager
def pulled(backend: Backend, ref: str) -> Iterator[tuple[Any, Path]]:
    """A registry version pulled (verified against the registry's record) into a private
    temporary folder, removed afterwards: (version info, model path)."""
    from modelseal.registry.backend import pull
    from modelseal.registry.models import VersionRef

    top = Path(tempfile.mkdtemp(prefix="modelseal-baseline-"))
    try:
        top.chmod(0o700)
        info = pull(backend, VersionRef.parse(ref), top / "model")
        yield info, top / "model"
    finally:
        shutil.rmtree(top, ignore_errors=True)
