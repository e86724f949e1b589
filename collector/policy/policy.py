"""The seam between the pipeline and policy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from collector.k8s import Attributed
from collector.policy.record import ExecRecord, PolicyRecord

__all__ = ["PassThrough", "Policy"]


class Policy(Protocol):
    """Decides what of each exec leaves the collector. Runs on the ring reader's thread."""

    def apply(self, attributed: Sequence[Attributed]) -> list[PolicyRecord]: ...

    def due(self, now_ns: int, final: bool = False) -> list[PolicyRecord]:
        """Records that time alone makes due (e.g. rate-limit summaries).

        `final` is set once, at shutdown: everything still pending must go out."""
        ...


class PassThrough:
    """No policy: every exec is shown as it was captured."""

    def apply(self, attributed: Sequence[Attributed]) -> list[PolicyRecord]:
        return [ExecRecord.of(event, workload) for event, workload in attributed]

    def due(self, now_ns: int, final: bool = False) -> list[PolicyRecord]:
        return []
