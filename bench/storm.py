"""The exec storm under each tracer: kernel time, throughput, tracer CPU, latency, loss.

One storm is `execprobe storm COUNT /bin/true TAG PARALLEL [RATE]` run inside the bench pod's
container cgroup, with one tracer freshly started for it (or none). Around the storm we read:

- kernel time: `run_time_ns` and `run_cnt` of the tracer's BPF programs (bpf_stats);
- the storm's exec rate, from execprobe itself;
- the tracer's CPU (all threads, `bench.procstat`) from just before the storm until every outlet
  has the storm's records and the process has gone quiet;
- what each outlet delivered of the storm, what it reported lost, and the subscribers' latency.

Configurations are interleaved within each round (their order rotates from round to round), so a
busy neighbour or a drifting machine hits every configuration alike, and each tracer's exec rate
is divided by the untraced rate of the same round.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.bpfstats import ProgStats, bpf_stats_enabled, prog_stats
from bench.pod import BenchPod
from bench.procstat import CpuClock, CpuReading, thread_names
from bench.tracers import BpftraceRun, Delivery, ExeclogRun, Tracer
from tests.support.build import execprobe

__all__ = ["CONFIGS", "Storm", "StormPlan", "measure"]

# key -> label; the keys are part of each storm's tag, so letters only.
CONFIGS: dict[str, str] = {
    "none": "no tracer",
    "json": "execlog, JSON only",
    "full": "execlog, JSON + 2 gRPC subscribers + Kubernetes",
    "bpftrace": "bpftrace execsnoop.bt",
}


@dataclass(slots=True)
class Storm:
    config: str
    round: int
    target_rate: int  # execs/s asked of execprobe; 0 for as fast as it goes
    parallel: int
    execs: int
    rate: float  # execs/s achieved
    cpu_ns: int | None = None  # the tracer's CPU over the storm
    records: int | None = None  # exec records the tracer handled meanwhile (host execs too)
    kernel_ns: float | None = None  # BPF run time per exec
    rss_rest: int | None = None  # tracer RSS before the storm, bytes
    rss_after: int | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    threads_ns: dict[str, int] = field(default_factory=dict)  # thread group -> CPU over the storm

    @property
    def cpu_us_per_record(self) -> float | None:
        if self.cpu_ns is None or not self.records:
            return None
        return self.cpu_ns / self.records / 1000

    @property
    def missing(self) -> int:
        """Storm execs that some outlet never delivered (worst outlet)."""
        return max((self.execs - d.tagged for d in self.deliveries), default=0)

    @property
    def reported_lost(self) -> int:
        return max((sum(d.lost.values()) for d in self.deliveries), default=0)


@dataclass(frozen=True, slots=True)
class Shape:
    execs: int
    parallel: int
    rate: int  # 0: as fast as it goes


@dataclass(frozen=True, slots=True)
class StormPlan:
    rounds: int = 5
    execs: int = 6000
    parallel: int = 2
    sweep_rates: tuple[int, ...] = (250, 500, 1000)
    sweep_rounds: int = 3
    sweep_seconds: float = 2.0
    configs: tuple[str, ...] = tuple(CONFIGS)


def _kernel_ns(before: dict[int, ProgStats], after: dict[int, ProgStats]) -> tuple[float, int] | None:
    """BPF run time per exec, and the execs counted. execlog has one exec program and a comm
    helper: their time is divided by the exec program's runs; bpftrace's programs (one per
    sys_enter_exec* tracepoint) each run once per exec attempt."""
    delta = {
        i: (after[i].name, after[i].run_time_ns - before[i].run_time_ns, after[i].run_cnt - before[i].run_cnt)
        for i in after
    }
    time_ns = sum(d[1] for d in delta.values())
    exec_runs = [d[2] for d in delta.values() if d[0].startswith("exec_")]
    runs = sum(exec_runs) if exec_runs else sum(d[2] for d in delta.values())
    return (time_ns / runs, runs) if runs else None


THREAD_GROUPS = ("ring reader", "JSON writer", "gRPC, Python", "gRPC, C core", "pod watcher", "other")


def _group(name: str) -> str:
    if name == "ring-reader":
        return "ring reader"
    if name == "jsonlog-writer":
        return "JSON writer"
    if name == "pod-watcher":
        return "pod watcher"
    if name.startswith("grpc_") or name.endswith("(_serve)"):
        return "gRPC, Python"
    if name in ("MainThread", "execlog", "python", "python3"):
        return "other"
    return "gRPC, C core"  # its C threads: event_engine, grpc_global_tim, lifeguard, ...


def _by_thread(pid: int, before: CpuReading, after: CpuReading) -> dict[str, int]:
    names = thread_names(pid)
    groups = dict.fromkeys(THREAD_GROUPS, 0)
    for tid, ns in after.threads_ns.items():
        groups[_group(names.get(tid, "other"))] += ns - before.threads_ns.get(tid, 0)
    return groups


def _start(key: str, pod: BenchPod) -> Tracer | None:
    if key == "json":
        return ExeclogRun(CONFIGS[key])
    if key == "full":
        return ExeclogRun(CONFIGS[key], tuple(pod.collector_flags()), subscribers=2)
    if key == "bpftrace":
        return BpftraceRun()
    return None


def _storm(probe: Path, pod: BenchPod, stem: str, shape: Shape) -> float:
    args = [str(probe), "storm", str(shape.execs), "/bin/true", stem, str(shape.parallel), str(shape.rate)]
    # preexec_fn with the kubelet's threads alive is safe here: it only writes one small file.
    done = subprocess.run(args, capture_output=True, text=True, preexec_fn=pod.join, check=True)
    return float(json.loads(done.stdout)["rate"])


def _quiet(tracer: Tracer, deadline: float) -> None:
    """Until the tracer's CPU has gone quiet (under 2% of a core over a quarter second)."""
    clock = CpuClock(tracer.pid)
    last = clock.read()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = clock.read()
        if CpuClock.between(last, now) < 5_000_000:
            return
        last = now


