"""The Prometheus endpoint: http://HOST:PORT/metrics, served from its own thread."""

from __future__ import annotations

import logging

from prometheus_client import start_http_server
from prometheus_client.registry import CollectorRegistry

from collector.listen import ListenAddress
from collector.metrics.readings import Metrics

__all__ = ["MetricsError", "MetricsServer"]

log = logging.getLogger("execlog.metrics")


class MetricsError(RuntimeError):
    """The endpoint cannot start; the message is one line for the user."""


class MetricsServer:
    def __init__(self, listen: ListenAddress, metrics: Metrics) -> None:
        # A private registry: only execlog's metrics, none of the client library's defaults.
        registry = CollectorRegistry(auto_describe=False)
        registry.register(metrics)
        try:
            self._server, self._thread = start_http_server(listen.port, addr=listen.host, registry=registry)
        except OSError as exc:
            raise MetricsError(f"cannot listen on {listen} for metrics: {exc.strerror or exc}") from exc
        self.address = listen.target(self._server.server_port)
        log.info("metrics at http://%s/metrics", self.address)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
