"""The records that policy hands to the hub: process records it let through, and summaries."""

from __future__ import annotations

from dataclasses import dataclass

from collector.k8s import ProcessRecord, Workload

__all__ = ["PolicyRecord", "SuppressedRecord"]


@dataclass(slots=True)
class SuppressedRecord:
    """Records of one workload that the rate limit held back during an interval, as one summary.

    Logged records plus the `suppressed` counts of these summaries equal the records captured.
    """

    workload: Workload | None  # the pod in Kubernetes mode; None in standalone mode
    cgroup_id: int  # the workload's key in standalone mode (its cgroup)
    cgroup_name: str
    suppressed: int
    interval_start_ns: int  # wall clock of the first suppressed record in the interval
    interval_end_ns: int  # wall clock when the summary was made
    top_binaries: tuple[tuple[str, int], ...]  # (filename, count), most frequent first


PolicyRecord = ProcessRecord | SuppressedRecord
