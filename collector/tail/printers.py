"""What `execlog tail` prints: one compact line per exec, or the collector's own JSON lines.

Compact lines are for people at a terminal. Command lines are shown with control characters
escaped (\\xNN), so an argv cannot move the cursor or rewrite earlier lines. Gaps and notices go
to stderr, so stdout stays one exec per line.

JSON lines are the collector's stdout format, made by the same JsonFormatter from the records
the stream carries; gaps are `msg: "gap"` records among them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, BinaryIO, Protocol, TextIO

from collector.event import ExecEvent
from collector.hub import Gap, Item, record_type
from collector.k8s import ProcessRecord, Workload
from collector.outlets.jsonlog import JsonFormatter
from collector.policy import SuppressedRecord

__all__ = ["CompactPrinter", "JsonPrinter", "Printer", "escape", "gap_text"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def escape(text: str) -> str:
    """Control characters as \\xNN, so that printing cannot drive the terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def gap_text(gap: Gap, stream_id: str) -> str:
    lost = f"{gap.lost} records lost" if gap.lost else "an unknown number of records lost"
    where = ""
    if gap.first_seq is not None:
        if gap.last_seq is None:
            where = f", seq {gap.first_seq} on"
        elif gap.last_seq == gap.first_seq:
            where = f", seq {gap.first_seq}"
        else:
            where = f", seq {gap.first_seq}-{gap.last_seq}"
    return f"gap: {lost} ({gap.reason}{where} of stream {stream_id})"


class Printer(Protocol):
    def record(self, stream_id: str, node: str, entry: Item | Gap) -> None: ...

    def notice(self, text: str) -> None: ...


def _clock(time_ns: int) -> str:
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    return time.strftime("%H:%M:%S", time.localtime(seconds)) + f".{nanos // 1_000_000:03d}"


def _where(workload: Workload | None, node: str) -> str:
    if workload is None:
        return node
    place = f"{workload.namespace}/{workload.pod}"
    if workload.container:
        place += f"/{workload.container}"
    return place if workload.resolved else place + "(unresolved)"


def _who(workload: Workload | None, uid: int | None) -> str:
    user = workload.labels.get("username") if workload is not None else None
    if user:
        return f"user={escape(user)}"
    return f"uid={uid}" if uid is not None else "-"


class CompactPrinter:
    def __init__(self, out: TextIO, err: TextIO) -> None:
        self._out = out
        self._err = err
        # One line maker per record type (a process record's event type, SuppressedRecord).
        self.lines: dict[type, Callable[[Any, str], str]] = {
            ExecEvent: self._exec,
            SuppressedRecord: self._suppressed,
        }

    def record(self, stream_id: str, node: str, entry: Item | Gap) -> None:
        record = entry.record if isinstance(entry, Item) else entry
        if isinstance(record, Gap):
            self.notice(gap_text(record, stream_id))
            return
        self._out.write(self.lines[record_type(record)](record, node) + "\n")
        self._out.flush()

    def _exec(self, record: ProcessRecord, node: str) -> str:
        ev = record.event
        assert type(ev) is ExecEvent
        parts = [
            _clock(ev.time_ns),
            escape(_where(record.workload, node)),
            _who(record.workload, ev.uid),
            f"pid={ev.pid}",
            escape(" ".join(ev.argv)) or f"({escape(ev.filename)}, no argv)",
        ]
        if ev.truncated:
            parts.append(f"[truncated: {ev.argc} args, {ev.argv_size} bytes]")
        if record.redactions:
            parts.append(f"[redacted: {', '.join(record.redactions)}]")
        return " ".join(parts)

    def _suppressed(self, record: SuppressedRecord, node: str) -> str:
        seconds = (record.interval_end_ns - record.interval_start_ns) / 1e9
        top = ", ".join(f"{escape(name)} x{count}" for name, count in record.top_binaries)
        where = _where(record.workload, f"{node}:{record.cgroup_name}")
        return (
            f"{_clock(record.interval_end_ns)} {escape(where)} {_who(record.workload, None)} "
            f"suppressed {record.suppressed} execs in {seconds:.1f}s" + (f": {top}" if top else "")
        )

    def notice(self, text: str) -> None:
        self._out.flush()
        self._err.write(f"execlog tail: {text}\n")
        self._err.flush()


class JsonPrinter:
    def __init__(self, out: BinaryIO, err: TextIO) -> None:
        self._out = out
        self._err = err
        self._formatters: dict[str, JsonFormatter] = {}

    def record(self, stream_id: str, node: str, entry: Item | Gap) -> None:
        formatter = self._formatters.get(stream_id)
        if formatter is None:
            if len(self._formatters) > 8:
                self._formatters.clear()
            formatter = self._formatters[stream_id] = JsonFormatter(stream_id)
        self._out.write(formatter.line(entry))
        self._out.flush()

    def notice(self, text: str) -> None:
        self._err.write(f"execlog tail: {text}\n")
        self._err.flush()
