"""The hub's replay buffer and the outlets' queue toolkit: exact loss accounting, seq order, no blocking."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest

from collector.hub import (
    OUTLET_QUEUE_FULL,
    OUTLET_WRITE_FAILED,
    SUBSCRIBER_TOO_SLOW,
    Chunk,
    Gap,
    Losses,
    OutletQueue,
    ReplayBuffer,
)


@dataclass(slots=True)
class E:
    seq: int


def queue(capacity: int, reason: str, losses: Losses | None = None, **options: object) -> OutletQueue[E]:
    return OutletQueue(capacity, reason, outlet="test", losses=losses, **options)  # type: ignore[arg-type]


def entries(first: int, last: int) -> list[E]:
    return [E(s) for s in range(first, last + 1)]


def test_replay_holds_the_newest_and_finds_them_by_seq() -> None:
    buf: ReplayBuffer[E] = ReplayBuffer(5)
    assert (buf.newest, buf.oldest, len(buf)) == (0, 1, 0)
    buf.extend(entries(1, 3))
    assert (buf.newest, buf.oldest, len(buf)) == (3, 1, 3)
    buf.extend(entries(4, 12))
    assert (buf.newest, buf.oldest, len(buf)) == (12, 8, 5)
    assert [buf.get(s) is not None for s in range(6, 14)] == [
        False,
        False,
        True,
        True,
        True,
        True,
        True,
        False,
    ]
    assert buf.get(9) == E(9)


def test_replay_of_an_outlet_added_late_starts_at_its_first_seq() -> None:
    buf: ReplayBuffer[E] = ReplayBuffer(100)
    buf.extend(entries(41, 45))
    assert (buf.first, buf.oldest, buf.newest) == (41, 41, 45)
    assert buf.get(40) is None


def test_replay_of_size_zero_holds_nothing() -> None:
    buf: ReplayBuffer[E] = ReplayBuffer(0)
    buf.extend(entries(1, 10))
    assert (buf.newest, buf.oldest, len(buf), buf.get(10)) == (10, 11, 0, None)


def test_queue_overflow_is_one_gap_in_seq_order_with_the_exact_count() -> None:
    q: OutletQueue[E] = queue(3, SUBSCRIBER_TOO_SLOW)
    q.offer(entries(1, 5), through=5)  # 1-3 fit, 4-5 dropped
    q.offer(entries(6, 6), through=6)  # still full: dropped too
    assert q.lost == 3
    first = q.take(0)
    assert first is not None
    assert [getattr(e, "seq", None) for e in first[:3]] == [1, 2, 3]
    gap = first[3]
    assert isinstance(gap, Gap)
    assert (gap.lost, gap.reason, gap.first_seq, gap.last_seq) == (3, SUBSCRIBER_TOO_SLOW, 4, 6)
    q.offer(entries(7, 8), through=9)  # 9 was filtered out for this subscriber
    assert q.take(0) == [E(7), E(8)]
    assert q.idle_through() == 9


def test_pending_gap_goes_before_later_records() -> None:
    q: OutletQueue[E] = queue(2, SUBSCRIBER_TOO_SLOW)
    q.offer(entries(1, 4), through=4)
    assert q.take(0) is not None  # 1, 2 and the gap for 3-4
    q.offer(entries(5, 7), through=7)  # 5, 6 fit; 7 dropped
    batch = q.take(0)
    assert batch is not None
    assert batch[:2] == [E(5), E(6)]
    assert isinstance(batch[2], Gap) and (batch[2].first_seq, batch[2].last_seq) == (7, 7)
    q.offer(entries(8, 8), through=8)
    assert q.take(0) == [E(8)]


def test_offer_never_waits_for_the_consumer() -> None:
    q: OutletQueue[E] = queue(10, SUBSCRIBER_TOO_SLOW)
    done = threading.Event()

    def publish() -> None:
        for i in range(1000):
            q.offer([E(i + 1)], through=i + 1)
        done.set()

    threading.Thread(target=publish, daemon=True).start()
    assert done.wait(10)
    assert q.lost == 990 and len(q) == 10


def test_close_delivers_then_ends_and_cancel_ends_at_once() -> None:
    q: OutletQueue[E] = queue(10, SUBSCRIBER_TOO_SLOW)
    q.offer(entries(1, 2), through=2)
    q.close()
    assert q.take(5) == [E(1), E(2)]
    assert q.take(5) is None
    c: OutletQueue[E] = queue(10, SUBSCRIBER_TOO_SLOW)
    c.offer(entries(1, 2), through=2)
    c.cancel()
    assert c.take(5) is None


def test_take_waits_for_records_and_times_out_empty() -> None:
    q: OutletQueue[E] = queue(10, SUBSCRIBER_TOO_SLOW)
    assert q.take(0.01) == []
    threading.Timer(0.05, lambda: q.offer([E(1)], through=1)).start()
    assert q.take(10) == [E(1)]


def test_queue_needs_room_for_one() -> None:
    with pytest.raises(ValueError, match="at least one"):
        queue(0, SUBSCRIBER_TOO_SLOW)


def test_losses_are_counted_in_one_place_by_outlet_and_reason() -> None:
    losses = Losses()
    a: OutletQueue[E] = OutletQueue(2, SUBSCRIBER_TOO_SLOW, outlet="grpc", losses=losses)
    b: OutletQueue[E] = OutletQueue(2, SUBSCRIBER_TOO_SLOW, outlet="grpc", losses=losses)
    c: OutletQueue[E] = OutletQueue(1, OUTLET_QUEUE_FULL, outlet="jsonlog", losses=losses)
    a.offer(entries(1, 5), through=5)
    b.offer(entries(1, 3), through=3)
    c.offer(entries(1, 2), through=2)
    c.lost_downstream(1, 1, 1, OUTLET_WRITE_FAILED)
    assert (a.lost, b.lost, c.lost) == (3, 1, 2)
    assert losses.by_reason() == {
        ("grpc", SUBSCRIBER_TOO_SLOW): 4,
        ("jsonlog", OUTLET_QUEUE_FULL): 1,
        ("jsonlog", OUTLET_WRITE_FAILED): 1,
    }
    assert (losses.of("grpc"), losses.of("jsonlog"), losses.total()) == (4, 2, 6)


def test_drop_oldest_keeps_the_newest_and_its_gap_goes_first() -> None:
    q = queue(3, OUTLET_QUEUE_FULL, drop="oldest")
    q.offer(entries(1, 2), through=2)
    q.offer(entries(3, 4), through=4)  # 1 makes way
    q.offer(entries(5, 9), through=9)  # 2-4 make way, and 5-6 never fit
    batch = q.take(0)
    assert batch is not None
    gap = batch[0]
    assert isinstance(gap, Gap)
    assert (gap.lost, gap.first_seq, gap.last_seq) == (6, 1, 6)
    assert batch[1:] == [E(7), E(8), E(9)]
    assert q.lost == 6 and len(q) == 0


def test_downstream_loss_goes_first_at_the_next_take() -> None:
    q = queue(10, OUTLET_QUEUE_FULL)
    q.offer(entries(1, 3), through=3)
    taken = q.take(0)
    assert taken == [E(1), E(2), E(3)]
    q.offer(entries(4, 4), through=4)
    q.lost_downstream(2, 3, 2, OUTLET_WRITE_FAILED)  # 2 and 3 could not be delivered
    batch = q.take(0)
    assert batch is not None and batch[1:] == [E(4)]
    gap = batch[0]
    assert isinstance(gap, Gap)
    assert (gap.reason, gap.lost, gap.first_seq, gap.last_seq) == (OUTLET_WRITE_FAILED, 2, 2, 3)


def test_chunks_count_their_records_against_the_capacity() -> None:
    q: OutletQueue[Chunk] = OutletQueue(10, OUTLET_QUEUE_FULL, outlet="jsonlog")
    assert q.room() == 10
    q.offer_chunk(Chunk(1, 6, 6, b"x"))
    assert (q.room(), len(q)) == (4, 6)
    q.drop(7, 20, 14)
    batch = q.take(0)
    assert batch is not None and isinstance(batch[0], Chunk) and isinstance(batch[1], Gap)
    assert (batch[1].lost, batch[1].first_seq, batch[1].last_seq) == (14, 7, 20)
    assert q.room() == 10
