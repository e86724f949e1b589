"""A subscriber's bounded queue: it never blocks the publisher, and overflow becomes a gap.

The publisher offers records; what does not fit is dropped and counted into one pending gap
(how many, first and last seq, why). The gap takes its place in the queue as soon as there is
room again, so the consumer sees records and gaps in seq order: nothing is lost silently.

The queue also remembers the highest seq it was offered, including records a filter kept out
(`through`), so an idle consumer can tell its client "everything up to here is done".
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Sequence
from typing import Generic, TypeVar

from collector.hub.items import Gap
from collector.hub.replay import Sequenced

__all__ = ["GapQueue"]

T = TypeVar("T", bound=Sequenced)


class GapQueue(Generic[T]):
    def __init__(self, capacity: int, reason: str, through: int = 0) -> None:
        if capacity < 1:
            raise ValueError("a queue must hold at least one record")
        self.capacity = capacity
        self.reason = reason
        self._queue: collections.deque[T | Gap] = collections.deque()
        self._pending: Gap | None = None
        self._cond = threading.Condition(threading.Lock())
        self._through = through
        self._closing = False  # deliver what is queued, then end
        self._cancelled = False  # end now
        self.lost = 0  # records dropped because the queue was full

    def offer(self, entries: Sequence[T], through: int) -> None:
        """Queue what fits, count the rest; `through` is the last seq considered. Never blocks."""
        with self._cond:
            if self._cancelled:
                return
            room = self.capacity - len(self._queue)
            accepted = entries[: max(room, 0)]
            if accepted:
                if self._pending is not None:
                    self._queue.append(self._pending)
                    self._pending = None
                self._queue.extend(accepted)
            if len(accepted) < len(entries):
                dropped = entries[len(accepted) :]
                gap = self._pending
                if gap is None:
                    gap = self._pending = Gap(0, self.reason, time.time_ns(), dropped[0].seq)
                gap.lost += len(dropped)
                gap.last_seq = dropped[-1].seq
                self.lost += len(dropped)
            self._through = max(self._through, through)
            if entries:
                self._cond.notify()

    def take(self, timeout: float) -> list[T | Gap] | None:
        """Everything queued, oldest first, the pending gap last; [] after `timeout` seconds
        with nothing to take; None once cancelled, or closed and empty."""
        with self._cond:
            if not self._ready():
                self._cond.wait(timeout)
            if self._cancelled:
                return None
            batch: list[T | Gap] = list(self._queue)
            self._queue.clear()
            if self._pending is not None:
                batch.append(self._pending)
                self._pending = None
            if not batch and self._closing:
                return None
            return batch

    def _ready(self) -> bool:
        return bool(self._queue) or self._pending is not None or self._closing or self._cancelled

    def idle_through(self) -> int | None:
        """The last seq considered, when nothing is queued or pending (else None)."""
        with self._cond:
            if self._queue or self._pending is not None:
                return None
            return self._through

    def __len__(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        """The consumer takes what is queued, then `take` returns None."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()

    def cancel(self) -> None:
        """`take` returns None at once; later offers are ignored."""
        with self._cond:
            self._cancelled = True
            self._queue.clear()
            self._pending = None
            self._cond.notify_all()
