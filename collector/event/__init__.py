"""The event room: a ring-buffer record becomes an ExecEvent, and nothing more."""

from collector.event.clock import BootClock
from collector.event.decode import Decoder, ExecEvent, MalformedRecord, decode, split_argv, text

__all__ = ["BootClock", "Decoder", "ExecEvent", "MalformedRecord", "decode", "split_argv", "text"]
