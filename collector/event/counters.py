"""What the reader decoded, as plain numbers that the metrics read at scrape time."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DecodeCounters"]


@dataclass(slots=True)
class DecodeCounters:
    """Written by the ring reader's thread only; read by anyone."""

    records: int = 0  # raw records taken from the ring
    decoded: int = 0
    malformed: int = 0  # failed their bounds checks, or of an unknown kind: dropped, counted
    truncated: int = 0  # execs whose argv was cut at the argv cap
