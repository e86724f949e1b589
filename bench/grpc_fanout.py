"""Records per second through the hub and the gRPC outlet to subscribers that read everything.

The publisher is this process, as the collector's ring reader would be: batches of records go
through Hub.publish (encode once, replay buffer, each subscriber's queue), and the server's
worker threads send them over a unix socket. Each subscriber is a separate process that counts
what it receives, so its decoding does not compete with the collector for the GIL.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from collector.event import ExecEvent
from collector.hub import Hub
from collector.k8s import ProcessRecord, Workload
from collector.listen import parse_listen
from collector.outlets.grpc import Broker, GrpcService

__all__ = ["CLIENT", "Fanout", "measure", "table"]

# A subscriber process: prints ready, reads exec records until it has argv[2], prints the count.
CLIENT = """
import sys, grpc
from collector._proto.execlog.v1 import execlog_pb2 as pb
channel = grpc.insecure_channel(sys.argv[1])
call = channel.unary_stream(
    "/execlog.v1.ExecLog/Subscribe",
    request_serializer=pb.SubscribeRequest.SerializeToString,
    response_deserializer=pb.SubscribeResponse.FromString,
)
want, got = int(sys.argv[2]), 0
print("ready", flush=True)
for response in call(pb.SubscribeRequest(max_batch=int(sys.argv[3]))):
    items = response.batch.items if response.WhichOneof("item") == "batch" else [response]
    got += sum(1 for item in items if item.WhichOneof("item") == "exec")
    if got >= want:
        break
print(got, flush=True)
"""


@dataclass(frozen=True, slots=True)
class Fanout:
    subscribers: int
    max_batch: int
    records: int
    publish_s: float  # time spent in Hub.publish (the ring reader's share)
    total_s: float  # first publish until every subscriber had every record

    @property
    def rate(self) -> float:
        return self.records / self.total_s

    @property
    def publish_us(self) -> float:
        return self.publish_s / self.records * 1e6


def measure(records: int = 50_000, subscribers: int = 2, max_batch: int = 0, batch: int = 64) -> Fanout:
    """`batch` records per publish (the reader's batches); `max_batch` per response (0: one)."""
    workload = Workload(
        "node-1", "coder", "ws-jessie", "uid", "dev", "containerd://x", labels={"username": "jessie"}
    )
    argv = ["/usr/bin/git", "status", "--porcelain", "-uno"]
    template = ExecEvent(
        time_ns=time.time_ns(), boot_ns=1, pid=4242, ppid=4200, uid=1000, gid=1000, euid=1000, egid=1000,
        pid_ns=4026531836, mnt_ns=4026531832, cgroup_id=9001, cgroup_ancestors=(9000,),
        cgroup_name="cri-containerd-abc.scope", parent_cgroup_name="kubepods-pod1.slice", comm="bash",
        filename="/usr/bin/git", argv=argv, argc=4, argv_size=sum(len(a) + 1 for a in argv),
        truncated=False, non_utf8=False, flags=0,
    )  # fmt: skip
    sent = records // batch * batch
    work = Path(tempfile.mkdtemp(prefix="xl-bench-"))
    hub = Hub()
    service = GrpcService(
        Broker(hub.stream_id, "node-1", queue_capacity=records), parse_listen(f"unix://{work}/b.sock")
    )
    hub.add_outlet(service)
    service.start()
    clients = [
        subprocess.Popen(
            [sys.executable, "-c", CLIENT, service.address, str(sent), str(max_batch)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(subscribers)
    ]
    try:
        for client in clients:
            assert client.stdout is not None and client.stdout.readline().strip() == "ready"
        while len(service.broker.subscribers) < subscribers:
            time.sleep(0.01)
        batches = [[ProcessRecord(template, workload) for _ in range(batch)] for _ in range(sent // batch)]
        publish_s = 0.0
        start = time.perf_counter()
        for records_batch in batches:
            t = time.perf_counter()
            hub.publish(records_batch)
            publish_s += time.perf_counter() - t
        counts = [int(c.communicate(timeout=600)[0].strip()) for c in clients]
        total_s = time.perf_counter() - start
        if counts != [sent] * subscribers or service.broker.lost:
            raise RuntimeError(f"subscribers got {counts} of {sent}, lost {service.broker.lost}")
        return Fanout(subscribers, max_batch, sent, publish_s, total_s)
    finally:
        for client in clients:
            client.kill()
        hub.close(2)
        shutil.rmtree(work, ignore_errors=True)


def table(results: list[Fanout]) -> str:
    lines = [
        "| subscribers | max_batch | records | records/s to every subscriber | publish µs/record |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r.subscribers} | {r.max_batch or 1} | {r.records} | {r.rate:,.0f} | {r.publish_us:.1f} |"
        for r in results
    ]
    return "\n".join(lines)