def _settle(tracer: Tracer, stem: str, execs: int, timeout: float = 30.0) -> None:
    """Until every outlet has the storm and the tracer has gone quiet."""
    deadline = time.monotonic() + timeout
    while not tracer.caught_up(stem, execs) and time.monotonic() < deadline:
        time.sleep(0.1)
    _quiet(tracer, deadline)


def _one(probe: Path, pod: BenchPod, key: str, rnd: int, shape: Shape) -> Storm:
    stem = f"xlb{rnd}{key}{shape.rate}"
    result = Storm(key, rnd, shape.rate, shape.parallel, shape.execs, 0.0)
    tracer = _start(key, pod)
    if tracer is None:
        result.rate = _storm(probe, pod, stem, shape)
        return result
    try:
        # Start-up work (imports, the first kubelet poll and cgroup scan) is not the storm's.
        _quiet(tracer, time.monotonic() + 10)
        ids, clock = tracer.prog_ids(), CpuClock(tracer.pid)
        result.rss_rest = tracer.rss_bytes()
        records, stats, cpu = tracer.records(), prog_stats(ids), clock.read()
        result.rate = _storm(probe, pod, stem, shape)
        _settle(tracer, stem, shape.execs)
        cpu_after, stats_after, records_after = clock.read(), prog_stats(ids), tracer.records()
        result.rss_after = tracer.rss_bytes()
        result.cpu_ns = CpuClock.between(cpu, cpu_after)
        if isinstance(tracer, ExeclogRun):
            result.threads_ns = _by_thread(tracer.pid, cpu, cpu_after)
        kernel = _kernel_ns(stats, stats_after)
        if kernel is not None:
            result.kernel_ns = kernel[0]
        # execlog counts its own records; bpftrace's output is buffered, so its exec attempts are
        # counted by its programs' runs (each one printed).
        if records is not None and records_after is not None:
            result.records = records_after - records
        elif kernel is not None:
            result.records = kernel[1]
    except BaseException:
        tracer.finish(stem)
        raise
    result.deliveries = tracer.finish(stem)
    return result


@contextmanager
def _bench_pod() -> Iterator[BenchPod]:
    with bpf_stats_enabled(), BenchPod() as pod:
        yield pod


def measure(plan: StormPlan, progress: Callable[[str], None] = print) -> list[Storm]:
    probe = execprobe()
    storms: list[Storm] = []
    with _bench_pod() as pod:
        for rnd in range(plan.rounds):
            keys = plan.configs[rnd % len(plan.configs) :] + plan.configs[: rnd % len(plan.configs)]
            for key in keys:
                storms.append(_one(probe, pod, key, rnd, Shape(plan.execs, plan.parallel, 0)))
                progress(_line(storms[-1]))
            if rnd >= plan.sweep_rounds:
                continue
            for key in (k for k in keys if k != "none"):
                for rate in plan.sweep_rates:
                    execs = max(100, int(rate * plan.sweep_seconds))
                    storms.append(_one(probe, pod, key, rnd, Shape(execs, plan.parallel, rate)))
                    progress(_line(storms[-1]))
    return storms


def _line(s: Storm) -> str:
    cpu = s.cpu_us_per_record
    kernel = f"{s.kernel_ns:.0f} ns" if s.kernel_ns is not None else "-"
    return (
        f"  round {s.round} {s.config:<8} rate {s.target_rate or 'max':>5}: {s.rate:7.1f} execs/s, "
        f"kernel {kernel}, cpu {f'{cpu:.1f} µs/record' if cpu is not None else '-'}, "
        f"missing {s.missing}, lost {s.reported_lost}"
    )
