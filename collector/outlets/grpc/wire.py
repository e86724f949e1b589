"""execlog's records on the wire (execlog.v1 protobuf), both ways.

`Encoder` runs on the hub's publishing thread, once per record: every subscriber sends the same
bytes. To keep that cheap, what does not change from event to event is serialized once and
appended as bytes: the stream id and node, and each workload's labels and Kubernetes block
(a workload is one object per container, shared by its events). Protobuf parses concatenated
encodings of one message as that message with all their fields, so the result is an ordinary
ExecEvent; tests check it against one built field by field.

`decode` turns a response back into the collector's own records, so `execlog tail --output json`
prints them with the same JsonFormatter as the collector's stdout. Fields the wire does not carry
(the event's boot-time stamp, cgroup ancestors, decoder flags) come back as zero.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from collector._proto.execlog.v1 import execlog_pb2 as pb
from collector.event import ExecEvent
from collector.hub import (
    KERNEL_RING_FULL,
    MALFORMED_RECORD,
    RESUME_POINT_LOST,
    SUBSCRIBER_TOO_SLOW,
    Gap,
    Item,
    Record,
    record_type,
)
from collector.k8s import PerWorkload, ProcessRecord, Workload
from collector.policy import SuppressedRecord

__all__ = [
    "REASONS",
    "Checkpoint",
    "Encoder",
    "Received",
    "batch_responses",
    "decode",
    "decode_all",
    "reason_name",
]

_NS: Final = 1_000_000_000
_CgroupKey = tuple[int, str, str, int, int]
_CACHE_MAX: Final = 1024  # containers or workloads whose encoded parts are kept; more than a node runs

# The enum value of each JSON reason string; the names match (REASON_KERNEL_RING_FULL).
REASONS: Final[Mapping[str, int]] = {
    KERNEL_RING_FULL: pb.Gap.REASON_KERNEL_RING_FULL,
    SUBSCRIBER_TOO_SLOW: pb.Gap.REASON_SUBSCRIBER_TOO_SLOW,
    RESUME_POINT_LOST: pb.Gap.REASON_RESUME_POINT_LOST,
    MALFORMED_RECORD: pb.Gap.REASON_MALFORMED_RECORD,
}


def reason_name(value: int) -> str:
    """The JSON name of a Gap.Reason: REASON_KERNEL_RING_FULL -> kernel_ring_full."""
    return pb.Gap.Reason.Name(value).removeprefix("REASON_").lower()


_ONE_BYTE: Final = tuple(bytes((i,)) for i in range(0x80))


def _varint(value: int) -> bytes:
    """Protobuf's base-128 varint. Unrolled for up to five bytes (every value a record carries
    but namespace inodes and seconds): a loop costs ~5k instructions a value, this ~1k."""
    if value < 0x80:
        return _ONE_BYTE[value]
    if value < 0x4000:
        return bytes((value & 0x7F | 0x80, value >> 7))
    if value < 0x200000:
        return bytes((value & 0x7F | 0x80, value >> 7 & 0x7F | 0x80, value >> 14))
    if value < 0x10000000:
        return bytes((value & 0x7F | 0x80, value >> 7 & 0x7F | 0x80, value >> 14 & 0x7F | 0x80, value >> 21))
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _wrap(field_key: bytes, body: bytes) -> bytes:
    """A length-delimited field: its key byte, the body's length, the body."""
    return field_key + _varint(len(body)) + body


# SubscribeResponse's oneof fields as wire keys: field number << 3 | 2 (length-delimited).
_EXEC_KEY: Final = b"\x0a"
_SUPPRESSED_KEY: Final = b"\x1a"


_BATCH_KEY: Final = b"\x2a"  # SubscribeResponse.batch, field 5
_ITEM_KEY: Final = b"\x0a"  # Batch.items, field 1
_BATCH_BYTES: Final = 1 << 20  # well below gRPC's default 4 MiB limit on what a client receives


