"""The records that policy hands to the hub."""

from __future__ import annotations

from dataclasses import dataclass

from collector.event import ExecEvent
from collector.k8s import Workload

__all__ = ["ExecRecord", "PolicyRecord", "SuppressedRecord"]


@dataclass(slots=True)
class ExecRecord:
    """An exec as it may be shown."""

    event: ExecEvent
    workload: Workload | None  # None in standalone mode
    # The argv that outlets show; policy may have masked secrets in it. When it did, `event` is a
    # copy whose argv is masked too, so no field of the record holds the secret. Outlets use this.
    argv: list[str]
    # Names of the redaction rules that changed argv; empty when nothing was masked.
    redactions: tuple[str, ...] = ()

    @classmethod
    def of(cls, event: ExecEvent, workload: Workload | None = None) -> ExecRecord:
        return cls(event, workload, event.argv)


@dataclass(slots=True)
class SuppressedRecord:
    """Execs of one workload that the rate limit held back during an interval, as one summary.

    Logged execs plus the `suppressed` counts of these summaries equal the execs captured.
    """

    workload: Workload | None  # the pod in Kubernetes mode; None in standalone mode
    cgroup_id: int  # the workload's key in standalone mode (its cgroup)
    cgroup_name: str
    suppressed: int
    interval_start_ns: int  # wall clock of the first suppressed exec in the interval
    interval_end_ns: int  # wall clock when the summary was made
    top_binaries: tuple[tuple[str, int], ...]  # (filename, count), most frequent first


PolicyRecord = ExecRecord | SuppressedRecord
