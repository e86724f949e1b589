"""Every record an outlet lost, counted in one place, by outlet and reason.

The outlets' queues report their losses here as they happen; the metrics and the stop line read
them from here. Losses are rare, so a lock is cheap enough.
"""

from __future__ import annotations

import threading
from collections import Counter

__all__ = ["Losses"]


class Losses:
    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def count(self, outlet: str, reason: str, lost: int) -> None:
        if lost:
            with self._lock:
                self._counts[outlet, reason] += lost

    def of(self, outlet: str) -> int:
        """Everything `outlet` lost, all reasons."""
        with self._lock:
            return sum(n for (name, _), n in self._counts.items() if name == outlet)

    def by_reason(self) -> dict[tuple[str, str], int]:
        """(outlet, reason) -> records lost."""
        with self._lock:
            return dict(self._counts)

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())