def batch_responses(responses: list[bytes]) -> Iterator[bytes]:
    """Serialized responses as SubscribeResponse{batch}s of about 1 MiB at most, by concatenation."""
    body: list[bytes] = []
    size = 0
    for response in responses:
        item = _wrap(_ITEM_KEY, response)
        if body and size + len(item) > _BATCH_BYTES:
            yield _wrap(_BATCH_KEY, b"".join(body))
            body, size = [], 0
        body.append(item)
        size += len(item)
    if body:
        yield _wrap(_BATCH_KEY, b"".join(body))


def _timestamp(time_ns: int) -> dict[str, int]:
    seconds, nanos = divmod(time_ns, _NS)
    return {"seconds": seconds, "nanos": nanos}


def kubernetes(workload: Workload) -> pb.Kubernetes:
    return pb.Kubernetes(
        node=workload.node,
        namespace=workload.namespace,
        pod=workload.pod,
        pod_uid=workload.pod_uid,
        container=workload.container,
        container_id=workload.container_id,
        nested_container_id=workload.nested_container_id or "",
        unresolved=not workload.resolved,
        pod_labels=dict(workload.pod_labels),
    )


class Encoder:
    """Serializes records as SubscribeResponse messages. Used by one thread at a time."""

    def __init__(self, stream_id: str, node: str) -> None:
        self.stream_id = stream_id
        self.node = node
        self._constant = pb.ExecEvent(stream_id=stream_id, node=node).SerializeToString()
        # Per workload (dropped with it): its encoded labels and Kubernetes block, and its
        # containers' shared parts by cgroup. Standalone records have no workload.
        self._workloads: PerWorkload[bytes] = PerWorkload(_CACHE_MAX)
        self._shared_parts: PerWorkload[dict[_CgroupKey, bytes]] = PerWorkload(_CACHE_MAX)
        self._standalone_parts: dict[_CgroupKey, bytes] = {}
        self._second, self._second_field = -1, b""  # Timestamp.seconds, encoded once a second
        # One encoder per record type (a process record's event type, SuppressedRecord, Gap):
        # (seq, record) -> a serialized SubscribeResponse.
        self.encoders: dict[type, Callable[[int, Any], bytes]] = {
            ExecEvent: self.exec,
            SuppressedRecord: self.suppressed,
            Gap: lambda seq, gap: self.gap(gap, seq),
        }

    def _workload_part(self, workload: Workload | None) -> bytes:
        if workload is None:
            return b""
        part = self._workloads.get(workload)
        if part is None:
            message = pb.ExecEvent(labels=dict(workload.labels), kubernetes=kubernetes(workload))
            part = self._workloads.put(workload, message.SerializeToString())
        return part

    def item(self, item: Item) -> bytes:
        record: Record = item.record
        return self.encoders[record_type(record)](item.seq, record)

    def _shared(self, ev: ExecEvent, workload: Workload | None) -> bytes:
        """The part of an exec's message that its container's other execs share: a second
        `process` field with the cgroup and namespace fields (protobuf merges repeated message
        fields), the stream's constants, and the workload's labels and Kubernetes block. One bytes
        object per container, referenced by every one of its records in the replay buffer."""
        key = (ev.cgroup_id, ev.cgroup_name, ev.parent_cgroup_name, ev.pid_ns, ev.mnt_ns)
        if workload is None:
            parts = self._standalone_parts
        else:
            found = self._shared_parts.get(workload)
            parts = found if found is not None else self._shared_parts.put(workload, {})
        part = parts.get(key)
        if part is None:
            if len(parts) >= _CACHE_MAX:
                parts.clear()
            cgroup = pb.Process(
                cgroup_id=ev.cgroup_id,
                cgroup=ev.cgroup_name,
                parent_cgroup=ev.parent_cgroup_name,
                pid_ns=ev.pid_ns,
                mnt_ns=ev.mnt_ns,
            ).SerializeToString()
            part = parts[key] = (
                b"\x32" + _varint(len(cgroup)) + cgroup + self._constant + self._workload_part(workload)
            )
        return part

    def exec_parts(self, seq: int, record: ProcessRecord) -> tuple[bytes, bytes]:
        """The response for an exec as (its own bytes, the bytes its container shares): their
        concatenation is the serialized SubscribeResponse."""
        # A message's serialized fields may be concatenated in any order, and a message object
        # costs ~7k instructions to build. So only Process's per-exec fields go through protobuf;
        # seq and time are written as varints, and the per-container part is cached.
        ev = record.event
        assert type(ev) is ExecEvent
        argv = ev.argv
        process = pb.Process(
            filename=ev.filename,
            argv=argv,
            truncated=ev.truncated,
            pid=ev.pid,
            ppid=ev.ppid,
            uid=ev.uid,
            gid=ev.gid,
            euid=ev.euid,
            egid=ev.egid,
            comm=ev.comm,
            cmdline=" ".join(argv),
            argc=ev.argc,
            argv_bytes=ev.argv_size,
            non_utf8=ev.non_utf8,
        ).SerializeToString()
        seconds, nanos = divmod(ev.time_ns, _NS)
        if seconds != self._second:
            self._second, self._second_field = seconds, b"\x08" + _varint(seconds)
        time = self._second_field + b"\x10" + _varint(nanos)
        own = b"".join(
            (
                b"\x08",  # ExecEvent.seq
                _varint(seq),
                b"\x1a",  # ExecEvent.time
                _varint(len(time)),
                time,
                b"\x32",  # ExecEvent.process
                _varint(len(process)),
                process,
                pb.ExecEvent(redacted=record.redactions).SerializeToString() if record.redactions else b"",
            )
        )
        shared = self._shared(ev, record.workload)
        # SubscribeResponse.exec's length prefix covers both parts, so it goes in front of the own.
        return _EXEC_KEY + _varint(len(own) + len(shared)) + own, shared

    def exec(self, seq: int, record: ProcessRecord) -> bytes:
        own, shared = self.exec_parts(seq, record)
        return own + shared

    def suppressed(self, seq: int, record: SuppressedRecord) -> bytes:
        workload = record.workload
        message = pb.ExecSuppressed(
            seq=seq,
            stream_id=self.stream_id,
            time=_timestamp(record.interval_end_ns),
            node=self.node,
            labels=dict(workload.labels) if workload is not None else {},
            kubernetes=kubernetes(workload) if workload is not None else None,
            suppressed=record.suppressed,
            interval_start=_timestamp(record.interval_start_ns),
            interval_end=_timestamp(record.interval_end_ns),
            top_binaries=[pb.BinaryCount(filename=name, count=count) for name, count in record.top_binaries],
            cgroup_id=record.cgroup_id,
            cgroup=record.cgroup_name,
        )
        return _wrap(_SUPPRESSED_KEY, message.SerializeToString())

    def gap(self, gap: Gap, seq: int = 0, stream_id: str | None = None) -> bytes:
        message = pb.Gap(
            seq=seq,
            stream_id=self.stream_id if stream_id is None else stream_id,
            time=_timestamp(gap.time_ns),
            lost=gap.lost,
            reason=REASONS.get(gap.reason, pb.Gap.REASON_UNSPECIFIED),  # type: ignore[arg-type]
        )
        if gap.first_seq is not None:
            message.first_seq = gap.first_seq
        if gap.last_seq is not None:
            message.last_seq = gap.last_seq
        return pb.SubscribeResponse(gap=message).SerializeToString()

    def checkpoint(self, seq: int) -> bytes:
        return pb.SubscribeResponse(
            checkpoint=pb.Checkpoint(stream_id=self.stream_id, seq=seq)
        ).SerializeToString()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    stream_id: str
    seq: int


