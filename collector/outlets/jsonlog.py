"""JSON lines on stdout, in the reference document's record format.

The reference record's keys stay at their paths (`ts`, `level`, `msg`, `fields.labels`,
`fields.cmdline`, `fields.event.{filename, argv, truncated, pid, uid, gid, comm}`), so its kubectl
and CloudWatch queries work unchanged; execlog's additions sit beside them.

Writing happens on the outlet's own thread behind a bounded queue, so a stdout that blocks (a
stalled log pipeline, a paused terminal) never stops the ring reader. Records that find the queue
full are counted, and a `msg: "gap"` line takes their place in the stream, with how many were
lost, their seq range and why.
"""

from __future__ import annotations

import collections
import logging
import os
import select
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from collector.hub import OUTLET_QUEUE_FULL, Gap, Item
from collector.k8s import PerWorkload, Workload
from collector.policy import ExecRecord, SuppressedRecord

__all__ = ["JsonFormatter", "JsonLogOutlet"]

log = logging.getLogger("execlog.jsonlog")

_NEWLINE = orjson.OPT_APPEND_NEWLINE


_CACHE_LIMIT = 1024  # workloads (containers) whose JSON is kept; more than a node runs


class JsonFormatter:
    """Turns items into JSON lines. Pure apart from caches of what repeats."""

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        self._second = -1
        self._second_text = ""
        # Each workload's labels and kubernetes block, serialised once per container.
        self._workloads: PerWorkload[tuple[orjson.Fragment, orjson.Fragment]] = PerWorkload(_CACHE_LIMIT)

    def ts(self, time_ns: int) -> str:
        """RFC 3339 in UTC with nanoseconds, e.g. 2022-02-28T20:29:38.038452202Z."""
        second, frac = divmod(time_ns, 1_000_000_000)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{frac:09d}Z"

    def document(self, item: Item | Gap) -> dict[str, Any]:
        """The record as a JSON document (pre-serialised parts appear as orjson.Fragment)."""
        if isinstance(item, Gap):
            return self._gap(item, None)
        record = item.record
        if isinstance(record, ExecRecord):
            return self._exec(record, item.seq)
        if isinstance(record, SuppressedRecord):
            return self._suppressed(record, item.seq)
        return self._gap(record, item.seq)

    def line(self, item: Item | Gap) -> bytes:
        return orjson.dumps(self.document(item), option=_NEWLINE)

    def _workload_json(self, workload: Workload) -> tuple[orjson.Fragment, orjson.Fragment]:
        cached = self._workloads.get(workload)
        if cached is None:
            cached = self._workloads.put(
                workload,
                (
                    orjson.Fragment(orjson.dumps(workload.labels)),
                    orjson.Fragment(orjson.dumps(_kubernetes(workload))),
                ),
            )
        return cached

    def _exec(self, record: ExecRecord, seq: int) -> dict[str, Any]:
        ev = record.event
        argv = record.argv
        event: dict[str, Any] = {
            "filename": ev.filename,
            "argv": argv,
            "truncated": ev.truncated,
            "pid": ev.pid,
            "uid": ev.uid,
            "gid": ev.gid,
            "comm": ev.comm,
            "ppid": ev.ppid,
            "euid": ev.euid,
            "egid": ev.egid,
            "argc": ev.argc,
            "argv_bytes": ev.argv_size,
            "cgroup_id": ev.cgroup_id,
            "cgroup": ev.cgroup_name,
            "parent_cgroup": ev.parent_cgroup_name,
            "pid_ns": ev.pid_ns,
            "mnt_ns": ev.mnt_ns,
        }
        if ev.non_utf8:
            event["non_utf8"] = True
        workload = record.workload
        if workload is None:
            fields: dict[str, Any] = {"labels": {}, "cmdline": " ".join(argv), "event": event}
        else:
            labels, kubernetes = self._workload_json(workload)
            fields = {"labels": labels, "cmdline": " ".join(argv), "event": event, "kubernetes": kubernetes}
        if record.redactions:
            fields["redacted"] = list(record.redactions)
        fields["seq"] = seq
        fields["stream_id"] = self.stream_id
        return {"ts": self.ts(ev.time_ns), "level": "INFO", "msg": "exec", "fields": fields}

    def _suppressed(self, record: SuppressedRecord, seq: int) -> dict[str, Any]:
        start, end = record.interval_start_ns, record.interval_end_ns
        fields: dict[str, Any] = {
            "labels": record.workload.labels if record.workload is not None else {},
            "suppressed": record.suppressed,
            "interval": {
                "start": self.ts(start),
                "end": self.ts(end),
                "seconds": round((end - start) / 1e9, 3),
            },
            "top_binaries": [{"filename": name, "count": count} for name, count in record.top_binaries],
            "cgroup_id": record.cgroup_id,
            "cgroup": record.cgroup_name,
        }
        if record.workload is not None:
            fields["kubernetes"] = _kubernetes(record.workload)
        fields["seq"] = seq
        fields["stream_id"] = self.stream_id
        return {"ts": self.ts(end), "level": "INFO", "msg": "exec_suppressed", "fields": fields}

    def _gap(self, gap: Gap, seq: int | None) -> dict[str, Any]:
        fields: dict[str, Any] = {"lost": gap.lost, "reason": gap.reason}
        if gap.first_seq is not None:
            fields["first_seq"] = gap.first_seq
            fields["last_seq"] = gap.last_seq
        if seq is not None:
            fields["seq"] = seq
        fields["stream_id"] = self.stream_id
        return {"ts": self.ts(gap.time_ns), "level": "WARN", "msg": "gap", "fields": fields}


