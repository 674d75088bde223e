"""Failed-authentication limiting per source address: a client that keeps sending bad tokens is
refused for a while (HTTP 429, ``Retry-After``) before its tokens are even looked up.

Tokens carry 256 random bits, so this is not what keeps them secret; it keeps a misconfigured or
hostile client from costing the registry a database lookup (and an audit record) per attempt at
full speed, and makes such a client visible in the audit log.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable

from modelseal.errors import RateLimitedError


class FailureLimiter:
    """Allow ``limit`` failures per source within any ``window`` seconds; a source that reached
    it is refused (without counting more failures) until the oldest of those ``limit`` failures
    is ``window`` seconds old. Keeps at most ``sources`` addresses (the least recently failing
    are forgotten first). ``limit=0`` disables it."""

    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        *,
        sources: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self._sources = sources
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: collections.OrderedDict[str, collections.deque[float]] = (
            collections.OrderedDict()
        )
        # Refusals of each source since it was last allowed (for aggregated audit records).
        self._refusals: dict[str, int] = {}

    def check(self, source: str) -> None:
        """Raise :class:`RateLimitedError` if ``source`` is over its limit now."""
        if self.limit <= 0:
            return
        with self._lock:
            seen = self._recent(source)
            if seen is None or len(seen) < self.limit:
                self._refusals.pop(source, None)
                return
            retry = max(0.0, seen[0] + self.window - self._clock())
            refusals = self._refusals[source] = self._refusals.get(source, 0) + 1
        error = RateLimitedError(
            f"too many failed authentications from {source or 'this address'}",
            hint=f"check the token; retry in {math.ceil(retry)} s",
            retry_after=retry,
        )
        error.refusals = refusals
        raise error

    def failed(self, source: str) -> None:
        """Count one failed authentication from ``source``."""
        if self.limit <= 0:
            return
        with self._lock:
            seen = self._recent(source)
            if seen is None:
                seen = self._failures[source] = collections.deque(maxlen=self.limit)
                while len(self._failures) > self._sources:
                    forgotten, _ = self._failures.popitem(last=False)
                    self._refusals.pop(forgotten, None)
            seen.append(self._clock())
            self._failures.move_to_end(source)

    def _recent(self, source: str) -> collections.deque[float] | None:
        seen = self._failures.get(source)
        if seen is None:
            return None
        horizon = self._clock() - self.window
        while seen and seen[0] <= horizon:
            seen.popleft()
        if not seen:
            del self._failures[source]
            self._refusals.pop(source, None)
            return None
        return seen


def worth_recording(refusals: int) -> bool:
    """Whether the ``refusals``-th refusal of a blocked source gets an audit record: the 1st,
    2nd, 4th, 8th... so a client hammering the server grows the log logarithmically, and each
    record says how many refusals it stands for."""
    return refusals > 0 and refusals & (refusals - 1) == 0