def _ns(ts: object) -> int:
    seconds: int = getattr(ts, "seconds", 0)
    nanos: int = getattr(ts, "nanos", 0)
    return seconds * _NS + nanos


def _workload(message: pb.ExecEvent | pb.ExecSuppressed) -> Workload | None:
    if not message.HasField("kubernetes"):
        return None
    k = message.kubernetes
    return Workload(
        node=k.node,
        namespace=k.namespace,
        pod=k.pod,
        pod_uid=k.pod_uid,
        container=k.container,
        container_id=k.container_id,
        nested_container_id=k.nested_container_id or None,
        labels=dict(message.labels),
        pod_labels=dict(k.pod_labels),
        resolved=not k.unresolved,
    )


@dataclass(frozen=True, slots=True)
class Received:
    stream_id: str  # the stream the entry's seqs belong to
    node: str  # the collector's node; "" for gaps and checkpoints
    entry: Item | Gap | Checkpoint


def _decode_exec(m: pb.ExecEvent) -> Received:
    p = m.process
    event = ExecEvent(
        time_ns=_ns(m.time),
        boot_ns=0,
        pid=p.pid,
        ppid=p.ppid,
        uid=p.uid,
        gid=p.gid,
        euid=p.euid,
        egid=p.egid,
        pid_ns=p.pid_ns,
        mnt_ns=p.mnt_ns,
        cgroup_id=p.cgroup_id,
        cgroup_ancestors=(),
        cgroup_name=p.cgroup,
        parent_cgroup_name=p.parent_cgroup,
        comm=p.comm,
        filename=p.filename,
        argv=list(p.argv),
        argc=p.argc,
        argv_size=p.argv_bytes,
        truncated=p.truncated,
        non_utf8=p.non_utf8,
        flags=0,
    )
    record = ProcessRecord(event, _workload(m), tuple(m.redacted))
    return Received(m.stream_id, m.node, Item(m.seq, record))


