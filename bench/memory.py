"""Resident memory at rest and over a million events, with pods and processes churning.

A child process (`python -m bench.memory FILE EVENTS`) builds the collector's real pipeline in
Kubernetes mode: Decoder caches, the PodEnricher, the default policy, the hub, the JSON outlet
(to /dev/null, default queue) and the gRPC outlet (a started server, replay buffer at its default
of 100,000 records, no subscriber). It then replays recorded ring records, rewritten so that
nothing repeats for long: every record gets a new pid, and every 10,000 events 5 of the 50 live
pods are replaced by new ones (new uid, container id and cgroup ids; the kubelet's list changes),
so every cache keeps meeting cgroups, pods and Workloads it has never seen. RSS is sampled every
50,000 events. The child holds nothing else, so its RSS is the pipeline's.

The replay buffer fills up to its capacity by design (100,000 encoded records), so RSS grows
until then; "flat" is judged from the first sample after it is full to the end.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.procstat import rss_bytes

__all__ = ["MemoryRun", "measure", "table"]

SAMPLE_EVERY = 50_000
CHURN_EVERY = 10_000
LIVE_PODS = 50
CHURNED = 5
_PID = struct.Struct("<I")  # pid at offset 80
REPLAY_DEFAULT = 100_000


@dataclass(frozen=True, slots=True)
class MemoryRun:
    events: int
    rest: int  # RSS before the first event, bytes
    samples: list[tuple[int, int]]  # (events so far, RSS bytes)
    pods_seen: int
    replay_capacity: int

    @property
    def full(self) -> tuple[int, int]:
        """The first sample with the replay buffer full (and every cache warm)."""
        return next(s for s in self.samples if s[0] >= max(self.replay_capacity, SAMPLE_EVERY))

    @property
    def end(self) -> int:
        return self.samples[-1][1]

    @property
    def per_pod(self) -> float:
        """Growth after the replay buffer filled, per pod created meanwhile (bytes)."""
        created = (self.samples[-1][0] - self.full[0]) // CHURN_EVERY * CHURNED
        return self.growth_after_full / created if created else 0.0

    @property
    def peak(self) -> int:
        return max(rss for _, rss in self.samples)

    @property
    def growth_after_full(self) -> int:
        """RSS at the end minus RSS when the replay buffer had just filled."""
        return self.end - self.full[1]


def _child(records_file: str, events: int, replay: int) -> None:
    from bench.k8sreplay import StaticPods, as_pod_record, make_pods
    from collector.config import PolicyConfig
    from collector.engine import Pipeline
    from collector.hub import Hub
    from collector.k8s.attribution import PodEnricher
    from collector.listen import parse_listen
    from collector.outlets.grpc import Broker, GrpcService
    from collector.outlets.jsonlog import JsonLogOutlet
    from collector.policy import build_policy

    with open(records_file, "rb") as f:
        records: list[bytes] = pickle.load(f)
    work = Path(tempfile.mkdtemp(prefix="xl-bench-mem-"))
    devnull = os.open(os.devnull, os.O_WRONLY)
    hub = Hub()
    json_outlet = JsonLogOutlet(devnull, hub.stream_id, capacity=65536)
    hub.add_outlet(json_outlet)
    broker = Broker(hub.stream_id, "bench-node", replay_capacity=replay)
    service = GrpcService(broker, parse_listen(f"unix://{work}/m.sock"))
    hub.add_outlet(service)
    service.start()
    pods = make_pods(LIVE_PODS)
    next_cgroup = 2_000_000
    source = StaticPods(pods)
    pipeline = Pipeline(hub, enricher=PodEnricher(source, "bench-node"), policy=build_policy(PolicyConfig()))
    seen = len(pods)
    print(json.dumps({"rest": rss_bytes()}), flush=True)
    batch = 256
    done = 0
    churn_at, sample_at = CHURN_EVERY, SAMPLE_EVERY
    while done < events:
        if done >= churn_at:
            churn_at += CHURN_EVERY
            # Old pods leave the kubelet's list, new ones (new cgroups, containers, uids) come.
            fresh = make_pods(CHURNED, next_cgroup)
            next_cgroup += 2 * CHURNED
            pods = pods[CHURNED:] + fresh
            seen += CHURNED
            source.set_pods(pods)
        chunk = []
        for i in range(done, min(done + batch, events)):
            raw = bytearray(as_pod_record(records[i % len(records)], pods[i % len(pods)]))
            _PID.pack_into(raw, 80, 100_000 + i % 4_000_000)
            chunk.append(bytes(raw))
        pipeline.process(chunk)
        done += len(chunk)
        if done >= churn_at:
            json_outlet.wait_idle(60)  # keep stdout's queue from filling: this measures memory, not loss
        if done >= sample_at:
            sample_at += SAMPLE_EVERY
            print(json.dumps({"events": done, "rss": rss_bytes(), "pods": seen}), flush=True)
    json_outlet.wait_idle(60)
    print(json.dumps({"events": done, "rss": rss_bytes(), "pods": seen}), flush=True)
    hub.close(5)
    os.close(devnull)
    shutil.rmtree(work, ignore_errors=True)


def measure(records: list[bytes], events: int = 1_000_000, replay: int = REPLAY_DEFAULT) -> MemoryRun:
    with tempfile.NamedTemporaryFile(suffix=".pickle", delete=False) as f:
        pickle.dump(records, f)
    try:
        out = subprocess.run(
            [sys.executable, "-m", "bench.memory", f.name, str(events), str(replay)],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parents[1],
        ).stdout
    finally:
        os.unlink(f.name)
    lines = [json.loads(line) for line in out.splitlines()]
    samples = [(d["events"], d["rss"]) for d in lines[1:]]
    if len(samples) > 1 and samples[-1][0] == samples[-2][0]:
        samples.pop(-2)  # the last batch ended on a sampling point: one sample for it, the final one
    return MemoryRun(events, lines[0]["rest"], samples, lines[-1]["pods"], replay)


def table(runs: list[MemoryRun], collector_rest: dict[str, int]) -> str:
    mib = 1 << 20
    first = runs[0]
    lines = [
        f"Resident memory (MiB): `execlog run` at rest, and the pipeline in Kubernetes mode over "
        f"{first.events:,} events with {first.pods_seen} pods coming and going ({LIVE_PODS} live) "
        "and a new pid per exec",
        "",
        "| what | RSS MiB |",
        "| --- | ---: |",
    ]
    lines += [f"| `execlog run` at rest, {name} | {rss / mib:.1f} |" for name, rss in collector_rest.items()]
    for run in runs:
        full_at, full_rss = run.full
        per_record = (full_rss - run.rest) / run.replay_capacity if run.replay_capacity else 0.0
        replay = f"--grpc-replay {run.replay_capacity:,}"
        lines += [
            f"| {replay}: pipeline process before the first event | {run.rest / mib:.1f} |",
            f"| {replay}: after {full_at:,} events (replay buffer full; "
            f"{per_record / 1024:.2f} KiB per record held) | {full_rss / mib:.1f} |",
            f"| {replay}: after {run.samples[-1][0]:,} events (peak {run.peak / mib:.1f}) "
            f"| {run.end / mib:.1f} |",
            f"| {replay}: growth from replay-buffer-full to the end ({run.per_pod / 1024:.1f} KiB per pod "
            f"that came and went meanwhile) | {run.growth_after_full / mib:+.1f} |",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    _child(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
