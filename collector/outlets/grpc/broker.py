"""The gRPC outlet's core: the replay buffer, the subscribers, and what each one is sent.

Threads and locks:

- `publish` runs on the hub's publishing thread (the ring reader). It encodes each record once,
  then, holding `_lock` only for that, adds the entries to the replay buffer and reads the
  subscriber list; it then offers the entries that pass each subscriber's filters to that
  subscriber's OutletQueue, whose lock is held only for a deque append. It never waits for a
  subscriber: a full queue drops and counts.
- Each subscription's `responses` runs on its own gRPC worker thread: it replays from the buffer
  without any lock (a slot that was overwritten meanwhile shows up as a different seq), then
  takes batches from its queue. Sending may block on a slow client; only this thread waits.
- Subscribing takes `_lock` to read the newest seq and join the list in one step, so the replay
  (up to that seq) and the live queue (after it) meet with nothing missing and nothing twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from collector._proto.execlog.v1 import execlog_pb2 as pb
from collector.event import ExecEvent
from collector.hub import (
    RESUME_POINT_LOST,
    SUBSCRIBER_TOO_SLOW,
    Gap,
    Item,
    Losses,
    OutletQueue,
    ReplayBuffer,
    record_type,
)
from collector.k8s import ProcessRecord, Workload
from collector.outlets.grpc.filters import FilterError, FilterSet, compile_filters
from collector.outlets.grpc.wire import Encoder, batch_responses
from collector.policy import SuppressedRecord

__all__ = ["OUTLET_NAME", "Broker", "Entry", "SubscribeError", "Subscription"]

OUTLET_NAME = "grpc"

log = logging.getLogger("execlog.grpc")

_NAME_MAX = 64
_BATCH_MAX = 4096  # a client may ask for fewer records per response, not more
_REPLAY_CHUNK = 512  # replayed records handed on at a time
_BINARIES_MAX = 4096  # distinct binaries whose filter tuple is shared


@dataclass(slots=True)
class Entry:
    """One record, encoded, with what filters look at. Shared by the buffer and every queue.

    The serialized response is `own + shared`: `shared` is one bytes object per container that
    all its records reference, so that the replay buffer holds a container's labels and cgroup
    names once rather than in each of its records."""

    seq: int
    own: bytes
    shared: bytes = b""
    workload: Workload | None = None
    binaries: tuple[str, ...] = ()
    gap: bool = False  # gaps pass every filter

    @property
    def data(self) -> bytes:
        return self.own + self.shared if self.shared else self.own


class SubscribeError(Exception):
    """The subscription is refused; `kind` maps to a gRPC status code."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "invalid", "out_of_range", "exhausted", "unavailable"


