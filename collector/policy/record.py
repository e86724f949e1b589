"""The record that policy hands to the hub: an exec as it may be shown."""

from __future__ import annotations

from dataclasses import dataclass

from collector.event import ExecEvent
from collector.k8s import Workload

__all__ = ["ExecRecord"]


@dataclass(slots=True)
class ExecRecord:
    event: ExecEvent
    workload: Workload | None  # None in standalone mode
    # The argv that outlets show; policy may have masked secrets in it. event.argv is the original
    # and must not leave the collector.
    argv: list[str]

    @classmethod
    def of(cls, event: ExecEvent, workload: Workload | None = None) -> ExecRecord:
        return cls(event, workload, event.argv)
