"""Metrics read at scrape time from the components that already count.

Nothing on the hot path counts twice: each metric is a `Reading`, a function that returns the
current value of a counter some component keeps anyway (the kernel's per-CPU counters, the
pipeline's, an outlet's loss count). `Metrics` is a prometheus_client collector made of
readings; any room adds its own in the Collector's wiring:

    metrics.add(Reading("execlog_policy_redactions_total", "argv values masked, per rule",
                        "counter", lambda: dict(policy.redactions_by_rule), labels=("rule",)))

A reading returns a number, a mapping from label values (a tuple) to numbers, or None when the
value does not exist (yet): then the metric is left out of the scrape.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["PREFIX", "Metrics", "Reading", "Value"]

log = logging.getLogger("execlog.metrics")

PREFIX = "execlog_"

Value = float | Mapping[tuple[str, ...], float] | None


@dataclass(frozen=True, slots=True)
class Reading:
    name: str  # with the execlog_ prefix; counters end in _total
    help: str
    kind: Literal["counter", "gauge"]
    read: Callable[[], Value]
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name.startswith(PREFIX):
            raise ValueError(f"metric {self.name} must start with {PREFIX}")
        if self.kind == "counter" and not self.name.endswith("_total"):
            raise ValueError(f"counter {self.name} must end in _total")


class Metrics(Collector):
    def __init__(self) -> None:
        self._readings: dict[str, Reading] = {}
        self._lock = threading.Lock()

    def add(self, *readings: Reading) -> None:
        with self._lock:
            for reading in readings:
                if reading.name in self._readings:
                    raise ValueError(f"metric {reading.name} is registered twice")
                self._readings[reading.name] = reading

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            readings = list(self._readings.values())
        for reading in readings:
            try:
                value = reading.read()
            except Exception:
                # One broken reading must not take the whole scrape down with it.
                log.exception("reading metric %s failed", reading.name)
                continue
            if value is None:
                continue
            family: CounterMetricFamily | GaugeMetricFamily
            if reading.kind == "counter":
                family = CounterMetricFamily(reading.name, reading.help, labels=reading.labels)
            else:
                family = GaugeMetricFamily(reading.name, reading.help, labels=reading.labels)
            if isinstance(value, Mapping):
                for label_values, number in value.items():
                    family.add_metric(list(label_values), number)
            else:
                family.add_metric([], value)
            yield family

    def flat(self) -> dict[str, float]:
        """The metrics without labels, named without the prefix (for the Status RPC)."""
        return {
            sample.name.removeprefix(PREFIX): sample.value
            for family in self.collect()
            for sample in family.samples
            if not sample.labels
        }