@dataclass(slots=True, eq=False)
class Subscription:
    id: int
    name: str
    peer: str
    filters: FilterSet
    queue: OutletQueue[Entry]
    replay_from: int  # first seq to replay
    live_after: int  # the replay ends here; the queue holds what comes after
    prelude: list[bytes]  # gaps to send before anything else
    broker: Broker
    max_batch: int = 1  # records per response; above 1 every response is a Batch
    connected_ns: int = field(default_factory=time.time_ns)
    # Written by this subscription's thread only; read by anyone (an int read is atomic).
    sent: int = 0
    replay_lost: int = 0  # records evicted before a slow replay reached them
    # Records taken from the queue and being handed to gRPC, which holds them up while the
    # client does not read: at a stop, they may never reach it.
    in_flight: int = 0

    @property
    def lost(self) -> int:
        return self.queue.lost + self.replay_lost

    def offer(self, entries: Sequence[Entry]) -> None:
        """On the publisher's thread: queue what passes the filters."""
        through = entries[-1].seq
        filters = self.filters
        if not filters.everything:
            entries = [e for e in entries if e.gap or filters.passes(e.workload, e.binaries)]
        self.queue.offer(entries, through)

    def responses(self) -> Iterator[bytes]:
        """On this subscriber's worker thread: the serialized responses, until closed."""
        if self.max_batch <= 1:
            for chunk in self._chunks():
                yield from chunk
            return
        for chunk in self._chunks():
            for first in range(0, len(chunk), self.max_batch):
                yield from batch_responses(chunk[first : first + self.max_batch])

    def _chunks(self) -> Iterator[list[bytes]]:
        """Responses in the groups they become ready in, so a client never waits for a batch
        to fill."""
        encoder = self.broker.encoder
        if self.prelude:
            yield self.prelude
        yield from self._replay()
        yield [encoder.checkpoint(self.live_after)]
        position = self.live_after
        interval = self.broker.checkpoint_interval
        while True:
            batch = self.queue.take(interval)
            if batch is None:
                break
            if not batch:
                through = self.queue.idle_through()
                if through is not None and through > position:
                    position = through
                    yield [encoder.checkpoint(position)]
                continue
            chunk: list[bytes] = []
            gaps = 0
            for entry in batch:
                if isinstance(entry, Gap):
                    chunk.append(encoder.gap(entry))
                    position = entry.last_seq or position
                    gaps += 1
                else:
                    chunk.append(entry.data)
                    position = entry.seq
            self.sent += len(chunk) - gaps
            self.in_flight = len(chunk) - gaps
            yield chunk
            self.in_flight = 0
        # Closed and drained: say how far this subscriber got, for its next resume.
        through = self.queue.idle_through()
        if through is not None and through > position:
            yield [encoder.checkpoint(through)]

    def _replay(self) -> Iterator[list[bytes]]:
        replay, filters, encoder = self.broker.replay, self.filters, self.broker.encoder
        seq, end = self.replay_from, self.live_after
        chunk: list[bytes] = []
        records = 0  # in chunk, not counting gaps
        while seq <= end:
            entry = replay.get(seq)
            if entry is None:
                # Overtaken by eviction while replaying: this subscriber was too slow.
                resume = min(max(replay.oldest, seq + 1), end + 1)
                lost = resume - seq
                self.replay_lost += lost
                self.broker.losses.count(OUTLET_NAME, SUBSCRIBER_TOO_SLOW, lost)
                chunk.append(encoder.gap(Gap(lost, SUBSCRIBER_TOO_SLOW, time.time_ns(), seq, resume - 1)))
                seq = resume
                continue
            if entry.gap or filters.everything or filters.passes(entry.workload, entry.binaries):
                chunk.append(entry.data)
                records += 1
                if len(chunk) >= _REPLAY_CHUNK:
                    self.sent += records
                    yield chunk
                    chunk, records = [], 0
            seq += 1
        self.sent += records
        if chunk:
            yield chunk


