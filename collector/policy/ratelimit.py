"""Rate limiting per workload: a token bucket each, and summaries of what it held back.

A workload is a pod in Kubernetes mode (its uid) and a cgroup in standalone mode. Its bucket holds
up to `burst` tokens and gains `rate` tokens per second; an exec that finds a token is logged and
takes it, one that finds none is held back. Held-back execs are not dropped silently: each is
counted in its workload's current summary, which goes out as a `SuppressedRecord` once
`summary_ns` has passed since the first exec it counts, and at shutdown (`due(final=True)`).

Accounting is exact: `admit` answers every exec once, either "log it" or "counted in the pending
summary"; a pending count only leaves in a summary, and every pending summary leaves at the final
flush. So logged + the sum of `suppressed` over all summaries == execs admitted.

Time is the kernel's: buckets refill by each exec's CLOCK_BOOTTIME stamp (`boot_ns`),
which never jumps, so a batch read late is judged by when its execs happened. Token counts are
integers (micro-tokens times nanoseconds), so the limit holds exactly: over any span of exec
times T, at most burst + rate * T execs of one workload are logged.

Memory stays bounded by the workloads active recently: a bucket that has filled up again and has
no pending summary is exactly a new bucket, so it is dropped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from collector.event import ProcessEvent
from collector.k8s import Workload
from collector.policy.record import SuppressedRecord

__all__ = ["RateLimiter"]

_TOP_BINARIES = 5
# Distinct filenames counted per summary; beyond, the count stays exact but names are not kept.
_MAX_BINARIES = 1024
_SWEEP_NS = 1_000_000_000
# One token in bucket units: the rate is kept in milli-execs per second and time in nanoseconds,
# so `elapsed_ns * rate_milli` adds exactly `elapsed_s * rate` tokens.
_TOKEN = 10**12

Key = str | int  # a pod uid, or a cgroup id


@dataclass(slots=True)
class _Bucket:
    level: int  # tokens, in _TOKEN units
    last_boot_ns: int  # exec time of the last refill
    last_wall_ns: int  # the same, in wall-clock time, for expiry
    # The pending summary:
    held: int = 0
    held_since_ns: int = 0  # wall clock of the first held exec
    workload: Workload | None = None
    cgroup_id: int = 0
    cgroup_name: str = ""
    binaries: Counter[str] = field(default_factory=Counter)


class RateLimiter:
    def __init__(self, rate: float, burst: int, summary_s: float) -> None:
        if rate <= 0 or burst < 1 or summary_s <= 0:
            raise ValueError("the rate and the summary interval must be positive, the burst at least 1")
        self.rate_milli = max(1, round(rate * 1000))
        self.capacity = burst * _TOKEN
        self.summary_ns = round(summary_s * 1e9)
        self._buckets: dict[Key, _Bucket] = {}
        self._holding: dict[Key, _Bucket] = {}  # buckets with a pending summary
        self._next_sweep_ns = 0

    @property
    def workloads(self) -> int:
        """Buckets held now (a gauge)."""
        return len(self._buckets)

    @property
    def pending(self) -> int:
        """Execs held back and not yet in a summary."""
        return sum(bucket.held for bucket in self._holding.values())

    def admit(self, event: ProcessEvent, workload: Workload | None) -> bool:
        """True: log this exec. False: it is counted in its workload's pending summary."""
        key: Key = workload.pod_uid if workload is not None and workload.pod_uid else event.cgroup_id
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.capacity, event.boot_ns, event.time_ns)
        elif event.boot_ns > bucket.last_boot_ns:
            # Execs of several CPUs may arrive slightly out of order; time never runs backwards.
            refill = (event.boot_ns - bucket.last_boot_ns) * self.rate_milli
            bucket.level = min(self.capacity, bucket.level + refill)
            bucket.last_boot_ns = event.boot_ns
            bucket.last_wall_ns = event.time_ns
        if bucket.level >= _TOKEN:
            bucket.level -= _TOKEN
            return True
        if not bucket.held:
            bucket.held_since_ns = event.time_ns
            self._holding[key] = bucket
        bucket.held += 1
        bucket.workload = workload
        bucket.cgroup_id = event.cgroup_id
        bucket.cgroup_name = event.cgroup_name
        filename: str | None = getattr(event, "filename", None)
        if filename is not None:
            binaries = bucket.binaries
            if len(binaries) < _MAX_BINARIES or filename in binaries:
                binaries[filename] += 1
        return False

    def due(self, now_ns: int, final: bool = False) -> list[SuppressedRecord]:
        """Summaries whose interval is over (all pending ones if `final`), oldest first."""
        out: list[SuppressedRecord] = []
        for key, bucket in list(self._holding.items()):
            if final or now_ns - bucket.held_since_ns >= self.summary_ns:
                out.append(self._summary(bucket, now_ns))
                del self._holding[key]
        if now_ns >= self._next_sweep_ns:
            self._sweep(now_ns)
            self._next_sweep_ns = now_ns + _SWEEP_NS
        out.sort(key=lambda record: record.interval_start_ns)
        return out

    def _summary(self, bucket: _Bucket, now_ns: int) -> SuppressedRecord:
        # Most frequent first; equal counts by name, so the order does not depend on arrival.
        top = sorted(bucket.binaries.items(), key=lambda item: (-item[1], item[0]))[:_TOP_BINARIES]
        record = SuppressedRecord(
            workload=bucket.workload,
            cgroup_id=bucket.cgroup_id,
            cgroup_name=bucket.cgroup_name,
            suppressed=bucket.held,
            interval_start_ns=bucket.held_since_ns,
            interval_end_ns=max(now_ns, bucket.held_since_ns),
            top_binaries=tuple(top),
        )
        bucket.held = 0
        bucket.binaries = Counter()
        bucket.workload = None
        return record

    def _sweep(self, now_ns: int) -> None:
        """Drop buckets that are full again and owe no summary: they equal fresh ones."""
        capacity, rate = self.capacity, self.rate_milli
        idle = [
            key
            for key, bucket in self._buckets.items()
            if not bucket.held and bucket.level + (now_ns - bucket.last_wall_ns) * rate >= capacity
        ]
        for key in idle:
            del self._buckets[key]
