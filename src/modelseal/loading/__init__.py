"""Loading model files safely (restricted unpickling; verified loading builds on it)."""

from __future__ import annotations

from modelseal.errors import UnsafePickleError
from modelseal.loading.safe_pickle import RestrictedUnpickler, safe_load, safe_loads

__all__ = ["RestrictedUnpickler", "UnsafePickleError", "safe_load", "safe_loads"]
