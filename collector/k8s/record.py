"""A process event with the workload it ran in: the record that policy, the hub and the outlets
work on, whatever the event's kind."""

from __future__ import annotations

from dataclasses import dataclass

from collector.event import ProcessEvent
from collector.k8s.workload import Workload

__all__ = ["ProcessRecord"]


@dataclass(slots=True)
class ProcessRecord:
    event: ProcessEvent  # an ExecEvent, or any other kind's event
    workload: Workload | None  # None in standalone mode
    # Names of the redaction rules that masked parts of the event's argv (policy sets them, and
    # masks the event's argv in place, so no field of the record holds the secret any more).
    redactions: tuple[str, ...] = ()
