"""What travels from the hub to the outlets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from collector.k8s import ProcessRecord
from collector.policy import PolicyRecord

__all__ = [
    "KERNEL_RING_FULL",
    "MALFORMED_RECORD",
    "OUTLET_QUEUE_FULL",
    "OUTLET_WRITE_FAILED",
    "RESUME_POINT_LOST",
    "SUBSCRIBER_TOO_SLOW",
    "Gap",
    "Item",
    "Record",
    "record_type",
]

# Why events were lost. These strings are part of the output contract (JSON `reason`).
KERNEL_RING_FULL: Final = "kernel_ring_full"
MALFORMED_RECORD: Final = "malformed_record"
OUTLET_QUEUE_FULL: Final = "outlet_queue_full"
# An outlet took the records but could not deliver them (stdout's write failed).
OUTLET_WRITE_FAILED: Final = "outlet_write_failed"
# The gRPC stream's own: one subscriber read too slowly (its queue overflowed), or a resume point
# (stream id and seq) that the replay buffer no longer holds.
SUBSCRIBER_TOO_SLOW: Final = "subscriber_too_slow"
RESUME_POINT_LOST: Final = "resume_point_lost"


@dataclass(slots=True)
class Gap:
    """Events lost before a consumer saw them. Seqs are known when the hub had numbered them."""

    lost: int
    reason: str
    time_ns: int  # when the loss was noticed
    first_seq: int | None = None
    last_seq: int | None = None


Record = PolicyRecord | Gap


@dataclass(slots=True)
class Item:
    """A record with its place in this collector run's stream."""

    seq: int
    record: Record


def record_type(record: Record) -> type:
    """What an outlet's table of encoders is keyed by: a process record's event type (ExecEvent,
    and each later kind's), else the record's own type (SuppressedRecord, Gap)."""
    return type(record.event) if type(record) is ProcessRecord else type(record)
