"""The hub's replay buffer and subscriber queue: exact loss accounting, seq order, no blocking."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest

from collector.hub import SUBSCRIBER_TOO_SLOW, Gap, GapQueue, ReplayBuffer


@dataclass(slots=True)
class E:
    seq: int


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
    q: GapQueue[E] = GapQueue(3, SUBSCRIBER_TOO_SLOW)
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
    q: GapQueue[E] = GapQueue(2, SUBSCRIBER_TOO_SLOW)
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
    q: GapQueue[E] = GapQueue(10, SUBSCRIBER_TOO_SLOW)
    done = threading.Event()

    def publish() -> None:
        for i in range(1000):
            q.offer([E(i + 1)], through=i + 1)
        done.set()

    threading.Thread(target=publish, daemon=True).start()
    assert done.wait(10)
    assert q.lost == 990 and len(q) == 10


def test_close_delivers_then_ends_and_cancel_ends_at_once() -> None:
    q: GapQueue[E] = GapQueue(10, SUBSCRIBER_TOO_SLOW)
    q.offer(entries(1, 2), through=2)
    q.close()
    assert q.take(5) == [E(1), E(2)]
    assert q.take(5) is None
    c: GapQueue[E] = GapQueue(10, SUBSCRIBER_TOO_SLOW)
    c.offer(entries(1, 2), through=2)
    c.cancel()
    assert c.take(5) is None


def test_take_waits_for_records_and_times_out_empty() -> None:
    q: GapQueue[E] = GapQueue(10, SUBSCRIBER_TOO_SLOW)
    assert q.take(0.01) == []
    threading.Timer(0.05, lambda: q.offer([E(1)], through=1)).start()
    assert q.take(10) == [E(1)]


def test_queue_needs_room_for_one() -> None:
    with pytest.raises(ValueError, match="at least one"):
        GapQueue(0, SUBSCRIBER_TOO_SLOW)
