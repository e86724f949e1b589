"""The outlets' queue toolkit: a bounded queue from the hub's publisher to one consumer thread.

The publisher never waits: what does not fit is dropped, counted (in the queue's `lost` and in
the shared `Losses`, under the outlet's name and the reason) and stands in the stream as one
pending gap with the exact count and seq range. Which records make way depends on the outlet:

- `drop="newest"` (stdout, gRPC subscribers): records that find the queue full are turned away;
  the gap takes its place after what is queued, before anything accepted later.
- `drop="oldest"` (a receiver that catches up later, such as an OTLP collector): the oldest
  queued records make way for new ones; the gap goes before everything still queued.

A consumer that took records and could not deliver them (a write that failed, a batch a receiver
refused for good) reports them with `lost_downstream`: they become a gap of their own reason that
goes first at the next `take`, so when delivery works again the loss is the first thing said.

Entries are what the outlet queues: one record each (`offer`), or a chunk that stands for several
records (`offer_chunk`: JSON lines already joined). The capacity counts records. The queue also
remembers the highest seq it was offered, including records a filter kept out (`through`), so an
idle consumer can tell its client "everything up to here is done".
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

from collector.hub.items import Gap
from collector.hub.losses import Losses

__all__ = ["Chunk", "OutletQueue", "Sequenced"]


class Sequenced(Protocol):
    @property
    def seq(self) -> int: ...


T = TypeVar("T", bound=Sequenced)


@dataclass(slots=True)
class Chunk:
    """Several records' worth of one payload, seqs `seq`..`last_seq`, `count` of them."""

    seq: int
    last_seq: int
    count: int
    data: bytes


