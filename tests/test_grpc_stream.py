"""The gRPC stream in process: a Hub, the Broker and a real server, with real clients over a
unix socket and TCP loopback. Records are built with workloads directly, so filters can be
checked against hand-made expectations."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from collector._proto.execlog.v1 import execlog_pb2 as pb
from collector.hub import KERNEL_RING_FULL, RESUME_POINT_LOST, SUBSCRIBER_TOO_SLOW, Gap, Hub, Item
from collector.k8s import ProcessRecord, Workload
from collector.listen import parse_listen
from collector.outlets.grpc import Broker, GrpcService, TlsFiles
from collector.outlets.grpc.wire import Checkpoint
from tests.support.records import event
from tests.support.stream import Reader, StreamClient, argv1, gap_of, tls_credentials
from tests.support.tls import CertificateAuthority

STREAM = "5e1f0000-0000-4000-8000-00000000beef"


def wl(name: str, namespace: str, pod_labels: dict[str, str], username: str) -> Workload:
    return Workload(
        node="node-1",
        namespace=namespace,
        pod=f"ws-{name}",
        pod_uid=f"uid-{name}",
        container="dev",
        container_id=f"containerd://{name}",
        labels={"username": username},
        pod_labels=pod_labels,
    )


WORKLOADS: dict[str, Workload | None] = {
    "jessie": wl("jessie", "coder", {"app": "ws", "owner": "jessie"}, "jessie"),
    "zac": wl("zac", "coder", {"app": "ws", "owner": "zac"}, "zac"),
    "dns": wl("dns", "kube-system", {"app": "dns"}, ""),
    "host": None,
}
BINARIES = {"curl": "/usr/bin/curl", "git": "/usr/bin/git", "sh": "/bin/sh"}


def record(tag: str, workload: Workload | None = None, filename: str = "/bin/true") -> ProcessRecord:
    ev = event([Path(filename).name, tag], filename=filename.encode())
    return ProcessRecord(ev, workload)


def tagged(n: int, prefix: str = "t") -> list[ProcessRecord]:
    return [record(f"{prefix}{i}") for i in range(n)]


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # Short: a unix socket path must fit in 108 bytes, and pytest's tmp_path may not.
    path = Path(tempfile.mkdtemp(prefix="xl-grpc-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Served:
    def __init__(self, hub: Hub, service: GrpcService) -> None:
        self.hub, self.service, self.broker = hub, service, service.broker
        self.clients: list[StreamClient] = []

    def client(self, credentials: grpc.ChannelCredentials | None = None, **options: Any) -> StreamClient:
        c = StreamClient(self.service.address, credentials, **options)
        self.clients.append(c)
        return c

    def publish(self, records: list[Any]) -> list[Item]:
        return self.hub.publish(records)


Serve = Callable[..., Served]


@pytest.fixture
def serve(sock_dir: Path) -> Iterator[Serve]:
    running: list[Served] = []

    def make(listen: str = "unix", tls: TlsFiles | None = None, **broker: Any) -> Served:
        address = parse_listen(f"unix://{sock_dir}/s{len(running)}.sock" if listen == "unix" else listen)
        hub = Hub(stream_id=STREAM)
        service = GrpcService(Broker(STREAM, "node-1", **broker), address, tls)
        hub.add_outlet(service)
        service.start()
        served = Served(hub, service)
        running.append(served)
        return served

    yield make
    for served in running:
        for c in served.clients:
            c.close()
        served.hub.close(2)


def tags(reader: Reader) -> list[str]:
    return [argv1(i) for i in reader.execs()]


def test_seq_order_stream_id_and_a_first_checkpoint_over_unix_and_tcp(serve: Serve) -> None:
    for listen in ("unix", "127.0.0.1:0"):
        served = serve(listen)
        served.publish(tagged(3, "before"))
        reader = served.client().subscribe()
        first = reader.wait_for(lambda r: True)
        assert (first.stream_id, first.entry) == (STREAM, reader.checkpoints()[0])
        assert reader.checkpoints()[0].seq == 3  # live: what came before is behind it
        for start in range(0, 600, 100):
            served.publish(tagged(100, f"b{start}-"))
        reader.wait_for(lambda r: isinstance(r.entry, Item) and r.entry.seq == 603)
        items = reader.items()
        assert [i.seq for i in items] == list(range(4, 604))
        assert {r.stream_id for r in reader.received} == {STREAM}
        assert tags(reader)[:2] == ["b0-0", "b0-1"]


def test_filters_allow_deny_combined_and_label_selector(serve: Serve) -> None:
    served = serve()
    f = pb.Filter
    cases: dict[str, tuple[list[pb.Filter], list[pb.Filter]]] = {
        "all": ([], []),
        "namespace": ([f(namespaces=["coder"])], []),
        "selector": ([f(pod_selector="app=ws,owner notin (zac)")], []),
        "label": ([f(labels={"username": "zac"})], []),
        "prefix": ([f(binary_prefixes=["/usr/bin/"])], []),
        "deny": ([], [f(namespaces=["kube-system"]), f(binary_prefixes=["/bin/sh"])]),
        "combined": (
            [f(namespaces=["coder"], binary_prefixes=["/usr/bin/git"]), f(pod_selector="app=dns")],
            [f(labels={"username": "zac"})],
        ),
        "and_within": ([f(namespaces=["coder"], labels={"username": "jessie"}, pod_selector="app")], []),
    }
    readers = {
        name: served.client().subscribe(pb.SubscribeRequest(allow=a, deny=d))
        for name, (a, d) in cases.items()
    }
    for r in readers.values():
        r.wait_for(lambda x: True)  # subscribed: the first checkpoint came
    batch: list[Any] = []
    for who, workload in WORKLOADS.items():
        for short, path in BINARIES.items():
            batch.append(record(f"{who}-{short}", workload, path))
    served.publish(batch[:6])
    served.publish([Gap(4, KERNEL_RING_FULL, time.time_ns())])  # gaps pass every filter
    served.publish(batch[6:])
    served.hub.close(5)  # graceful: every stream gets all, then ends
    everything = [f"{w}-{b}" for w in WORKLOADS for b in BINARIES]
    expected = {
        "all": everything,
        "namespace": [t for t in everything if t.split("-")[0] in ("jessie", "zac")],
        "selector": ["jessie-curl", "jessie-git", "jessie-sh"],
        "label": ["zac-curl", "zac-git", "zac-sh"],
        "prefix": [t for t in everything if not t.endswith("-sh")],
        "deny": [t for t in everything if not t.startswith("dns-") and not t.endswith("-sh")],
        "combined": ["jessie-git", "dns-curl", "dns-git", "dns-sh"],
        "and_within": ["jessie-curl", "jessie-git", "jessie-sh"],
    }
    for name, reader in readers.items():
        reader.wait_end()
        assert reader.error is None, name
        assert tags(reader) == expected[name], name
        gaps = [gap_of(g) for g in reader.gaps()]
        assert [(g.lost, g.reason) for g in gaps] == [(4, KERNEL_RING_FULL)], name


def test_a_bad_filter_or_resume_point_is_refused_with_its_reason(serve: Serve) -> None:
    served = serve(max_subscribers=2)
    served.publish(tagged(5))
    client = served.client()
    bad = [
        (
            pb.SubscribeRequest(allow=[pb.Filter(pod_selector="app in (")]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "allow[0]",
        ),
        (pb.SubscribeRequest(resume_after=3), grpc.StatusCode.INVALID_ARGUMENT, "stream_id"),
        (
            pb.SubscribeRequest(stream_id=STREAM, resume_after=9),
            grpc.StatusCode.OUT_OF_RANGE,
            "past the last seq 5",
        ),
    ]
    for request, code, text in bad:
        reader = client.subscribe(request)
        reader.wait_end()
        assert reader.error is not None and reader.error.code() == code
        assert text in (reader.error.details() or "")
    keep = [client.subscribe() for _ in range(2)]
    for r in keep:
        r.wait_for(lambda x: True)
    third = client.subscribe()
    third.wait_end()
    assert third.error is not None and third.error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_resume_with_no_gap(serve: Serve) -> None:
    served = serve()
    client = served.client()
    first = client.subscribe()
    first.wait_for(lambda r: True)
    served.publish(tagged(50, "a"))
    first.wait_for(lambda r: isinstance(r.entry, Item) and r.entry.seq == 50)
    first.cancel()
    served.publish(tagged(30, "b"))  # while disconnected
    again = client.subscribe(pb.SubscribeRequest(stream_id=STREAM, resume_after=50))
    again.wait_for(lambda r: isinstance(r.entry, Item) and r.entry.seq == 80)
    served.publish(tagged(5, "c"))
    again.wait_for(lambda r: isinstance(r.entry, Item) and r.entry.seq == 85)
    assert [i.seq for i in again.items()] == list(range(51, 86))
    assert again.gaps() == []
    assert tags(again)[:2] == ["b0", "b1"]
    # the checkpoint after the replay says where the replay ended
    assert [c.seq for c in again.checkpoints()][:1] == [80]


def test_resume_from_an_evicted_seq_starts_with_a_gap(serve: Serve) -> None:
    served = serve(replay_capacity=20)
    served.publish(tagged(100))
    reader = served.client().subscribe(pb.SubscribeRequest(stream_id=STREAM, resume_after=10))
    reader.wait_for(lambda r: isinstance(r.entry, Item) and r.entry.seq == 100)
    first = reader.received[0]
    gap = gap_of(first)
    assert first.stream_id == STREAM
    assert (gap.reason, gap.first_seq, gap.last_seq, gap.lost) == (RESUME_POINT_LOST, 11, 80, 70)
    assert [i.seq for i in reader.items()] == list(range(81, 101))


def test_resume_from_an_unknown_stream_is_a_gap_then_this_stream(serve: Serve) -> None:
    served = serve(replay_capacity=20)
    served.publish(tagged(10))
    reader = served.client().subscribe(pb.SubscribeRequest(stream_id="an-earlier-run", resume_after=1234))
    reader.wait_for(lambda r: isinstance(r.entry, Item) and r.entry.seq == 10)
    old = reader.received[0]
    assert old.stream_id == "an-earlier-run"
    assert (gap_of(old).reason, gap_of(old).first_seq, gap_of(old).last_seq, gap_of(old).lost) == (
        RESUME_POINT_LOST, 1235, None, 0,
    )  # fmt: skip
    assert [i.seq for i in reader.items()] == list(range(1, 11))  # all of this run: nothing missed
    served.publish(tagged(30))  # now seqs 1-20 are evicted
    late = served.client().subscribe(pb.SubscribeRequest(stream_id="an-earlier-run", resume_after=1))
    late.wait_for(lambda r: isinstance(r.entry, Item) and r.entry.seq == 40)
    gaps = [gap_of(g) for g in late.gaps()]
    assert [(g.first_seq, g.last_seq, g.lost) for g in gaps] == [(2, None, 0), (1, 20, 20)]
    assert [i.seq for i in late.items()] == list(range(21, 41))


def test_a_stuck_subscriber_loses_only_its_own_records_and_each_loss_is_a_gap(serve: Serve) -> None:
    served = serve(queue_capacity=50)
    # No window growth: the stuck client's transport holds little, so its queue must overflow.
    stuck = served.client(**{"grpc.http2.bdp_probe": 0}).subscribe(start=False)
    fast = served.client().subscribe()
    fast.wait_for(lambda r: True)
    stuck.call.initial_metadata()  # the stream is open on the server
    deadline = time.monotonic() + 10
    while len(served.broker.subscribers) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    published = 0
    for _ in range(100):
        served.publish(tagged(50, f"s{published}-"))
        published += 50
        # The fast reader keeps up; pacing it keeps this test about the stuck one.
        fast.wait_for(lambda r, n=published: isinstance(r.entry, Item) and r.entry.seq == n)
    assert [i.seq for i in fast.items()] == list(range(1, published + 1))
    assert fast.gaps() == []
    subscription = next(s for s in served.broker.subscribers if s.sent < published)
    assert subscription.lost > 0
    stuck.start()
    served.hub.close(10)
    stuck.wait_end()
    assert stuck.error is None
    gaps = [gap_of(g) for g in stuck.gaps()]
    assert gaps and all(g.reason == SUBSCRIBER_TOO_SLOW for g in gaps)
    assert sum(g.lost for g in gaps) == subscription.lost == served.broker.lost
    seen = [i.seq for i in stuck.items()]
    for g in gaps:
        assert g.first_seq is not None and g.last_seq is not None
        seen.extend(range(g.first_seq, g.last_seq + 1))
    assert sorted(seen) == list(range(1, published + 1))  # every seq once: sent or in a gap
    order = [
        r.entry.seq if isinstance(r.entry, Item) else gap_of(r).first_seq
        for r in stuck.received
        if not isinstance(r.entry, Checkpoint)
    ]
    assert order == sorted(order)  # and in seq order


def test_stop_delivers_everything_published_then_ends_the_stream(serve: Serve) -> None:
    served = serve()
    reader = served.client().subscribe()
    reader.wait_for(lambda r: True)
    served.publish(tagged(500))
    served.hub.close(10)
    reader.wait_end()
    assert reader.error is None  # status OK, not cancelled
    assert [i.seq for i in reader.items()] == list(range(1, 501))


def test_a_subscriber_that_never_reads_cannot_hold_up_the_stop_and_its_loss_is_logged(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    served = serve(queue_capacity=100_000)
    stuck = served.client(**{"grpc.http2.bdp_probe": 0}).subscribe(start=False)
    stuck.call.initial_metadata()
    deadline = time.monotonic() + 10
    while not served.broker.subscribers and time.monotonic() < deadline:
        time.sleep(0.01)
    served.publish(tagged(3000))  # far more than the transport takes without a reader
    (subscription,) = served.broker.subscribers
    started = time.monotonic()
    assert served.broker.close(0.5) is False
    assert time.monotonic() - started < 5
    undelivered = len(subscription.queue) + subscription.in_flight
    assert undelivered > 0
    assert f"(up to {undelivered} records)" in caplog.text
    assert "which they lose" in caplog.text
    stuck.cancel()


def test_an_idle_filtered_subscriber_gets_checkpoints(serve: Serve) -> None:
    served = serve(checkpoint_interval=0.1)
    reader = served.client().subscribe(pb.SubscribeRequest(allow=[pb.Filter(namespaces=["nothing-here"])]))
    reader.wait_for(lambda r: True)
    served.publish(tagged(25))
    cp = reader.wait_for(lambda r: getattr(r.entry, "seq", 0) == 25)
    assert reader.items() == [] and cp.stream_id == STREAM


def test_status_health_and_reflection(serve: Serve) -> None:
    served = serve(replay_capacity=10)
    served.publish(tagged(15))
    client = served.client()
    reader = client.subscribe(pb.SubscribeRequest(client_name="siem-1"))
    reader.wait_for(lambda r: True)
    status = client.status()
    assert (status.stream_id, status.node, status.last_seq, status.oldest_seq) == (STREAM, "node-1", 15, 6)
    assert status.replay_capacity == 10
    assert [(s.name, s.sent, s.lost) for s in status.subscribers] == [("siem-1", 0, 0)]
    check = health_pb2_grpc.HealthStub(client.channel).Check(
        health_pb2.HealthCheckRequest(service="execlog.v1.ExecLog")
    )
    assert check.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(client.channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"execlog.v1.ExecLog", "grpc.health.v1.Health"} <= names


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority.create(root / "ca", "execlog-ca")
    other = CertificateAuthority.create(root / "other", "other-ca")
    return {
        "ca": ca,
        "server": ca.issue_server_cert(root / "server", "collector"),
        "client": ca.issue_client_cert(root / "client", "siem"),
        "stranger": other.issue_client_cert(root / "stranger", "stranger"),
    }


def test_mtls_accepts_a_client_of_its_ca_and_refuses_the_rest(serve: Serve, pki: dict[str, Any]) -> None:
    server = pki["server"]
    served = serve("127.0.0.1:0", TlsFiles(server.cert_file, server.key_file, pki["ca"].cert_file))
    ca = pki["ca"].cert_file
    good = served.client(tls_credentials(ca, pki["client"].cert_file, pki["client"].key_file)).subscribe()
    assert good.wait_for(lambda r: True).stream_id == STREAM
    for name, credentials in {
        "no client certificate": tls_credentials(ca),
        "another CA's certificate": tls_credentials(ca, pki["stranger"].cert_file, pki["stranger"].key_file),
    }.items():
        reader = served.client(credentials).subscribe()
        reader.wait_end()
        assert reader.error is not None, name
        assert reader.error.code() == grpc.StatusCode.UNAVAILABLE, name
        assert reader.received == [], name


def test_tls_without_client_certificates_and_no_plaintext(serve: Serve, pki: dict[str, Any]) -> None:
    server = pki["server"]
    served = serve("127.0.0.1:0", TlsFiles(server.cert_file, server.key_file))
    good = served.client(tls_credentials(pki["ca"].cert_file)).subscribe()
    assert good.wait_for(lambda r: True).stream_id == STREAM
    plain = served.client().subscribe()
    plain.wait_end()
    assert plain.error is not None and plain.error.code() == grpc.StatusCode.UNAVAILABLE


def test_publish_is_not_held_up_by_subscribers_that_do_not_read(serve: Serve) -> None:
    served = serve(queue_capacity=10)
    stuck = [served.client(**{"grpc.http2.bdp_probe": 0}).subscribe(start=False) for _ in range(3)]
    for s in stuck:
        s.call.initial_metadata()
    done = threading.Event()

    def publish() -> None:
        for _ in range(200):
            served.publish(tagged(50))
        done.set()

    threading.Thread(target=publish, daemon=True).start()
    assert done.wait(60), "publish blocked"
    assert served.broker.replay.newest == 10_000


def test_batched_responses_carry_the_same_records_in_fewer_messages(serve: Serve) -> None:
    served = serve()
    client = served.client()
    single = client.subscribe()
    batched = client.subscribe(pb.SubscribeRequest(max_batch=100))
    for reader in (single, batched):
        reader.wait_for(lambda r: True)
    served.publish(tagged(1000))
    served.publish([Gap(2, KERNEL_RING_FULL, time.time_ns())])
    for reader in (single, batched):
        reader.wait_for(lambda r: isinstance(r.entry, Item) and r.entry.seq == 1001)
    assert [(r.stream_id, r.entry) for r in batched.received] == [
        (r.stream_id, r.entry) for r in single.received
    ]
    assert single.responses == len(single.received)
    assert 11 <= batched.responses < len(batched.received) / 10  # checkpoint + >= 10 batches of <= 100
