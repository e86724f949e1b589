"""The hub numbers every record and hands it to every outlet without waiting for any."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from typing import Protocol

from collector.hub.items import Item, Record
from collector.hub.losses import Losses

__all__ = ["Hub", "Outlet"]


class Outlet(Protocol):
    """An output. `publish` must not block: an outlet that cannot keep up drops and counts."""

    name: str
    reasons: tuple[str, ...]  # the gap reasons it can lose records for (for the metrics)

    def publish(self, items: Sequence[Item]) -> None: ...

    def close(self, timeout: float) -> None:
        """Deliver what is queued, waiting at most `timeout` seconds, then stop."""
        ...


class Hub:
    def __init__(self, outlets: Sequence[Outlet] = (), stream_id: str | None = None) -> None:
        # Unique per run, so a consumer can tell a restarted collector's seq 1 from this one's.
        self.stream_id = stream_id or str(uuid.uuid4())
        # Every outlet's losses, counted in one place: the metrics and the stop line read them here.
        self.losses = Losses()
        self._outlets = list(outlets)
        self._next_seq = 1
        self._lock = threading.Lock()

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    def add_outlet(self, outlet: Outlet) -> None:
        with self._lock:
            self._outlets.append(outlet)

    def publish(self, records: Sequence[Record]) -> list[Item]:
        if not records:
            return []
        with self._lock:
            first = self._next_seq
            self._next_seq += len(records)
            items = [Item(seq, record) for seq, record in enumerate(records, first)]
            outlets = list(self._outlets)
            # Publishing under the lock keeps every outlet's view in seq order.
            for outlet in outlets:
                outlet.publish(items)
        return items

    def close(self, timeout: float = 5.0) -> None:
        with self._lock:
            outlets, self._outlets = self._outlets, []
        for outlet in outlets:
            outlet.close(timeout)
