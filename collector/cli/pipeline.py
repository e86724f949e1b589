"""decode -> enrich -> policy -> hub, run inline on the ring reader's thread."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from collector.bpf.program import KernelCounters
from collector.event import BootClock, ExecEvent, MalformedRecord, decode
from collector.hub import KERNEL_RING_FULL, MALFORMED_RECORD, Gap, Hub, Record
from collector.k8s import Workload
from collector.policy import ExecRecord

__all__ = ["Pipeline", "PipelineCounters"]

log = logging.getLogger("execlog.pipeline")

# Attribution of an event to its workload; standalone mode attributes nothing.
Enrich = Callable[[ExecEvent], Workload | None]


@dataclass(slots=True)
class PipelineCounters:
    records: int = 0  # raw records taken from the ring
    decoded: int = 0
    malformed: int = 0
    kernel_lost: int = 0  # reported by the kernel side so far


class Pipeline:
    def __init__(self, hub: Hub, clock: BootClock | None = None, enrich: Enrich | None = None) -> None:
        self.hub = hub
        self.clock = clock or BootClock()
        self.enrich = enrich
        self.counters = PipelineCounters()

    def process(self, raws: Sequence[bytes]) -> None:
        if not raws:
            return
        offset = self.clock.offset_ns()
        enrich = self.enrich
        records: list[Record] = []
        malformed = 0
        for raw in raws:
            try:
                event = decode(raw, offset)
            except MalformedRecord as exc:
                malformed += 1
                log.warning("dropped a malformed ring record: %s", exc)
                continue
            records.append(ExecRecord(event, enrich(event) if enrich else None, event.argv))
        counters = self.counters
        counters.records += len(raws)
        counters.decoded += len(raws) - malformed
        if malformed:
            counters.malformed += malformed
            records.append(Gap(malformed, MALFORMED_RECORD, time.time_ns()))
        self.hub.publish(records)

    def account_kernel(self, kernel: KernelCounters) -> None:
        """Turn growth of the kernel's loss counter into a gap record."""
        lost = kernel.lost - self.counters.kernel_lost
        if lost > 0:
            self.counters.kernel_lost = kernel.lost
            log.warning("the kernel ring buffer was full: %d execs lost", lost)
            self.hub.publish([Gap(lost, KERNEL_RING_FULL, time.time_ns())])
