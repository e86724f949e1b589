"""Records on the wire: encoded once, equal to a message built field by field, and back again."""

from __future__ import annotations

import orjson
import pytest

from collector._proto.execlog.v1 import execlog_pb2 as pb
from collector.hub import (
    KERNEL_RING_FULL,
    MALFORMED_RECORD,
    OUTLET_QUEUE_FULL,
    RESUME_POINT_LOST,
    SUBSCRIBER_TOO_SLOW,
    Gap,
    Item,
)
from collector.k8s import ProcessRecord, Workload
from collector.outlets.grpc.wire import REASONS, Checkpoint, Encoder, decode, reason_name
from collector.outlets.jsonlog import JsonFormatter
from collector.policy import SuppressedRecord
from tests.support.records import WORKLOAD, event

STREAM = "0ef61602-7ab2-416a-9501-7604ea881f15"


def exec_record(workload: Workload | None = WORKLOAD) -> ProcessRecord:
    ev = event(["curl", "-H", "Authorization: Bearer abc"], filename=b"/usr/bin/curl")
    ev.truncated = True
    ev.argv = ["curl", "-H", "Authorization: Bearer ****"]
    return ProcessRecord(ev, workload, ("authorization_header",))


def parse(data: bytes) -> pb.SubscribeResponse:
    return pb.SubscribeResponse.FromString(data)


def same_json(a: bytes, b: bytes) -> bool:
    """Equal as JSON: a protobuf map does not keep the order of the labels."""
    return bool(orjson.loads(a) == orjson.loads(b))


def test_exec_bytes_are_the_message_built_field_by_field() -> None:
    record = exec_record()
    ev = record.event
    expected = pb.SubscribeResponse(
        exec=pb.ExecEvent(
            seq=42,
            stream_id=STREAM,
            node="node-1",
            labels={"username": "jessie", "workspace_name": "main"},
            process=pb.Process(
                filename="/usr/bin/curl",
                argv=record.event.argv,  # type: ignore[attr-defined]
                truncated=True,
                pid=ev.pid,
                ppid=ev.ppid,
                uid=ev.uid,
                gid=ev.gid,
                euid=ev.euid,
                egid=ev.egid,
                comm="bash",
                cmdline="curl -H Authorization: Bearer ****",
                argc=3,
                argv_bytes=ev.argv_size,
                cgroup_id=ev.cgroup_id,
                cgroup=ev.cgroup_name,
                parent_cgroup=ev.parent_cgroup_name,
                pid_ns=ev.pid_ns,
                mnt_ns=ev.mnt_ns,
            ),
            kubernetes=pb.Kubernetes(
                node="node-1",
                namespace="coder",
                pod="ws-jessie-main",
                pod_uid="6a1f",
                container="dev",
                container_id="containerd://abc",
                nested_container_id="def",
                pod_labels={"app": "workspace", "com.coder.username": "jessie"},
            ),
            redacted=["authorization_header"],
        )
    )
    expected.exec.time.FromNanoseconds(ev.time_ns)
    encoder = Encoder(STREAM, "node-1")
    assert parse(encoder.exec(42, record)) == expected
    # the cached workload part is reused, and a different workload is not confused with it
    assert parse(encoder.exec(42, record)) == expected
    other = Workload("node-1", "other", "p", "u", "c", "id", labels={"username": "zac"})
    again = parse(encoder.exec(43, exec_record(other)))
    assert (again.exec.kubernetes.namespace, dict(again.exec.labels)) == ("other", {"username": "zac"})


def test_the_secret_in_event_argv_never_reaches_the_wire() -> None:
    data = Encoder(STREAM, "n").exec(1, exec_record())
    assert b"Bearer abc" not in data
    assert b"Bearer ****" in data


@pytest.mark.parametrize("workload", [WORKLOAD, None])
def test_json_of_a_decoded_exec_is_the_collectors_json(workload: Workload | None) -> None:
    record = exec_record(workload)
    fmt = JsonFormatter(STREAM)
    received = decode(parse(Encoder(STREAM, "node-1").exec(7, record)))
    assert received.stream_id == STREAM
    assert received.node == "node-1"
    assert isinstance(received.entry, Item)
    assert same_json(fmt.line(received.entry), fmt.line(Item(7, record)))