def _decode_suppressed(s: pb.ExecSuppressed) -> Received:
    summary = SuppressedRecord(
        workload=_workload(s),
        cgroup_id=s.cgroup_id,
        cgroup_name=s.cgroup,
        suppressed=s.suppressed,
        interval_start_ns=_ns(s.interval_start),
        interval_end_ns=_ns(s.interval_end),
        top_binaries=tuple((b.filename, b.count) for b in s.top_binaries),
    )
    return Received(s.stream_id, s.node, Item(s.seq, summary))


def _decode_gap(g: pb.Gap) -> Received:
    gap = Gap(
        lost=g.lost,
        reason=reason_name(g.reason),
        time_ns=_ns(g.time),
        first_seq=g.first_seq if g.HasField("first_seq") else None,
        last_seq=g.last_seq if g.HasField("last_seq") else None,
    )
    return Received(g.stream_id, "", Item(g.seq, gap) if g.seq else gap)


def _decode_checkpoint(c: pb.Checkpoint) -> Received:
    return Received(c.stream_id, "", Checkpoint(c.stream_id, c.seq))


# SubscribeResponse's oneof `item`, by field name -> how it becomes the collector's own record.
_DECODERS: Final[Mapping[str, Callable[[Any], Received]]] = {
    "exec": _decode_exec,
    "suppressed": _decode_suppressed,
    "gap": _decode_gap,
    "checkpoint": _decode_checkpoint,
}


def decode(response: pb.SubscribeResponse) -> Received:
    """A response as the collector's own record."""
    kind = response.WhichOneof("item")
    if kind == "batch":
        raise ValueError("a Batch holds several responses: use decode_all")
    decoder = _DECODERS.get(kind or "")
    if decoder is None:
        raise ValueError(f"a response with no item ({kind!r}): the server is newer than this client")
    return decoder(getattr(response, kind or ""))


def decode_all(response: pb.SubscribeResponse) -> list[Received]:
    """A response, or each response of a Batch, as the collector's own records."""
    if response.WhichOneof("item") == "batch":
        return [decode(item) for item in response.batch.items]
    return [decode(response)]
