"""The event room: a ring-buffer record becomes a typed event of its kind, and nothing more."""

from collector.event.clock import BootClock
from collector.event.counters import DecodeCounters
from collector.event.decode import Decoder, decode
from collector.event.kinds import KINDS, Kind, ProcessEvent
from collector.event.kinds.exec import ExecEvent
from collector.event.parts import MalformedRecord, split_argv, text

__all__ = [
    "KINDS",
    "BootClock",
    "DecodeCounters",
    "Decoder",
    "ExecEvent",
    "Kind",
    "MalformedRecord",
    "ProcessEvent",
    "decode",
    "split_argv",
    "text",
]