def test_suppressed_summary_round_trip() -> None:
    summary = SuppressedRecord(
        WORKLOAD, 42, "cri-containerd-x.scope", 950, 1_646_080_178_000_000_000, 1_646_080_183_500_000_000,
        (("/usr/bin/cc1", 600), ("/usr/bin/as", 350)),
    )  # fmt: skip
    received = decode(parse(Encoder(STREAM, "node-1").item(Item(5, summary))))
    assert isinstance(received.entry, Item)
    fmt = JsonFormatter(STREAM)
    assert same_json(fmt.line(received.entry), fmt.line(Item(5, summary)))


def test_gaps_round_trip_with_and_without_their_own_seq() -> None:
    encoder, fmt = Encoder(STREAM, "n"), JsonFormatter(STREAM)
    kernel = Gap(12, KERNEL_RING_FULL, 1_646_080_178_000_000_001)
    received = decode(parse(encoder.item(Item(9, kernel))))
    assert isinstance(received.entry, Item)
    assert fmt.line(received.entry) == fmt.line(Item(9, kernel))
    slow = Gap(3, SUBSCRIBER_TOO_SLOW, 5, 10, 12)
    message = parse(encoder.gap(slow))
    assert message.gap.reason == pb.Gap.REASON_SUBSCRIBER_TOO_SLOW
    assert (message.gap.seq, message.gap.first_seq, message.gap.last_seq) == (0, 10, 12)
    assert decode(message).entry == slow
    # an old stream's resume point: the end is unknown, and the gap names that stream
    old = decode(parse(encoder.gap(Gap(0, RESUME_POINT_LOST, 5, 101, None), stream_id="old")))
    assert old.stream_id == "old"
    assert isinstance(old.entry, Gap) and (old.entry.first_seq, old.entry.last_seq) == (101, None)


def test_reason_names_are_the_json_reasons() -> None:
    assert set(REASONS) == {KERNEL_RING_FULL, SUBSCRIBER_TOO_SLOW, RESUME_POINT_LOST, MALFORMED_RECORD}
    for name, value in REASONS.items():
        assert reason_name(value) == name
    assert OUTLET_QUEUE_FULL not in REASONS  # stdout's own loss never reaches a subscriber


def test_checkpoint() -> None:
    assert decode(parse(Encoder(STREAM, "n").checkpoint(77))).entry == Checkpoint(STREAM, 77)


def test_batches_stay_near_one_mebibyte_and_decode_in_order() -> None:
    from collector.outlets.grpc.wire import batch_responses, decode_all

    encoder = Encoder(STREAM, "n")
    big = ["x" * 1000]
    responses = [encoder.exec(seq, ProcessRecord(event(big), None)) for seq in range(1, 3001)]
    batches = list(batch_responses(responses))
    item = len(responses[0]) + 3  # with its field key and length
    assert sum(len(b) for b in batches) > 6 << 20
    assert all(len(b) <= (1 << 20) + 8 for b in batches)  # the body's key and length on top
    assert all(len(b) > (1 << 20) - item for b in batches[:-1])  # each one as full as it fits
    decoded = [r for b in batches for r in decode_all(parse(b))]
    assert [r.entry.seq for r in decoded if isinstance(r.entry, Item)] == list(range(1, 3001))


def test_a_containers_records_share_one_part_and_parse_whole() -> None:
    encoder = Encoder(STREAM, "node-1")
    first, second = exec_record(), exec_record()
    own1, shared1 = encoder.exec_parts(1, first)
    own2, shared2 = encoder.exec_parts(2, second)
    assert shared1 is shared2  # held once by the replay buffer, whatever the count of records
    assert parse(own1 + shared1).exec.seq == 1
    assert parse(own2 + shared2) == parse(encoder.exec(2, second))
    other = exec_record(Workload("node-1", "other", "p", "u", "c", "id", labels={"username": "zac"}))
    _, shared3 = encoder.exec_parts(3, other)
    assert shared3 is not shared1
    assert dict(parse(b"".join(encoder.exec_parts(3, other))).exec.labels) == {"username": "zac"}
