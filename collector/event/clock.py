"""Wall time for kernel timestamps.

The kernel stamps each exec with CLOCK_BOOTTIME, which never jumps. The offset to the wall clock
does, when NTP steps it, so it is measured again every `refresh_s` seconds rather than once.
"""

from __future__ import annotations

import time

__all__ = ["BootClock"]


class BootClock:
    def __init__(self, refresh_s: float = 1.0) -> None:
        self._refresh_ns = int(refresh_s * 1e9)
        self._next_ns = 0
        self._offset_ns = 0
        self.offset_ns()

    def offset_ns(self) -> int:
        """Nanoseconds to add to a CLOCK_BOOTTIME stamp to get Unix time."""
        now = time.monotonic_ns()
        if now >= self._next_ns:
            # Bracket the boottime read by two wall-clock reads; their mean is the best pairing.
            before = time.time_ns()
            boot = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
            after = time.time_ns()
            self._offset_ns = (before + after) // 2 - boot
            self._next_ns = now + self._refresh_ns
        return self._offset_ns
