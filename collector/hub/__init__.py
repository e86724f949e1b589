"""The hub room: sequence numbers, the stream id, and fan-out to outlets."""

from collector.hub.hub import Hub, Outlet
from collector.hub.items import (
    KERNEL_RING_FULL,
    MALFORMED_RECORD,
    OUTLET_QUEUE_FULL,
    RESUME_POINT_LOST,
    SUBSCRIBER_TOO_SLOW,
    Gap,
    Item,
    Record,
)
from collector.hub.queue import GapQueue
from collector.hub.replay import ReplayBuffer, Sequenced

__all__ = [
    "KERNEL_RING_FULL",
    "MALFORMED_RECORD",
    "OUTLET_QUEUE_FULL",
    "RESUME_POINT_LOST",
    "SUBSCRIBER_TOO_SLOW",
    "Gap",
    "GapQueue",
    "Hub",
    "Item",
    "Outlet",
    "Record",
    "ReplayBuffer",
    "Sequenced",
]
