"""The rate limiter: token buckets per workload, exact accounting, periodic summaries, bounded memory."""

from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from collector.event import ExecEvent
from collector.k8s import Workload
from collector.policy.ratelimit import RateLimiter
from collector.policy.record import SuppressedRecord
from tests.support.records import event

S = 1_000_000_000
WALL = 1_700_000_000_000_000_000  # wall clock = boot clock + WALL in these events


def ev(t_ns: int, cgroup: int = 7, filename: str = "/bin/true") -> ExecEvent:
    return event(["x"], boot_to_unix_ns=WALL, boot_ns=t_ns, cgroup_id=cgroup, filename=filename.encode())


def pod(uid: str, container: str = "dev", labels: dict[str, str] | None = None) -> Workload:
    return Workload("node", "ns", f"pod-{uid}", uid, container, f"cid-{container}", pod_labels=labels or {})


def test_a_burst_then_the_rate() -> None:
    limiter = RateLimiter(rate=10, burst=3, summary_s=5)
    # 10 execs at once: the burst goes through, the rest is held back.
    assert [limiter.admit(ev(S), None) for _ in range(10)] == [True] * 3 + [False] * 7
    # 100 ms later exactly one token has come back.
    assert [limiter.admit(ev(S + S // 10), None) for _ in range(3)] == [True, False, False]
    # After a long pause the bucket is full again, but never more than full.
    assert [limiter.admit(ev(100 * S), None) for _ in range(5)] == [True] * 3 + [False] * 2
    assert limiter.pending == 7 + 2 + 2


def test_a_saturated_workload_logs_exactly_burst_plus_rate_times_time() -> None:
    limiter = RateLimiter(rate=100, burst=10, summary_s=5)
    logged = sum(limiter.admit(ev(k * S // 1000), None) for k in range(1000))  # 1000 execs/s for 1 s
    assert logged == 10 + 99  # the burst, then one token every 10 ms up to t = 999 ms
    assert limiter.pending == 1000 - logged


def test_fractional_rates_are_exact() -> None:
    limiter = RateLimiter(rate=0.5, burst=1, summary_s=5)
    admitted = [limiter.admit(ev(t * S // 2), None) for t in range(13)]  # every 500 ms for 6 s
    assert admitted == [True, False, False, False, True, False, False, False, True, False, False, False, True]


def test_workloads_are_pods_or_cgroups() -> None:
    limiter = RateLimiter(rate=1, burst=1, summary_s=5)
    a_dev, a_sidecar, b = pod("uid-a", "dev"), pod("uid-a", "sidecar"), pod("uid-b")
    assert limiter.admit(ev(S, cgroup=1), a_dev)
    assert not limiter.admit(ev(S, cgroup=2), a_sidecar)  # another container of the same pod
    assert limiter.admit(ev(S, cgroup=3), b)
    assert limiter.admit(ev(S, cgroup=1), None)  # standalone: cgroup 1 is its own workload
    assert not limiter.admit(ev(S, cgroup=1), None)
    assert limiter.workloads == 3


def test_summaries_come_every_interval_while_limited_and_name_the_top_binaries() -> None:
    limiter = RateLimiter(rate=1, burst=1, summary_s=2)
    limiter.admit(ev(0), None)
    names = ["/bin/a"] * 5 + ["/bin/b"] * 3 + ["/bin/c", "/bin/d", "/bin/e", "/bin/f", "/bin/g"]
    for i, name in enumerate(names):
        assert not limiter.admit(ev(i, filename=name), None)
    first = WALL  # wall time of the first held exec
    assert limiter.due(first + 2 * S - 1) == []  # not yet
    [summary] = limiter.due(first + 2 * S)
    assert summary == SuppressedRecord(
        workload=None,
        cgroup_id=7,
        cgroup_name="cri-containerd-abc.scope",
        suppressed=13,
        interval_start_ns=first,
        interval_end_ns=first + 2 * S,
        top_binaries=(("/bin/a", 5), ("/bin/b", 3), ("/bin/c", 1), ("/bin/d", 1), ("/bin/e", 1)),
    )
    assert limiter.due(first + 10 * S) == []  # nothing held since
    assert limiter.workloads == 0  # and the bucket, full again, is gone
    assert [limiter.admit(ev(11 * S), None) for _ in range(2)] == [True, False]
    [second] = limiter.due(first + 11 * S, final=True)  # final: due at once
    assert (second.suppressed, second.interval_start_ns, second.top_binaries) == (
        1,
        WALL + 11 * S,
        (("/bin/true", 1),),
    )


def test_summaries_carry_the_pod() -> None:
    limiter = RateLimiter(rate=1, burst=1, summary_s=1)
    workload = pod("uid-a")
    limiter.admit(ev(0, cgroup=5), workload)
    limiter.admit(ev(0, cgroup=5), workload)
    [summary] = limiter.due(WALL + S)
    assert (summary.workload, summary.cgroup_id, summary.suppressed) == (workload, 5, 1)


def test_idle_buckets_expire_only_when_full_and_owing_nothing() -> None:
    limiter = RateLimiter(rate=2, burst=4, summary_s=1)
    for cgroup in range(100):
        assert limiter.admit(ev(0, cgroup=cgroup), None)  # each takes one of its 4 tokens
    assert [limiter.admit(ev(0, cgroup=99), None) for _ in range(4)] == [True, True, True, False]
    assert limiter.due(WALL) == []
    assert limiter.workloads == 100  # nobody is full: one token takes 0.5 s to come back
    limiter.due(WALL + 4 * S // 10)
    assert limiter.workloads == 100  # and the sweep runs at most once a second anyway
    # At +1 s the 99 buckets missing one token are full again and go; 99 is empty, and its summary
    # goes out first, but its 4 tokens take 2 s to come back.
    [summary] = limiter.due(WALL + S)
    assert (summary.cgroup_id, summary.suppressed) == (99, 1)
    assert limiter.workloads == 1
    limiter.due(WALL + 2 * S)
    assert limiter.workloads == 0


# A stream of execs: (workload, exec time step, binary); time steps may go backwards a little, as
# execs of several CPUs do; due() is called at random points.
streams = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.one_of(st.integers(-2_000_000, 5_000_000), st.integers(0, 300_000_000)),  # mostly dense
        st.sampled_from(["/bin/sh", "/usr/bin/make", "/usr/bin/cc"]),
        st.booleans(),
    ),
    max_size=400,
)


@settings(max_examples=150, deadline=None)
@given(streams, st.integers(1, 200_000).map(lambda m: m / 1000), st.integers(1, 20), st.integers(1, 40))
def test_logged_plus_suppressed_is_exactly_captured_and_the_limit_holds(
    stream: list[tuple[int, int, str, bool]], rate: float, burst: int, summary_ds: int
) -> None:
    limiter = RateLimiter(rate, burst, summary_ds / 10)
    t = S
    logged: Counter[int] = Counter()
    captured: Counter[int] = Counter()
    times: dict[int, list[int]] = {}
    reported: Counter[int] = Counter()
    for cgroup, step, binary, tick in stream:
        t = max(S, t + step)
        captured[cgroup] += 1
        times.setdefault(cgroup, []).append(t)
        if limiter.admit(ev(t, cgroup=cgroup, filename=binary), None):
            logged[cgroup] += 1
        if tick:
            for summary in limiter.due(WALL + t):
                assert summary.suppressed > 0
                assert summary.interval_end_ns - summary.interval_start_ns >= round(summary_ds / 10 * S)
                reported[summary.cgroup_id] += summary.suppressed
                assert sum(c for _, c in summary.top_binaries) <= summary.suppressed
    for summary in limiter.due(WALL + t, final=True):
        reported[summary.cgroup_id] += summary.suppressed
    assert limiter.pending == 0
    for cgroup, n in captured.items():
        assert logged[cgroup] + reported[cgroup] == n
        # Over its execs' time span T, a workload logs at most burst + rate * T execs.
        span = Fraction(max(times[cgroup]) - min(times[cgroup]), S)
        rate_exact = Fraction(max(1, round(rate * 1000)), 1000)
        assert logged[cgroup] <= burst + math.floor(rate_exact * span)
        assert logged[cgroup] >= min(burst, n)
    limiter.due(WALL + t + 10**6 * S)  # long after: every bucket is full again and dropped
    assert limiter.workloads == 0