def _kubernetes(w: Workload) -> dict[str, Any]:
    block: dict[str, Any] = {
        "node": w.node,
        "namespace": w.namespace,
        "pod": w.pod,
        "pod_uid": w.pod_uid,
        "container": w.container,
        "container_id": w.container_id,
    }
    if w.nested_container_id is not None:
        block["nested_container_id"] = w.nested_container_id
    if not w.resolved:
        block["resolved"] = False
    return block


class JsonLogOutlet:
    """Writes items to a file descriptor (stdout) from its own thread."""

    name = "jsonlog"

    def __init__(
        self,
        fd: int,
        stream_id: str,
        capacity: int,
        on_fatal: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._fd = fd
        # One formatter per thread: their caches are not shared. The publisher's thread formats
        # the records; the writer's formats only the gap lines it has to insert.
        self._format = JsonFormatter(stream_id)
        self._format_gaps = JsonFormatter(stream_id)
        self._capacity = capacity
        self._on_fatal = on_fatal
        self._queue: collections.deque[bytes | Gap] = collections.deque()  # lines, and gaps to write
        self._pending_gap: Gap | None = None
        self._cond = threading.Condition()
        self._closing = False
        self._broken = False
        self._inflight = 0
        self.lost = 0  # records this outlet dropped, all reasons
        self.written = 0  # lines written, gap lines included
        self._thread = threading.Thread(target=self._run, name="jsonlog-writer", daemon=True)
        self._thread.start()

    def publish(self, items: Sequence[Item]) -> None:
        with self._cond:
            room = 0 if self._broken else max(self._capacity - len(self._queue), 0)
        # Only the writer takes from the queue meanwhile, so the room can only have grown.
        accepted = items[:room]
        # Formatted here, on the publisher's thread, so that the writer's thread only writes bytes
        # (os.write releases the GIL): two threads busy in Python at once cost far more than the
        # sum of their work, in hand-overs of the GIL.
        line = self._format.line
        lines = [line(item) for item in accepted]
        with self._cond:
            if lines:
                if self._pending_gap is not None:
                    self._queue.append(self._pending_gap)
                    self._pending_gap = None
                self._queue.extend(lines)
            if len(accepted) < len(items):
                self._drop(items[len(accepted) :])
            self._cond.notify()

    def _drop(self, items: Sequence[Item]) -> None:
        # Called with the lock held.
        self.lost += len(items)
        gap = self._pending_gap
        if gap is None:
            gap = self._pending_gap = Gap(0, OUTLET_QUEUE_FULL, time.time_ns(), items[0].seq, items[0].seq)
        gap.lost += len(items)
        gap.last_seq = items[-1].seq

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and self._pending_gap is None and not self._closing:
                    self._cond.wait()
                batch: list[bytes | Gap] = list(self._queue)
                self._queue.clear()
                if not batch and self._pending_gap is not None:
                    batch, self._pending_gap = [self._pending_gap], None
                if not batch and self._closing:
                    return
                self._inflight = len(batch)
            try:
                gap_line = self._format_gaps.line
                data = b"".join([e if isinstance(e, bytes) else gap_line(e) for e in batch])
                self._write(data)
            except OSError as exc:
                self._fail(exc, batch)
                return
            with self._cond:
                self.written += len(batch)
                self._inflight = 0
                self._cond.notify_all()

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._fd, view)
            except BlockingIOError:
                select.select([], [self._fd], [])
                continue
            except InterruptedError:
                continue
            view = view[n:]

    def _fail(self, exc: OSError, batch: list[bytes | Gap]) -> None:
        with self._cond:
            self._broken = True
            dropped = sum(1 for entry in batch if isinstance(entry, bytes)) + sum(
                1 for entry in self._queue if isinstance(entry, bytes)
            )
            self.lost += dropped
            self._queue.clear()
            self._cond.notify_all()
        log.error("stdout failed (%s); %d records could not be written", exc.strerror or exc, dropped)
        if self._on_fatal is not None:
            self._on_fatal(exc)

    def close(self, timeout: float) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            with self._cond:
                left = sum(1 for entry in self._queue if isinstance(entry, bytes))
            log.error("stdout did not take the last %d records within %.1fs; they are lost", left, timeout)
            with self._cond:
                self.lost += left

    def wait_idle(self, timeout: float) -> bool:
        """Block until everything queued so far is written (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._pending_gap is not None or self._inflight:
                left = deadline - time.monotonic()
                if left <= 0 or self._broken:
                    return False
                self._cond.wait(left)
        return True
