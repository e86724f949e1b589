"""The hub room: sequence numbers, the stream id, and fan-out to outlets."""

from collector.hub.hub import Hub, Outlet
from collector.hub.items import KERNEL_RING_FULL, MALFORMED_RECORD, OUTLET_QUEUE_FULL, Gap, Item, Record

__all__ = [
    "KERNEL_RING_FULL",
    "MALFORMED_RECORD",
    "OUTLET_QUEUE_FULL",
    "Gap",
    "Hub",
    "Item",
    "Outlet",
    "Record",
]