class OutletQueue(Generic[T]):
    def __init__(
        self,
        capacity: int,
        reason: str,
        *,
        outlet: str,
        losses: Losses | None = None,
        drop: Literal["newest", "oldest"] = "newest",
        through: int = 0,
    ) -> None:
        if capacity < 1:
            raise ValueError("a queue must hold at least one record")
        self.capacity = capacity
        self.reason = reason
        self.outlet = outlet
        self._losses = losses or Losses()
        self._drop_oldest = drop == "oldest"
        self._queue: collections.deque[T | Gap] = collections.deque()
        self._size = 0  # records in _queue (a chunk counts as its records)
        self._pending: Gap | None = None  # overflow not yet in the queue
        self._downstream: Gap | None = None  # taken but not delivered; goes first
        self._cond = threading.Condition(threading.Lock())
        self._through = through
        self._closing = False  # deliver what is queued, then end
        self._cancelled = False  # end now
        self.lost = 0  # records this queue lost, every reason

    # -- the publisher's side ---------------------------------------------------------------------

    def room(self) -> int:
        """Records that fit now; with drop="newest" only the consumer changes it, and only upward."""
        with self._cond:
            return 0 if self._cancelled else max(self.capacity - self._size, 0)

    def offer(self, entries: Sequence[T], through: int) -> None:
        """Queue what fits, one record per entry; `through` is the last seq considered."""
        with self._cond:
            if self._cancelled:
                return
            if self._drop_oldest:
                if entries:
                    self._make_room(len(entries))
                    accepted = entries[-self.capacity :]
                    if len(accepted) < len(entries):
                        cut = len(entries) - len(accepted)
                        self._overflow(entries[0].seq, entries[cut - 1].seq, cut)
                    self._queue.extend(accepted)
                    self._size += len(accepted)
            else:
                room = self.capacity - self._size
                accepted = entries[: max(room, 0)]
                if accepted:
                    self._flush_pending()
                    self._queue.extend(accepted)
                    self._size += len(accepted)
                if len(accepted) < len(entries):
                    dropped = entries[len(accepted) :]
                    self._overflow(dropped[0].seq, dropped[-1].seq, len(dropped))
            self._through = max(self._through, through)
            if entries:
                self._cond.notify()

    def offer_chunk(self, chunk: Chunk) -> None:
        """Queue a chunk the publisher made to fit (`room()`); drop="newest" only."""
        with self._cond:
            if self._cancelled:
                return
            self._flush_pending()
            self._queue.append(chunk)  # type: ignore[arg-type]
            self._size += chunk.count
            self._through = max(self._through, chunk.last_seq)
            self._cond.notify()

    def drop(self, first_seq: int, last_seq: int, count: int) -> None:
        """Records the publisher turned away because they did not fit: counted, and a gap (also
        after a cancel, when nothing is delivered any more but the loss still counts)."""
        with self._cond:
            self._overflow(first_seq, last_seq, count)
            self._through = max(self._through, last_seq)
            self._cond.notify()

    def _flush_pending(self) -> None:
        if self._pending is not None:
            self._queue.append(self._pending)
            self._pending = None

    def _make_room(self, wanted: int) -> None:
        """drop="oldest": evict queued records until `wanted` more fit. In this mode the queue
        holds only records (its gap waits in front, and chunks are not offered)."""
        queue = self._queue
        evict = min(self._size + wanted - self.capacity, len(queue))
        if evict <= 0:
            return
        first = last = 0
        for i in range(evict):
            entry = queue.popleft()
            assert not isinstance(entry, (Gap, Chunk))
            if i == 0:
                first = entry.seq
            last = entry.seq
        self._size -= evict
        self._overflow(first, last, evict)

    def _overflow(self, first_seq: int, last_seq: int, count: int) -> None:
        gap = self._pending
        if gap is None:
            gap = self._pending = Gap(0, self.reason, time.time_ns(), first_seq, last_seq)
        gap.lost += count
        gap.first_seq = first_seq if gap.first_seq is None else min(gap.first_seq, first_seq)
        gap.last_seq = last_seq if gap.last_seq is None else max(gap.last_seq, last_seq)
        self.lost += count
        self._losses.count(self.outlet, self.reason, count)

    # -- the consumer's side ----------------------------------------------------------------------

    def lost_downstream(self, first_seq: int | None, last_seq: int | None, count: int, reason: str) -> None:
        """Records taken from this queue that could not be delivered: a gap that goes first."""
        if count <= 0:
            return
        with self._cond:
            gap = self._downstream
            if gap is None:
                gap = self._downstream = Gap(0, reason, time.time_ns(), first_seq, last_seq)
            gap.lost += count
            if first_seq is not None:
                gap.first_seq = first_seq if gap.first_seq is None else min(gap.first_seq, first_seq)
            if last_seq is not None:
                gap.last_seq = last_seq if gap.last_seq is None else max(gap.last_seq, last_seq)
            self.lost += count
            self._losses.count(self.outlet, reason, count)
            self._cond.notify()

    def take(self, timeout: float) -> list[T | Gap] | None:
        """Everything queued, in stream order with its gaps; [] after `timeout` seconds with
        nothing to take; None once cancelled, or closed and empty."""
        with self._cond:
            if not self._ready():
                self._cond.wait(timeout)
            if self._cancelled:
                return None
            batch: list[T | Gap] = []
            if self._downstream is not None:
                batch.append(self._downstream)
                self._downstream = None
            if self._drop_oldest and self._pending is not None:
                batch.append(self._pending)
                self._pending = None
            batch.extend(self._queue)
            self._queue.clear()
            self._size = 0
            if self._pending is not None:
                batch.append(self._pending)
                self._pending = None
            if not batch and self._closing:
                return None
            return batch

    def _ready(self) -> bool:
        return bool(
            self._queue
            or self._pending is not None
            or self._downstream is not None
            or self._closing
            or self._cancelled
        )

    def idle_through(self) -> int | None:
        """The last seq considered, when nothing is queued or pending (else None)."""
        with self._cond:
            if self._queue or self._pending is not None or self._downstream is not None:
                return None
            return self._through

    def __len__(self) -> int:
        """Records queued (a chunk counts as its records)."""
        return self._size

    def close(self) -> None:
        """The consumer takes what is queued, then `take` returns None."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()

    def cancel(self) -> int:
        """`take` returns None at once; later offers are ignored. Returns the records it held,
        which the caller counts as lost if they matter."""
        with self._cond:
            self._cancelled = True
            held = self._size
            self._queue.clear()
            self._size = 0
            self._pending = None
            self._cond.notify_all()
            return held