class Broker:
    """The replay buffer and the subscribers. `publish` is the hub-facing half of the outlet."""

    def __init__(
        self,
        stream_id: str,
        node: str,
        *,
        replay_capacity: int = 100_000,
        queue_capacity: int = 10_000,
        max_subscribers: int = 64,
        checkpoint_interval: float = 2.0,
        losses: Losses | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.losses = losses or Losses()
        self.encoder = Encoder(stream_id, node)
        self.replay: ReplayBuffer[Entry] = ReplayBuffer(replay_capacity)
        self.queue_capacity = queue_capacity
        self.max_subscribers = max_subscribers
        self.checkpoint_interval = checkpoint_interval
        self._lock = threading.Lock()
        self._subscribers: tuple[Subscription, ...] = ()
        self._next_id = 1
        self._closed = False
        self._left = threading.Condition(self._lock)
        self._binaries: dict[str, tuple[str, ...]] = {}
        # How each record type becomes an Entry: a process record's event type, or the record's.
        self._entries: dict[type, Callable[[Item], Entry]] = {
            ExecEvent: self._exec_entry,
            SuppressedRecord: self._suppressed_entry,
            Gap: self._gap_entry,
        }

    # -- the publisher's side -------------------------------------------------------------------

    def _exec_entry(self, item: Item) -> Entry:
        record = item.record
        assert type(record) is ProcessRecord and type(record.event) is ExecEvent
        own, shared = self.encoder.exec_parts(item.seq, record)
        return Entry(item.seq, own, shared, record.workload, self._binary(record.event.filename))

    def _suppressed_entry(self, item: Item) -> Entry:
        record = item.record
        assert type(record) is SuppressedRecord
        return Entry(
            item.seq,
            self.encoder.item(item),
            workload=record.workload,
            binaries=tuple(n for n, _ in record.top_binaries),
        )

    def _gap_entry(self, item: Item) -> Entry:
        return Entry(item.seq, self.encoder.item(item), gap=True)

    def _binary(self, filename: str) -> tuple[str, ...]:
        """One tuple per binary for the filters, shared by its records (a node runs few)."""
        binaries = self._binaries.get(filename)
        if binaries is None:
            if len(self._binaries) >= _BINARIES_MAX:
                self._binaries.clear()
            binaries = self._binaries[filename] = (filename,)
        return binaries

    def publish(self, items: Sequence[Item]) -> None:
        if not items:
            return
        table = self._entries
        entries = [table[record_type(item.record)](item) for item in items]
        with self._lock:
            if self._closed:
                return
            self.replay.extend(entries)
            subscribers = self._subscribers
        for subscription in subscribers:
            subscription.offer(entries)

    # -- the subscribers' side ------------------------------------------------------------------

    def subscribe(self, request: pb.SubscribeRequest, peer: str) -> Subscription:
        try:
            filters = compile_filters(request.allow, request.deny)
        except FilterError as exc:
            raise SubscribeError("invalid", str(exc)) from exc
        if request.resume_after and not request.stream_id:
            raise SubscribeError("invalid", "resume_after needs the stream_id it belongs to")
        now = time.time_ns()
        with self._lock:
            if self._closed:
                raise SubscribeError("unavailable", "the collector is stopping")
            if len(self._subscribers) >= self.max_subscribers:
                raise SubscribeError(
                    "exhausted", f"the collector already serves {self.max_subscribers} subscribers"
                )
            newest, oldest = self.replay.newest, self.replay.oldest
            prelude: list[bytes] = []
            if not request.stream_id:
                start = newest + 1  # live only
            elif request.stream_id == self.stream_id:
                if request.resume_after > newest:
                    raise SubscribeError(
                        "out_of_range",
                        f"resume_after {request.resume_after} is past the last seq {newest} of this stream",
                    )
                start = request.resume_after + 1
                if start < oldest:
                    gap = Gap(oldest - start, RESUME_POINT_LOST, now, start, oldest - 1)
                    prelude.append(self.encoder.gap(gap))
                    start = oldest
            else:
                # A stream of an earlier run: what it had after resume_after is unknown. This
                # run's records are all new to the client, so it gets what is still held of them.
                old = Gap(0, RESUME_POINT_LOST, now, request.resume_after + 1, None)
                prelude.append(self.encoder.gap(old, stream_id=request.stream_id))
                first = self.replay.first
                if oldest > first:
                    prelude.append(
                        self.encoder.gap(Gap(oldest - first, RESUME_POINT_LOST, now, first, oldest - 1))
                    )
                start = oldest
            name = (request.client_name or peer)[:_NAME_MAX]
            subscription = Subscription(
                id=self._next_id,
                name=name,
                peer=peer,
                filters=filters,
                queue=OutletQueue(
                    self.queue_capacity,
                    SUBSCRIBER_TOO_SLOW,
                    outlet=OUTLET_NAME,
                    losses=self.losses,
                    through=newest,
                ),
                replay_from=start,
                live_after=newest,
                prelude=prelude,
                broker=self,
                max_batch=min(request.max_batch, _BATCH_MAX),
            )
            self._next_id += 1
            self._subscribers = (*self._subscribers, subscription)
        log.info(
            "subscriber %d (%s) connected from %s, %s",
            subscription.id,
            name,
            peer,
            f"replaying from seq {start}" if start <= newest else "live",
        )
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """The RPC ended (any way). Idempotent."""
        subscription.queue.cancel()
        with self._lock:
            if subscription not in self._subscribers:
                return
            self._subscribers = tuple(s for s in self._subscribers if s is not subscription)
            self._left.notify_all()
        log.info(
            "subscriber %d (%s) left: %d sent, %d lost",
            subscription.id,
            subscription.name,
            subscription.sent,
            subscription.lost,
        )

    @property
    def subscribers(self) -> tuple[Subscription, ...]:
        return self._subscribers

    @property
    def lost(self) -> int:
        """Records lost by slow subscribers, those that left included."""
        return self.losses.of(OUTLET_NAME)

    def close(self, timeout: float) -> bool:
        """Let every subscriber take what was published, then end its stream. True when all
        did within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closed = True
            for subscription in self._subscribers:
                subscription.queue.close()
            while self._subscribers:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._left.wait(left)
            slow = [f"{s.name} (up to {len(s.queue) + s.in_flight} records)" for s in self._subscribers]
        if slow:
            # They resume after their last seq from the next run: a new stream, so they get a gap.
            log.warning(
                "subscribers did not take their last records before the stop, which they lose: %s",
                ", ".join(slow),
            )
        return not slow
