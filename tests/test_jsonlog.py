"""The JSON outlet: the reference record's shape, and loss that is counted and shown."""

from __future__ import annotations

import contextlib
import errno
import gc
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from collector.hub import KERNEL_RING_FULL, OUTLET_QUEUE_FULL, Gap, Hub, Item
from collector.k8s import ProcessRecord, Workload
from collector.outlets.jsonlog import JsonFormatter, JsonLogOutlet
from collector.policy import SuppressedRecord
from tests.support.records import WORKLOAD, event

STREAM = "3f1c3c9e-0000-4000-8000-000000000001"


def exec_item(seq: int, argv: list[str] | None = None, workload: Workload | None = None) -> Item:
    ev = event(argv or ["uname", "-a"], filename=b"/usr/bin/uname")
    return Item(seq, ProcessRecord(ev, workload))


def parse(line: bytes) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(line)
    return doc


def test_reference_keys_keep_their_paths() -> None:
    doc = parse(JsonFormatter(STREAM).line(exec_item(7)))
    assert doc["level"] == "INFO"
    assert doc["msg"] == "exec"
    fields = doc["fields"]
    assert fields["labels"] == {}
    assert fields["cmdline"] == "uname -a"
    ev = fields["event"]
    assert ev["filename"] == "/usr/bin/uname"
    assert ev["argv"] == ["uname", "-a"]
    assert ev["truncated"] is False
    assert (ev["pid"], ev["uid"], ev["gid"], ev["comm"]) == (1234, 1001, 1002, "bash")
    # execlog's additions sit beside the reference keys
    assert (ev["ppid"], ev["argc"], ev["argv_bytes"]) == (1000, 2, 9)
    assert (ev["cgroup_id"], ev["pid_ns"], ev["mnt_ns"]) == (77, 4026531836, 4026531832)
    assert (fields["seq"], fields["stream_id"]) == (7, STREAM)
    assert "kubernetes" not in fields


def test_ts_is_rfc3339_utc_with_nanoseconds_of_the_exec() -> None:
    fmt = JsonFormatter(STREAM)
    assert fmt.ts(1_646_080_178_038_452_202) == "2022-02-28T20:29:38.038452202Z"
    assert fmt.ts(1_646_080_178_000_000_001) == "2022-02-28T20:29:38.000000001Z"
    assert fmt.ts(1_646_080_179_000_000_000) == "2022-02-28T20:29:39.000000000Z"
    # the record's ts is the kernel's time of the exec (boot_ns + offset), not the time of logging
    item = exec_item(1)
    assert isinstance(item.record, ProcessRecord)
    assert parse(fmt.line(item))["ts"] == fmt.ts(item.record.event.time_ns)


def test_kubernetes_block_and_labels() -> None:
    fields = parse(JsonFormatter(STREAM).line(exec_item(1, workload=WORKLOAD)))["fields"]
    assert fields["labels"] == {"username": "jessie", "workspace_name": "main"}
    assert fields["kubernetes"] == {
        "node": "node-1",
        "namespace": "coder",
        "pod": "ws-jessie-main",
        "pod_uid": "6a1f",
        "container": "dev",
        "container_id": "containerd://abc",
        "nested_container_id": "def",
    }


def test_gap_lines() -> None:
    fmt = JsonFormatter(STREAM)
    kernel = parse(fmt.line(Item(9, Gap(5, KERNEL_RING_FULL, 0))))
    assert kernel["msg"] == "gap"
    assert kernel["level"] == "WARN"
    assert kernel["fields"] == {"lost": 5, "reason": "kernel_ring_full", "seq": 9, "stream_id": STREAM}
    outlet = parse(fmt.line(Gap(3, OUTLET_QUEUE_FULL, 0, 10, 12)))
    assert outlet["fields"] == {
        "lost": 3,
        "reason": "outlet_queue_full",
        "first_seq": 10,
        "last_seq": 12,
        "stream_id": STREAM,
    }


def test_non_utf8_argv_is_valid_json_with_escapes() -> None:
    ev = event(["x"])
    ev.argv = ["caf\\xff"]
    ev.non_utf8 = True
    doc = parse(JsonFormatter(STREAM).line(Item(1, ProcessRecord(ev, None))))
    assert doc["fields"]["event"]["argv"] == ["caf\\xff"]
    assert doc["fields"]["event"]["non_utf8"] is True


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        with contextlib.suppress(OSError):
            os.close(fd)


