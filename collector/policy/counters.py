"""What policy did, as plain numbers for the metrics outlet to read at scrape time."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["PolicyCounters"]


@dataclass(slots=True)
class PolicyCounters:
    """Written by the ring reader's thread only; read by anyone.

    Every exec that reaches policy is counted once in `captured` and once in exactly one of
    `logged`, `suppressed` or `excluded`, so at any moment
    captured == logged + suppressed + sum(excluded.values()). `suppressed` counts an exec when it
    is held back; the summaries that report it (`summaries`) go out later, and their counts sum to
    `suppressed - pending` (`pending`: held back, not yet in a summary).

    The per-rule dicts get every key at start-up and never another, so a reader on another thread
    can iterate them while the reader thread counts.
    """

    captured: int = 0  # execs that reached policy
    logged: int = 0  # handed on as exec records
    suppressed: int = 0  # held back by the rate limit
    summaries: int = 0  # exec_suppressed records handed on
    suppressed_reported: int = 0  # the sum of their counts
    redacted: dict[str, int] = field(default_factory=dict)  # rule -> execs whose argv it changed
    redacted_execs: int = 0  # execs with at least one mask
    excluded: dict[str, int] = field(default_factory=dict)  # exclusion rule -> execs it dropped
    workloads: int = 0  # rate-limit buckets held now (a gauge)

    @classmethod
    def for_rules(cls, redaction_rules: Iterable[str], exclusions: Iterable[str]) -> PolicyCounters:
        return cls(
            redacted=dict.fromkeys(redaction_rules, 0),
            excluded=dict.fromkeys(exclusions, 0),
        )

    @property
    def pending(self) -> int:
        """Held back and not yet reported in a summary."""
        return self.suppressed - self.suppressed_reported
