"""The event room: a ring-buffer record becomes an ExecEvent, and nothing more."""

from collector.event.clock import BootClock
from collector.event.decode import ExecEvent, MalformedRecord, decode, split_argv, text

__all__ = ["BootClock", "ExecEvent", "MalformedRecord", "decode", "split_argv", "text"]
