"""The tail room: a subscriber of the gRPC stream (`execlog tail`) that prints what it receives."""

from collector.tail.follow import TailError, TailOptions, follow
from collector.tail.printers import CompactPrinter, JsonPrinter, Printer

__all__ = ["CompactPrinter", "JsonPrinter", "Printer", "TailError", "TailOptions", "follow"]
