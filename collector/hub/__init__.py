"""The hub room: sequence numbers, the stream id, fan-out to outlets, and the outlets' toolkit
(bounded queues that turn loss into gap records, counted in one place)."""

from collector.hub.hub import Hub, Outlet
from collector.hub.items import (
    KERNEL_RING_FULL,
    MALFORMED_RECORD,
    OUTLET_QUEUE_FULL,
    OUTLET_WRITE_FAILED,
    RESUME_POINT_LOST,
    SUBSCRIBER_TOO_SLOW,
    Gap,
    Item,
    Record,
    record_type,
)
from collector.hub.losses import Losses
from collector.hub.queue import Chunk, OutletQueue, Sequenced
from collector.hub.replay import ReplayBuffer

__all__ = [
    "KERNEL_RING_FULL",
    "MALFORMED_RECORD",
    "OUTLET_QUEUE_FULL",
    "OUTLET_WRITE_FAILED",
    "RESUME_POINT_LOST",
    "SUBSCRIBER_TOO_SLOW",
    "Chunk",
    "Gap",
    "Hub",
    "Item",
    "Losses",
    "Outlet",
    "OutletQueue",
    "Record",
    "ReplayBuffer",
    "Sequenced",
    "record_type",
]
