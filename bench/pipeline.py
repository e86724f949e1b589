"""Pipeline throughput without the kernel: recorded records replayed through every stage.

decode -> enrich -> policy (the default: redaction on) -> hub -> outlets, on one thread as in
the collector's ring reader, with the JSON outlet writing to /dev/null on its own thread and, in
the gRPC setups, the gRPC outlet serving two subscriber processes on a unix socket that read
every record. The figure is events per CPU-second of this process (all its threads: reader, JSON
writer, gRPC), i.e. events per second per core; the subscribers' own CPU is not in it. The round
ends when the JSON writer is idle and both subscribers have every record.

The Kubernetes setup replays the same records moved into 50 pods' containers (bench.k8sreplay)
through the collector's PodEnricher, with every pod known.

`stages` times the reader thread's stages one by one (thread CPU time) on the same records.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from bench.grpc_fanout import CLIENT
from bench.k8sreplay import StaticPods, as_pod_record, make_pods
from collector.config import PolicyConfig
from collector.engine import Pipeline
from collector.event import BootClock, Decoder, ExecEvent
from collector.hub import Hub
from collector.k8s import Enricher, Standalone
from collector.k8s.attribution import PodEnricher
from collector.listen import parse_listen
from collector.outlets.grpc import Broker, GrpcService
from collector.outlets.jsonlog import JsonLogOutlet
from collector.policy import build_policy

__all__ = ["SETUPS", "PipelineRun", "Setup", "replay", "stages", "table"]


@dataclass(frozen=True, slots=True)
class Setup:
    name: str
    subscribers: int  # gRPC subscriber processes reading everything; 0: no gRPC outlet
    pods: int  # 0: standalone; else Kubernetes mode with this many pods, all known


SETUPS = (
    Setup("JSON only, standalone", 0, 0),
    Setup("JSON + gRPC (2 subscribers), standalone", 2, 0),
    Setup("JSON + gRPC (2 subscribers), Kubernetes, 50 pods", 2, 50),
)


@dataclass(slots=True)
class PipelineRun:
    name: str
    events_per_cpu_second: list[float] = field(default_factory=list)
    us_per_event: list[float] = field(default_factory=list)


def _records_for(setup: Setup, records: list[bytes]) -> tuple[list[bytes], Callable[[], Enricher]]:
    """The records as the setup sees them, and a maker of fresh enrichers (cold caches) for them."""
    if not setup.pods:
        return records, Standalone
    pods = make_pods(setup.pods)
    moved = [as_pod_record(raw, pods[i % len(pods)]) for i, raw in enumerate(records)]
    return moved, lambda: PodEnricher(StaticPods(pods), "bench-node")


def _round(setup: Setup, records: list[bytes], batch: int, devnull: int) -> float:
    """CPU seconds of this process to take `records` through the pipeline to every outlet."""
    records, make_enricher = _records_for(setup, records)
    enricher = make_enricher()
    hub = Hub()
    outlet = JsonLogOutlet(devnull, hub.stream_id, capacity=len(records) + 1)
    hub.add_outlet(outlet)
    work = Path(tempfile.mkdtemp(prefix="xl-bench-"))
    clients: list[subprocess.Popen[str]] = []
    if setup.subscribers:
        # Every subscriber can queue the whole replay: this measures throughput, not loss.
        broker = Broker(hub.stream_id, "bench-node", queue_capacity=len(records) + 1)
        service = GrpcService(broker, parse_listen(f"unix://{work}/p.sock"))
        hub.add_outlet(service)
        service.start()
        clients = [
            subprocess.Popen(
                [sys.executable, "-c", CLIENT, service.address, str(len(records)), "512"],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(setup.subscribers)
        ]
    try:
        for client in clients:
            assert client.stdout is not None and client.stdout.readline().strip() == "ready"
        while setup.subscribers and len(service.broker.subscribers) < setup.subscribers:
            time.sleep(0.01)
        pipeline = Pipeline(hub, enricher=enricher, policy=build_policy(PolicyConfig()))
        start = time.process_time()
        for i in range(0, len(records), batch):
            pipeline.process(records[i : i + batch])
        outlet.wait_idle(120)
        counts = [int(c.communicate(timeout=300)[0].strip()) for c in clients]
        cpu = time.process_time() - start
        if counts != [len(records)] * len(clients):
            raise RuntimeError(f"subscribers got {counts} of {len(records)}")
        return cpu
    finally:
        for client in clients:
            client.kill()
        hub.close(10)
        shutil.rmtree(work, ignore_errors=True)


def replay(
    records: list[bytes], rounds: int = 5, batch: int = 256, setups: Sequence[Setup] = SETUPS
) -> list[PipelineRun]:
    runs = {s.name: PipelineRun(s.name) for s in setups}
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for _ in range(rounds):
            for setup in setups:  # interleaved, so drift hits every setup alike
                cpu = _round(setup, records, batch, devnull)
                runs[setup.name].events_per_cpu_second.append(len(records) / cpu)
                runs[setup.name].us_per_event.append(cpu / len(records) * 1e6)
    finally:
        os.close(devnull)
    return list(runs.values())


class _Publishing:
    """The gRPC outlet's publishing half alone (GrpcService.publish is Broker.publish): encoding,
    the replay buffer, the subscribers' queues; serving them is other threads' work."""

    name = "grpc"
    reasons: tuple[str, ...] = ()

    def __init__(self, broker: Broker) -> None:
        self.publish = broker.publish

    def close(self, timeout: float) -> None:
        pass


def stages(records: list[bytes], rounds: int = 5, batch: int = 256, pods: int = 50) -> dict[str, float]:
    """µs per event in each stage (median over rounds): the reader thread's stages, timed one by
    one in thread CPU time, and the JSON writer thread (the rest of this process's CPU). Kubernetes
    mode, default policy, the JSON outlet and the gRPC outlet's publish half (its Broker: encode,
    replay buffer; no subscribers)."""
    moved, make_enricher = _records_for(Setup("stages", 0, pods), records)
    names = ("decode", "enrich", "policy", "hub + outlets' publish", "JSON writer thread")
    per_round: dict[str, list[float]] = {name: [] for name in names}
    devnull = os.open(os.devnull, os.O_WRONLY)
    clock = time.thread_time_ns
    try:
        for _ in range(rounds):
            enricher = make_enricher()
            hub = Hub()
            json_outlet = JsonLogOutlet(devnull, hub.stream_id, capacity=len(moved) + 1)
            hub.add_outlet(json_outlet)
            hub.add_outlet(_Publishing(Broker(hub.stream_id, "bench-node")))
            decode, policy, offset = Decoder().decode, build_policy(PolicyConfig()), BootClock().offset_ns()
            spent = [0, 0, 0, 0]
            process_start = time.process_time_ns()
            for i in range(0, len(moved), batch):
                t0 = clock()
                events = [cast(ExecEvent, decode(raw, offset)) for raw in moved[i : i + batch]]
                t1 = clock()
                attributed = enricher.enrich(events)
                t2 = clock()
                out = policy.apply(attributed)
                t3 = clock()
                hub.publish(out)
                t4 = clock()
                for j, ns in enumerate((t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                    spent[j] += ns
            json_outlet.wait_idle(60)
            writer = time.process_time_ns() - process_start - (clock() - t4) - sum(spent)
            hub.close(10)
            for name, ns in zip(names, [*spent, writer], strict=True):
                per_round[name].append(ns / len(moved) / 1000)
    finally:
        os.close(devnull)
    return {name: statistics.median(values) for name, values in per_round.items()}


def table(runs: list[PipelineRun], events: int, rounds: int) -> str:
    lines = [
        f"Pipeline throughput, {events} recorded records replayed, median of {rounds} interleaved rounds",
        "",
        "| setup | events/s per core | CPU µs/event | min..max events/s |",
        "| --- | ---: | ---: | ---: |",
    ]
    for run in runs:
        rate = run.events_per_cpu_second
        lines.append(
            f"| {run.name} | {statistics.median(rate):,.0f} | {statistics.median(run.us_per_event):.1f} "
            f"| {min(rate):,.0f}..{max(rate):,.0f} |"
        )
    return "\n".join(lines)
