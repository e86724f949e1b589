"""The replay buffer: the most recent records of this run, found by seq in constant time.

A subscriber that reconnects asks for everything after the last seq it saw; if that is still
here it gets it with no gap. The hub numbers records 1, 2, 3, ... and hands every one to every
outlet, so the seqs an outlet sees are contiguous and slot `seq % capacity` holds either that
seq or a newer one that evicted it.

One writer (the hub's publisher, holding the owner's lock) and any number of readers that take no
lock: a slot read is atomic, and a reader that finds a different seq in the slot knows the one it
wanted was evicted meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

from collector.hub.queue import Sequenced

__all__ = ["ReplayBuffer"]

T = TypeVar("T", bound=Sequenced)


class ReplayBuffer(Generic[T]):
    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError("a replay buffer cannot hold fewer than 0 records")
        self.capacity = capacity
        self._slots: list[T | None] = [None] * capacity
        self._first = 0  # the first seq ever put here (an outlet added late starts above 1)
        self._newest = 0

    @property
    def newest(self) -> int:
        """The newest seq put here; 0 before the first."""
        return self._newest

    @property
    def first(self) -> int:
        """The first seq ever put here, 1 when nothing was (the stream's start)."""
        return self._first or 1

    @property
    def oldest(self) -> int:
        """The oldest seq still held; newest + 1 when nothing is held."""
        if self._newest == 0 or self.capacity == 0:
            return self._newest + 1
        return max(self._first, self._newest - self.capacity + 1)

    def __len__(self) -> int:
        return self._newest + 1 - self.oldest

    def extend(self, entries: Sequence[T]) -> None:
        """Add records in seq order, each seq one above the last; the oldest make way."""
        if not entries:
            return
        if self.capacity:
            slots, capacity = self._slots, self.capacity
            for entry in entries[-capacity:]:
                slots[entry.seq % capacity] = entry
        if self._first == 0:
            self._first = entries[0].seq
        self._newest = entries[-1].seq

    def get(self, seq: int) -> T | None:
        """The record with this seq, or None when it is not (or no longer) held."""
        if not self.capacity:
            return None
        entry = self._slots[seq % self.capacity]
        return entry if entry is not None and entry.seq == seq else None
