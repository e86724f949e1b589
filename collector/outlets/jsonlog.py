"""JSON lines on stdout, in the reference document's record format.

The reference record's keys stay at their paths (`ts`, `level`, `msg`, `fields.labels`,
`fields.cmdline`, `fields.event.{filename, argv, truncated, pid, uid, gid, comm}`), so its kubectl
and CloudWatch queries work unchanged; execlog's additions sit beside them. Each record type has
its encoder in `JsonFormatter`'s table; a new kind adds one.

Writing happens on the outlet's own thread behind the hub's bounded queue, so a stdout that blocks
(a stalled log pipeline, a paused terminal) never stops the ring reader. Records that find the
queue full are counted, and a `msg: "gap"` line takes their place in the stream.

A write that fails (a full disk, an I/O error) loses the records it could not write: they are
counted, and once writing works again a gap line with reason `outlet_write_failed` and their exact
count comes first. The writer retries with backoff meanwhile, and the other outlets go on. The
file never holds half a line: a line cut by the failure is finished first when writing resumes.
Only a pipe whose reader is gone for good (EPIPE) ends the run.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from collector.event import ExecEvent
from collector.hub import (
    OUTLET_QUEUE_FULL,
    OUTLET_WRITE_FAILED,
    Chunk,
    Gap,
    Item,
    Losses,
    OutletQueue,
    Record,
)
from collector.k8s import PerWorkload, ProcessRecord, Workload
from collector.policy import SuppressedRecord

__all__ = ["JsonFormatter", "JsonLogOutlet"]

log = logging.getLogger("execlog.jsonlog")

_NEWLINE = orjson.OPT_APPEND_NEWLINE
_CACHE_LIMIT = 1024  # workloads (containers) whose JSON is kept; more than a node runs
_BACKOFF_FIRST = 0.1
_BACKOFF_MAX = 5.0

Document = dict[str, Any]


class JsonFormatter:
    """Turns items into JSON lines. Pure apart from caches of what repeats."""

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        self._second = -1
        self._second_text = ""
        # Each workload's labels and kubernetes block, serialised once per container.
        self._workloads: PerWorkload[tuple[orjson.Fragment, orjson.Fragment]] = PerWorkload(_CACHE_LIMIT)
        # One encoder per record type: a process record's event type, SuppressedRecord, Gap.
        self.encoders: dict[type, Callable[[Any, int | None], Document]] = {
            ExecEvent: self._exec,
            SuppressedRecord: self._suppressed,
            Gap: self._gap,
        }

    def ts(self, time_ns: int) -> str:
        """RFC 3339 in UTC with nanoseconds, e.g. 2022-02-28T20:29:38.038452202Z."""
        second, frac = divmod(time_ns, 1_000_000_000)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{frac:09d}Z"

    def document(self, item: Item | Gap) -> Document:
        """The record as a JSON document (pre-serialised parts appear as orjson.Fragment)."""
        if type(item) is Gap:
            return self._gap(item, None)
        assert isinstance(item, Item)
        record: Record = item.record
        key = type(record.event) if type(record) is ProcessRecord else type(record)
        return self.encoders[key](record, item.seq)

    def line(self, item: Item | Gap) -> bytes:
        return orjson.dumps(self.document(item), option=_NEWLINE)

    def _workload_json(self, workload: Workload) -> tuple[orjson.Fragment, orjson.Fragment]:
        cached = self._workloads.get(workload)
        if cached is None:
            cached = self._workloads.put(
                workload,
                (
                    orjson.Fragment(orjson.dumps(workload.labels)),
                    orjson.Fragment(orjson.dumps(kubernetes_block(workload))),
                ),
            )
        return cached

    def process_fields(self, record: ProcessRecord, event: Document, seq: int | None) -> Document:
        """`fields` of a process record of any kind: labels, the kind's `event` block, the
        workload, the redactions and the record's place in the stream."""
        workload = record.workload
        if workload is None:
            fields: Document = {"labels": {}, "event": event}
        else:
            labels, kubernetes = self._workload_json(workload)
            fields = {"labels": labels, "event": event, "kubernetes": kubernetes}
        if record.redactions:
            fields["redacted"] = list(record.redactions)
        fields["seq"] = seq
        fields["stream_id"] = self.stream_id
        return fields

    def _exec(self, record: ProcessRecord, seq: int | None) -> Document:
        ev = record.event
        assert type(ev) is ExecEvent
        argv = ev.argv
        event: Document = {
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
        fields = self.process_fields(record, event, seq)
        fields["cmdline"] = " ".join(argv)
        return {"ts": self.ts(ev.time_ns), "level": "INFO", "msg": "exec", "fields": fields}

    def _suppressed(self, record: SuppressedRecord, seq: int | None) -> Document:
        start, end = record.interval_start_ns, record.interval_end_ns
        fields: Document = {
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
            fields["kubernetes"] = kubernetes_block(record.workload)
        fields["seq"] = seq
        fields["stream_id"] = self.stream_id
        return {"ts": self.ts(end), "level": "INFO", "msg": "exec_suppressed", "fields": fields}

    def _gap(self, gap: Gap, seq: int | None) -> Document:
        fields: Document = {"lost": gap.lost, "reason": gap.reason}
        if gap.first_seq is not None:
            fields["first_seq"] = gap.first_seq
            fields["last_seq"] = gap.last_seq
        if seq is not None:
            fields["seq"] = seq
        fields["stream_id"] = self.stream_id
        return {"ts": self.ts(gap.time_ns), "level": "WARN", "msg": "gap", "fields": fields}


def kubernetes_block(w: Workload) -> Document:
    block: Document = {
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
    reasons: tuple[str, ...] = (OUTLET_QUEUE_FULL, OUTLET_WRITE_FAILED)  # what it can lose records for

    def __init__(
        self,
        fd: int,
        stream_id: str,
        capacity: int,
        on_fatal: Callable[[BaseException], None] | None = None,
        *,
        losses: Losses | None = None,
        write: Callable[[int, memoryview], int] = os.write,
    ) -> None:
        self._fd = fd
        self._write = write
        # One formatter per thread: their caches are not shared. The publisher's thread formats
        # the records; the writer's formats only the gap lines it has to insert.
        self._format = JsonFormatter(stream_id)
        self._format_gaps = JsonFormatter(stream_id)
        self._on_fatal = on_fatal
        self._queue: OutletQueue[Chunk] = OutletQueue(
            capacity, OUTLET_QUEUE_FULL, outlet=self.name, losses=losses
        )
        self._cond = threading.Condition()
        self._busy = False  # something published is not yet written or counted lost
        self._broken = False  # the pipe's reader is gone for good
        self._partial = b""  # the rest of a line a failed write cut: written first
        self._retry_gaps: list[Gap] = []  # gap lines a failed write did not get out
        self._stop = threading.Event()
        self.written = 0  # lines written, gap lines included
        self.write_failures = 0
        self._thread = threading.Thread(target=self._run, name="jsonlog-writer", daemon=True)
        self._thread.start()

    @property
    def lost(self) -> int:
        """Records this outlet lost, every reason."""
        return self._queue.lost

    def publish(self, items: Sequence[Item]) -> None:
        if not items:
            return
        # Only the writer takes from the queue meanwhile, so the room can only have grown.
        room = 0 if self._broken else self._queue.room()
        accepted = items[:room]
        # Formatted here, on the publisher's thread, so that the writer's thread only writes bytes
        # (os.write releases the GIL): two threads busy in Python at once cost far more than the
        # sum of their work, in hand-overs of the GIL.
        line = self._format.line
        data = b"".join([line(item) for item in accepted]) if accepted else b""
        with self._cond:
            self._busy = True
            if accepted:
                self._queue.offer_chunk(Chunk(accepted[0].seq, accepted[-1].seq, len(accepted), data))
            if len(accepted) < len(items):
                self._queue.drop(items[len(accepted)].seq, items[-1].seq, len(items) - len(accepted))

    # -- the writer's thread ----------------------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.0
        while True:
            batch = self._queue.take(1.0)
            if batch is None:
                self._settled()
                return
            if not batch and not self._partial and not self._retry_gaps:
                self._settled()
                continue
            try:
                self._deliver(batch)
            except OSError as exc:
                self.write_failures += 1
                if exc.errno == errno.EPIPE or self._stop.is_set():
                    self._give_up(exc)
                    return
                backoff = min(backoff * 2, _BACKOFF_MAX) if backoff else _BACKOFF_FIRST
                if self.write_failures == 1 or backoff == _BACKOFF_MAX:
                    log.error(
                        "stdout write failed (%s): %d records lost so far; the other outlets go on, "
                        "and writes are retried every %.1fs at most",
                        exc.strerror or exc,
                        self.lost,
                        _BACKOFF_MAX,
                    )
                self._stop.wait(backoff)
                continue
            if backoff:
                log.warning("stdout writes work again: %d records were lost, a gap line says so", self.lost)
                backoff = 0.0
            self._settled()

    def _deliver(self, batch: list[Chunk | Gap]) -> None:
        """Write the rest of a cut line, gap lines left over, then the batch. On a failure, count
        what did not get out, keep what must be retried, and raise the OSError."""
        gap_line = self._format_gaps.line
        owners: list[Chunk | Gap | None] = [None] if self._partial else []
        parts = [self._partial] if self._partial else []
        for entry in (*self._retry_gaps, *batch):
            owners.append(entry)
            parts.append(entry.data if isinstance(entry, Chunk) else gap_line(entry))
        mid_line = bool(self._partial)
        self._partial, self._retry_gaps = b"", []
        data = b"".join(parts)
        view = memoryview(data)
        written = 0
        while written < len(data):
            try:
                written += self._write(self._fd, view[written:])
            except BlockingIOError:
                select.select([], [self._fd], [])
            except InterruptedError:
                continue
            except OSError:
                self._account(data, written, mid_line, owners, parts)
                raise
        lines = sum(e.count if isinstance(e, Chunk) else 1 for e in owners if e is not None)
        with self._cond:
            self.written += lines

    def _account(
        self,
        data: bytes,
        written: int,
        mid_line: bool,
        owners: list[Chunk | Gap | None],
        parts: list[bytes],
    ) -> None:
        """A write stopped after `written` bytes of `data`, the joined `parts`. A line it cut is
        finished first next time (it counts as written); gap lines not written are retried;
        records not written are lost, counted, and said in an `outlet_write_failed` gap."""
        done_at = written
        if (written and data[written - 1] != 0x0A) or (not written and mid_line):
            done_at = data.find(b"\n", written) + 1
            self._partial = data[written:done_at]
        lines = lost = first = last = 0
        at = 0
        for owner, part in zip(owners, parts, strict=True):
            start, at = at, at + len(part)
            if owner is None:
                continue  # the old cut line: finished now, or cut again (self._partial)
            if isinstance(owner, Gap):
                if at <= done_at:
                    lines += 1
                else:
                    self._retry_gaps.append(owner)
                continue
            out = owner.count if at <= done_at else part.count(b"\n", 0, max(done_at - start, 0))
            lines += out
            if out < owner.count:
                if not lost:
                    first = owner.seq + out
                lost += owner.count - out
                last = owner.last_seq
        with self._cond:
            self.written += lines
        self._queue.lost_downstream(first, last, lost, OUTLET_WRITE_FAILED)

    def _give_up(self, exc: OSError) -> None:
        """The reader is gone for good, or the run stops while writes fail: what is left is lost."""
        self._broken = True
        left = self._queue.cancel()
        self._queue.lost_downstream(None, None, left, OUTLET_WRITE_FAILED)
        log.error(
            "stdout %s (%s): %d lines written, %d records lost",
            "is closed for good" if exc.errno == errno.EPIPE else "still fails at the stop",
            exc.strerror or exc,
            self.written,
            self.lost,
        )
        self._settled()
        if exc.errno == errno.EPIPE and self._on_fatal is not None:
            self._on_fatal(exc)

    def _settled(self) -> None:
        with self._cond:
            if self._broken or (len(self._queue) == 0 and not self._partial and not self._retry_gaps):
                self._busy = False
                self._cond.notify_all()

    # -- life -------------------------------------------------------------------------------------

    def close(self, timeout: float) -> None:
        self._stop.set()
        self._queue.close()
        self._thread.join(timeout)
        if self._thread.is_alive():
            left = self._queue.cancel()
            log.error("stdout did not take the last %d records within %.1fs; they are lost", left, timeout)
            self._queue.lost_downstream(None, None, left, OUTLET_WRITE_FAILED)

    def wait_idle(self, timeout: float) -> bool:
        """Block until everything published so far is written or counted lost."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or self._broken:
                    return False
                self._cond.wait(left)
        return True
