"""A gRPC subscriber process for the storm benchmark: reads everything, counts, times.

    python -m bench.subscriber ADDRESS NAME

It subscribes live (no replay) in batches, as `execlog tail` does, and prints `ready` once the
server's first checkpoint says the subscription is in place. For each exec whose argv[1] looks
like `STEM-<n>` (a storm's tag) it counts the record under STEM and keeps its latency: the time
the response arrived here (time.time_ns) minus the exec's own time in the record, which the
collector derives from the kernel's timestamp; both are this host's wall clock. Gaps are counted
by reason. Each line `report STEM` on stdin is answered with one JSON line; EOF ends it.

It is a separate process so that its decoding does not share the collector's CPU accounting, and
it reads on its own thread so that answering a report never stalls the stream.
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time
from collections import Counter, defaultdict

import grpc

from collector._proto.execlog.v1 import execlog_pb2 as pb

__all__ = ["main", "percentile"]

MAX_BATCH = 512


def percentile(values: list[int], q: float) -> float:
    """The q-quantile (0..1) with linear interpolation; 0 for no values."""
    if not values:
        return 0.0
    if len(values) == 1:
        return float(values[0])
    return statistics.quantiles(values, n=1000, method="inclusive")[max(0, min(998, round(q * 1000) - 1))]


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.latencies: defaultdict[str, list[int]] = defaultdict(list)
        self.gaps: Counter[str] = Counter()  # reason -> records lost
        self.ready = threading.Event()
        self.error = ""

    def take(self, response: pb.SubscribeResponse, now_ns: int) -> None:
        items = response.batch.items if response.WhichOneof("item") == "batch" else [response]
        with self.lock:
            for item in items:
                kind = item.WhichOneof("item")
                if kind == "exec":
                    m = item.exec
                    argv = m.process.argv
                    if len(argv) > 1:
                        stem, dash, n = argv[1].rpartition("-")
                        if dash and n.isdigit():
                            self.counts[stem] += 1
                            self.latencies[stem].append(
                                now_ns - (m.time.seconds * 1_000_000_000 + m.time.nanos)
                            )
                elif kind == "gap":
                    self.gaps[pb.Gap.Reason.Name(item.gap.reason)] += item.gap.lost
                elif kind == "checkpoint":
                    self.ready.set()

    def report(self, stem: str) -> dict[str, object]:
        with self.lock:
            lat = self.latencies.get(stem, [])
            return {
                "count": self.counts.get(stem, 0),
                "p50_ms": percentile(lat, 0.5) / 1e6,
                "p99_ms": percentile(lat, 0.99) / 1e6,
                "max_ms": max(lat, default=0) / 1e6,
                "gaps": dict(self.gaps),
                "error": self.error,
            }


def _read(address: str, name: str, tally: Tally) -> None:
    channel = grpc.insecure_channel(address)
    call = channel.unary_stream(
        "/execlog.v1.ExecLog/Subscribe",
        request_serializer=pb.SubscribeRequest.SerializeToString,
        response_deserializer=pb.SubscribeResponse.FromString,
    )
    try:
        for response in call(pb.SubscribeRequest(max_batch=MAX_BATCH, client_name=name)):
            tally.take(response, time.time_ns())
    except grpc.RpcError as exc:
        tally.error = f"{exc.code()}: {exc.details()}"
    finally:
        tally.ready.set()


def main() -> int:
    address, name = sys.argv[1], sys.argv[2]
    tally = Tally()
    threading.Thread(target=_read, args=(address, name, tally), daemon=True).start()
    tally.ready.wait(30)
    print("ready" if not tally.error else f"error {tally.error}", flush=True)
    for line in sys.stdin:
        command, _, stem = line.strip().partition(" ")
        if command == "report":
            print(json.dumps(tally.report(stem)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