def read_lines(fd: int, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    data = b""
    deadline = time.monotonic() + timeout
    while data.count(b"\n") < count and time.monotonic() < deadline:
        data += os.read(fd, 1 << 20)
    return [parse(line) for line in data.splitlines()]


def test_blocked_stdout_never_blocks_the_publisher_and_loss_is_exact(pipe: tuple[int, int]) -> None:
    r, w = pipe
    outlet = JsonLogOutlet(w, STREAM, capacity=50)
    hub = Hub([outlet], stream_id=STREAM)
    published = 0
    # Nobody reads the pipe: the writer thread blocks once the pipe buffer (64 KiB) is full.
    done = threading.Event()

    def publish() -> None:
        nonlocal published
        for _ in range(200):
            hub.publish([exec_item(0).record for _ in range(50)])
            published += 50
        done.set()

    threading.Thread(target=publish, daemon=True).start()
    assert done.wait(10), "publish blocked on a blocked stdout"
    assert outlet.lost > 0

    # Start reading: the writer drains what the queue holds, then the pending gap.
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(r, 1 << 20), b"")))
    reader.start()
    assert outlet.wait_idle(10)
    outlet.close(5)
    os.close(w)
    reader.join(10)
    lines = [parse(line) for line in b"".join(chunks).splitlines()]
    execs = [doc for doc in lines if doc["msg"] == "exec"]
    gaps = [doc for doc in lines if doc["msg"] == "gap"]
    assert gaps, "loss must be reported in the stream"
    assert all(g["fields"]["reason"] == "outlet_queue_full" for g in gaps)
    lost = sum(g["fields"]["lost"] for g in gaps)
    assert lost == outlet.lost
    assert len(execs) + lost == published == 10_000
    # every seq is accounted for exactly once: written, or inside a gap's range
    seen = [doc["fields"]["seq"] for doc in execs]
    for g in gaps:
        seen.extend(range(g["fields"]["first_seq"], g["fields"]["last_seq"] + 1))
    assert sorted(seen) == list(range(1, 10_001))
    # and lines are in seq order, each gap standing where its records would have been
    order = [doc["fields"].get("seq", doc["fields"].get("first_seq")) for doc in lines]
    assert order == sorted(order)


def test_closed_stdout_is_fatal_and_counted(pipe: tuple[int, int]) -> None:
    r, w = pipe
    os.close(r)
    failures: list[BaseException] = []
    outlet = JsonLogOutlet(w, STREAM, capacity=100, on_fatal=failures.append)
    Hub([outlet]).publish([exec_item(0).record for _ in range(10)])
    deadline = time.monotonic() + 5
    while not failures and time.monotonic() < deadline:
        time.sleep(0.01)
    assert failures and isinstance(failures[0], BrokenPipeError)
    assert outlet.lost == 10
    outlet.close(1)


def test_close_delivers_what_is_queued(pipe: tuple[int, int]) -> None:
    r, w = pipe
    outlet = JsonLogOutlet(w, STREAM, capacity=1000)
    Hub([outlet]).publish([exec_item(0).record for _ in range(100)])
    outlet.close(5)
    os.close(w)
    assert len(read_lines(r, 100)) == 100
    assert outlet.written == 100


def test_suppressed_summary_line() -> None:
    workload = Workload("n", "ns", "pod", "uid", "c", "containerd://x", labels={"username": "zac"})
    summary = SuppressedRecord(
        workload,
        42,
        "cri-containerd-x.scope",
        950,
        1_646_080_178_000_000_000,
        1_646_080_183_500_000_000,
        (("/usr/bin/cc1", 600), ("/usr/bin/as", 350)),
    )
    doc = parse(JsonFormatter(STREAM).line(Item(5, summary)))
    assert doc["msg"] == "exec_suppressed"
    assert doc["ts"] == "2022-02-28T20:29:43.500000000Z"
    fields = doc["fields"]
    assert fields["labels"] == {"username": "zac"}
    assert fields["suppressed"] == 950
    assert fields["interval"] == {
        "start": "2022-02-28T20:29:38.000000000Z",
        "end": "2022-02-28T20:29:43.500000000Z",
        "seconds": 5.5,
    }
    assert fields["top_binaries"] == [
        {"filename": "/usr/bin/cc1", "count": 600},
        {"filename": "/usr/bin/as", "count": 350},
    ]
    assert fields["kubernetes"]["pod"] == "pod"
    assert (fields["seq"], fields["cgroup_id"]) == (5, 42)


def test_redacted_records_name_the_rules() -> None:
    ev = event(["curl", "-H", "Authorization: Bearer abc"])
    ev.argv = ["curl", "-H", "Authorization: Bearer ****"]
    record = ProcessRecord(ev, None, ("authorization_header",))
    fields = parse(JsonFormatter(STREAM).line(Item(1, record)))["fields"]
    assert fields["cmdline"] == "curl -H Authorization: Bearer ****"
    assert fields["event"]["argv"] == ["curl", "-H", "Authorization: Bearer ****"]
    assert fields["redacted"] == ["authorization_header"]


def test_a_workloads_cached_json_goes_with_the_workload() -> None:
    fmt = JsonFormatter(STREAM)
    workload = Workload("n", "ns", "pod", "uid", "c", "id", labels={"username": "zac"})
    fmt.line(exec_item(1, workload=workload))
    assert len(fmt._workloads) == 1
    del workload  # the pod left and its last record went: nothing may keep its JSON
    gc.collect()
    assert len(fmt._workloads) == 0


