"""bytes -> event: the header's kind picks the decoder; each is pure and bounds-checked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from collector.event.kinds import KINDS, ProcessEvent
from collector.event.layout import HEADER
from collector.event.parts import Caches, MalformedRecord

__all__ = ["Decoder", "decode"]

_HEADER_SIZE = HEADER.size


class Decoder:
    """Decodes records of every kind, with caches of what repeats from one to the next."""

    __slots__ = ("_caches", "_table")

    def __init__(self, cache_size: int = 1024) -> None:
        self._caches = Caches(cache_size)
        self._table: dict[int, Callable[[Caches, bytes, int], Any]] = {k.number: k.decode for k in KINDS}

    def decode(self, raw: bytes, boot_to_unix_ns: int) -> ProcessEvent:
        """Decode one record. `boot_to_unix_ns` turns the kernel's boot-time clock into wall time."""
        if len(raw) < _HEADER_SIZE:
            raise MalformedRecord(
                f"record of {len(raw)} bytes is shorter than the {_HEADER_SIZE}-byte header"
            )
        decode = self._table.get(raw[0] | raw[1] << 8)
        if decode is None:
            raise MalformedRecord(f"record of unknown kind {raw[0] | raw[1] << 8}")
        event: ProcessEvent = decode(self._caches, raw, boot_to_unix_ns)
        return event


def decode(raw: bytes, boot_to_unix_ns: int) -> ProcessEvent:
    """Decode one record with no memory of earlier ones (see Decoder for the cached path)."""
    return Decoder(cache_size=1).decode(raw, boot_to_unix_ns)
