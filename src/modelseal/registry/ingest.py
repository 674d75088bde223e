"""Hash a model file while it streams in, the way its signed manifest says: one digest of the
whole file (``files``) or one per shard (``shards``), with the manifest's hash algorithm."""

from __future__ import annotations

from modelseal.hashing.algorithms import Hasher, new_hasher
from modelseal.hashing.manifest import ManifestItem, Serialization


class StreamingItems:
    """Feed bytes with :meth:`update`; :meth:`items` gives the manifest items for the file."""

    def __init__(self, path: str, serialization: Serialization) -> None:
        self.path = path
        self.serialization = serialization
        self.shard_size = serialization.shard_size if serialization.method == "shards" else None
        self._done: list[ManifestItem] = []
        self._hasher: Hasher = new_hasher(serialization.hash_type)
        self._offset = 0
        self._shard_start = 0

    def update(self, data: bytes) -> None:
        """Hash the next bytes of the stream."""
        view = memoryview(data)
        if self.shard_size is None:
            self._hasher.update(view)
            self._offset += len(view)
            return
        while view:
            room = self._shard_start + self.shard_size - self._offset
            part, view = view[:room], view[room:]
            self._hasher.update(part)
            self._offset += len(part)
            if self._offset == self._shard_start + self.shard_size:
                self._close_shard()

    def _close_shard(self) -> None:
        self._done.append(
            ManifestItem(self.path, self._hasher.digest(), self._shard_start, self._offset)
        )
        self._hasher = new_hasher(self.serialization.hash_type)
        self._shard_start = self._offset

    def items(self) -> list[ManifestItem]:
        """The manifest items of the whole stream (call once it ended)."""
        if self.shard_size is None:
            return [ManifestItem(self.path, self._hasher.digest())]
        if self._offset > self._shard_start:
            self._close_shard()
        return list(self._done)

    @property
    def size(self) -> int:
        """How many bytes were hashed."""
        return self._offset
