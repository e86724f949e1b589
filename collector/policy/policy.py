"""The seam between the pipeline and policy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from collector.k8s import ProcessRecord
from collector.policy.record import PolicyRecord

__all__ = ["PassThrough", "Policy"]


class Policy(Protocol):
    """Decides what of each record leaves the collector. Runs on the ring reader's thread."""

    def apply(self, records: Sequence[ProcessRecord]) -> list[PolicyRecord]: ...

    def due(self, now_ns: int, final: bool = False) -> list[PolicyRecord]:
        """Records that time alone makes due (e.g. rate-limit summaries).

        `final` is set once, at shutdown: everything still pending must go out."""
        ...


class PassThrough:
    """No policy: every record is shown as it was captured."""

    def apply(self, records: Sequence[ProcessRecord]) -> list[PolicyRecord]:
        return list(records)

    def due(self, now_ns: int, final: bool = False) -> list[PolicyRecord]:
        return []
