"""What a process costs, read from /proc: CPU time of all its threads, and resident memory.

`/proc/<pid>/stat` has utime+stime of the whole thread group (threads that have exited
included), but in clock ticks (10 ms). `/proc/<pid>/task/<tid>/schedstat` has each live thread's
time on CPU in nanoseconds. `CpuClock` reads both: the nanosecond sum is used unless a thread
exited during the window (its time would be missing from the sum); then the tick count is.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CpuClock", "CpuReading", "rss_bytes", "thread_names"]

_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class CpuReading:
    stat_ns: int  # utime+stime of the thread group, from ticks
    threads_ns: dict[int, int]  # tid -> ns on CPU, live threads only


class CpuClock:
    """CPU time of one process (all its threads), in nanoseconds."""

    def __init__(self, pid: int, proc: Path = Path("/proc")) -> None:
        self.pid = pid
        self._dir = proc / str(pid)

    def read(self) -> CpuReading:
        fields = (self._dir / "stat").read_text().rpartition(")")[2].split()
        # Fields 14 and 15 of stat(5), counted after the comm's closing parenthesis (field 3 on).
        stat_ns = (int(fields[11]) + int(fields[12])) * _TICK_NS
        threads = {}
        for tid in os.listdir(self._dir / "task"):
            try:
                threads[int(tid)] = int((self._dir / "task" / tid / "schedstat").read_text().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                continue  # exited between listdir and read
        return CpuReading(stat_ns, threads)

    @staticmethod
    def between(before: CpuReading, after: CpuReading) -> int:
        """CPU nanoseconds spent between two readings."""
        exited = before.threads_ns.keys() - after.threads_ns.keys()
        if exited:
            return after.stat_ns - before.stat_ns
        return sum(ns - before.threads_ns.get(tid, 0) for tid, ns in after.threads_ns.items())


def rss_bytes(pid: int | None = None, proc: Path = Path("/proc")) -> int:
    """Resident set size (VmRSS) of a process, this one by default."""
    for line in (proc / str(pid or os.getpid()) / "status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise LookupError(f"no VmRSS for process {pid}")


def thread_names(pid: int, proc: Path = Path("/proc")) -> dict[int, str]:
    """tid -> name: Python's thread names (from `py-spy dump`, when installed), else the kernel's
    comm, which is how gRPC's C core names its threads (event_engine, grpc_global_tim, ...)."""
    names = {}
    for tid in os.listdir(proc / str(pid) / "task"):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            names[int(tid)] = (proc / str(pid) / "task" / tid / "comm").read_text().strip()
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        dump = subprocess.run(
            [spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=30, check=False
        )
        for tid, name in re.findall(r'^Thread (\d+) \([a-z]+\): "([^"]*)"', dump.stdout, re.MULTILINE):
            names[int(tid)] = name
    return names
