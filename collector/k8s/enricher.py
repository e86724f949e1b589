"""The seam between the pipeline and pod attribution."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from collector.event import ProcessEvent
from collector.k8s.record import ProcessRecord

__all__ = ["Enricher", "Standalone"]


class Enricher(Protocol):
    """Attributes events of any kind to workloads. Runs on the ring reader's thread; must not block."""

    def enrich(self, events: Sequence[ProcessEvent]) -> list[ProcessRecord]:
        """Events whose attribution is settled now, in order. Others may be held back, bounded."""
        ...

    def due(self, now_ns: int, final: bool = False) -> list[ProcessRecord]:
        """Held-back events that must go out by now: resolved, or marked unresolved.

        `final` is set once, at shutdown: everything still held must go out."""
        ...


class Standalone:
    """No Kubernetes: every event goes out at once, attributed to no workload."""

    def enrich(self, events: Sequence[ProcessEvent]) -> list[ProcessRecord]:
        return [ProcessRecord(event, None) for event in events]

    def due(self, now_ns: int, final: bool = False) -> list[ProcessRecord]:
        return []
