"""decode -> enrich -> policy -> hub, run inline on the ring reader's thread, for records of every kind."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from collector.bpf.program import KernelCounters
from collector.event import BootClock, DecodeCounters, Decoder, MalformedRecord, ProcessEvent
from collector.hub import KERNEL_RING_FULL, MALFORMED_RECORD, Gap, Hub, Record
from collector.k8s import Enricher, Standalone
from collector.policy import PassThrough, Policy

__all__ = ["Pipeline"]

log = logging.getLogger("execlog.pipeline")


class Pipeline:
    def __init__(
        self,
        hub: Hub,
        clock: BootClock | None = None,
        enricher: Enricher | None = None,
        policy: Policy | None = None,
    ) -> None:
        self.hub = hub
        self.clock = clock or BootClock()
        self.enricher: Enricher = enricher or Standalone()
        self.policy: Policy = policy or PassThrough()
        self.counters = DecodeCounters()
        self.kernel = KernelCounters()  # the kernel's counters as last read
        self._decode = Decoder().decode

    def process(self, raws: Sequence[bytes]) -> None:
        """Take a batch of ring records through every stage and publish what comes out."""
        if not raws:
            return
        offset = self.clock.offset_ns()
        decode = self._decode
        events: list[ProcessEvent] = []
        malformed = truncated = 0
        for raw in raws:
            try:
                event = decode(raw, offset)
            except MalformedRecord as exc:
                malformed += 1
                log.warning("dropped a malformed ring record: %s", exc)
                continue
            if getattr(event, "truncated", False):
                truncated += 1
            events.append(event)
        counters = self.counters
        counters.records += len(raws)
        counters.decoded += len(events)
        counters.truncated += truncated
        records: list[Record] = list(self.policy.apply(self.enricher.enrich(events)))
        if malformed:
            counters.malformed += malformed
            records.append(Gap(malformed, MALFORMED_RECORD, time.time_ns()))
        self.hub.publish(records)

    def tick(self, now_ns: int | None = None, final: bool = False) -> None:
        """Publish what time makes due: held-back events and policy summaries.

        With `final` (at shutdown) everything still held goes out."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        records: list[Record] = list(self.policy.apply(self.enricher.due(now_ns, final)))
        records.extend(self.policy.due(now_ns, final))
        self.hub.publish(records)

    def account_kernel(self, kernel: KernelCounters) -> None:
        """Turn growth of the kernel's loss counter into a gap record."""
        lost = kernel.lost - self.kernel.lost
        self.kernel = kernel
        if lost > 0:
            log.warning("the kernel ring buffer was full: %d records lost", lost)
            self.hub.publish([Gap(lost, KERNEL_RING_FULL, time.time_ns())])
