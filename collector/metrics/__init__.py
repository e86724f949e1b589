"""Prometheus metrics on --metrics-listen, read from the components at scrape time."""

from collector.metrics.exporter import MetricsError, MetricsServer
from collector.metrics.readings import PREFIX, Metrics, Reading, Value

__all__ = ["PREFIX", "Metrics", "MetricsError", "MetricsServer", "Reading", "Value"]
