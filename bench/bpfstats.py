"""Kernel time of BPF programs, from kernel.bpf_stats_enabled (run_time_ns / run_cnt)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProgStats", "bpf_stats_enabled", "own_prog_ids", "prog_stats"]

SYSCTL = Path("/proc/sys/kernel/bpf_stats_enabled")


@dataclass(frozen=True, slots=True)
class ProgStats:
    name: str
    run_time_ns: int
    run_cnt: int


@contextmanager
def bpf_stats_enabled() -> Iterator[None]:
    """Turn the kernel's per-program run-time accounting on for the block, then restore it."""
    before = SYSCTL.read_text().strip()
    SYSCTL.write_text("1")
    try:
        yield
    finally:
        SYSCTL.write_text(before)


def own_prog_ids(pid: int | None = None) -> list[int]:
    """Ids of the BPF programs a process holds open (its fdinfo says prog_id)."""
    proc = Path(f"/proc/{pid or os.getpid()}")
    ids = []
    for fd in os.listdir(proc / "fd"):
        try:
            if os.readlink(proc / "fd" / fd) != "anon_inode:bpf-prog":
                continue
            info = (proc / "fdinfo" / fd).read_text()
        except OSError:
            continue
        ids += [int(line.split()[1]) for line in info.splitlines() if line.startswith("prog_id:")]
    return sorted(set(ids))


def prog_stats(ids: list[int]) -> dict[int, ProgStats]:
    stats = {}
    for prog_id in ids:
        out = subprocess.run(
            ["bpftool", "-j", "prog", "show", "id", str(prog_id)], capture_output=True, text=True, check=True
        ).stdout
        doc = json.loads(out)
        stats[prog_id] = ProgStats(
            doc.get("name", "?"), int(doc.get("run_time_ns", 0)), int(doc.get("run_cnt", 0))
        )
    return stats