class FlakyDisk:
    """A file descriptor's writes, with a disk that fills up: after `room` bytes every write
    fails with `error` until `free()` is called. Each write takes at most `chunk` bytes, so a
    failure can land in the middle of a line, as on a real file system."""

    def __init__(self, room: int, error: int = errno.ENOSPC, chunk: int = 1000) -> None:
        self.data = bytearray()
        self.room = room
        self.error = error
        self.chunk = chunk
        self.failures = 0
        self.lock = threading.Lock()

    def write(self, _fd: int, view: memoryview) -> int:
        with self.lock:
            n = min(len(view), self.chunk, self.room - len(self.data))
            if n <= 0:
                self.failures += 1
                raise OSError(self.error, os.strerror(self.error))
            self.data += view[:n]
            return n

    def free(self) -> None:
        with self.lock:
            self.room = 1 << 40


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EIO])
def test_a_failing_disk_loses_counted_records_and_never_half_a_line(error: int) -> None:
    disk = FlakyDisk(room=25_000, error=error)
    failures: list[BaseException] = []
    outlet = JsonLogOutlet(1, STREAM, capacity=100_000, on_fatal=failures.append, write=disk.write)
    hub = Hub([outlet], stream_id=STREAM)
    for _ in range(10):
        hub.publish([exec_item(0).record for _ in range(100)])
    wait_until(lambda: disk.failures > 0 and outlet.lost > 0)
    hub.publish([exec_item(0).record for _ in range(100)])  # while it fails: queued, or lost and counted
    disk.free()
    hub.publish([exec_item(0).record for _ in range(100)])
    assert outlet.wait_idle(20)
    outlet.close(5)
    assert failures == []  # a full disk or an I/O error does not end the run
    assert outlet.write_failures > 0
    text = bytes(disk.data)
    assert text.endswith(b"\n")
    lines = [parse(line) for line in text.splitlines()]  # every line whole: each one parses
    execs = [d for d in lines if d["msg"] == "exec"]
    gaps = [d for d in lines if d["msg"] == "gap"]
    assert gaps and all(g["fields"]["reason"] == "outlet_write_failed" for g in gaps)
    lost = sum(g["fields"]["lost"] for g in gaps)
    assert lost == outlet.lost > 0
    assert len(execs) + lost == 1200
    seen = [d["fields"]["seq"] for d in execs]
    for g in gaps:
        seen.extend(range(g["fields"]["first_seq"], g["fields"]["last_seq"] + 1))
    assert sorted(seen) == list(range(1, 1201))  # every record: written, or inside a gap, once
    assert gaps[0] is lines[[d["msg"] for d in lines].index("gap")]
    # the first line after the failure is the gap that says what it cost
    first_gap = lines.index(gaps[0])
    assert all(d["msg"] == "exec" for d in lines[:first_gap])


def test_a_line_cut_by_a_failure_is_finished_first() -> None:
    first = JsonFormatter(STREAM).line(exec_item(1))
    disk = FlakyDisk(room=len(first) + 10, chunk=1 << 20)  # the second line is cut after 10 bytes
    outlet = JsonLogOutlet(1, STREAM, capacity=100, write=disk.write)
    hub = Hub([outlet], stream_id=STREAM)
    hub.publish([exec_item(0).record for _ in range(3)])
    wait_until(lambda: disk.failures > 0)
    assert len(disk.data) == len(first) + 10  # half a line, for now
    disk.free()
    hub.publish([exec_item(0).record])
    assert outlet.wait_idle(10)
    outlet.close(5)
    docs = [parse(line) for line in bytes(disk.data).splitlines()]
    assert [d["msg"] for d in docs] == ["exec", "exec", "gap", "exec"]
    assert [d["fields"].get("seq") for d in docs] == [1, 2, None, 4]  # the cut line 2 was finished
    assert (docs[2]["fields"]["first_seq"], docs[2]["fields"]["last_seq"], docs[2]["fields"]["lost"]) == (
        3,
        3,
        1,
    )


def test_a_closed_pipe_ends_the_run_and_every_record_after_it_is_counted() -> None:
    disk = FlakyDisk(room=0, error=errno.EPIPE)
    failures: list[BaseException] = []
    hub = Hub(stream_id=STREAM)
    outlet = JsonLogOutlet(1, STREAM, 100, failures.append, losses=hub.losses, write=disk.write)
    hub.add_outlet(outlet)
    hub.publish([exec_item(0).record for _ in range(10)])
    wait_until(lambda: bool(failures))
    hub.publish([exec_item(0).record for _ in range(5)])  # after the end: lost, and counted
    assert isinstance(failures[0], BrokenPipeError)
    assert outlet.lost == 15 == hub.losses.of("jsonlog")
    outlet.close(1)
