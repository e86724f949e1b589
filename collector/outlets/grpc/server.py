"""The gRPC server: execlog.v1.ExecLog plus the standard health and reflection services.

`GrpcService` is the hub's outlet: records go to the Broker, and closing it lets every
subscriber take what was published before the stop, then ends the streams and the server.

Subscribe's responses are serialized once per record by the Broker, so the method is registered
by hand with an identity serializer: each worker thread sends the shared bytes as they are.
"""

from __future__ import annotations

import logging
import stat
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from collector._proto.execlog.v1 import execlog_pb2 as pb
from collector.hub import SUBSCRIBER_TOO_SLOW, Item
from collector.listen import ListenAddress
from collector.outlets.grpc.broker import OUTLET_NAME, Broker, SubscribeError

__all__ = ["SERVICE", "GrpcService", "ServeError", "TlsFiles"]

log = logging.getLogger("execlog.grpc")

SERVICE: Final = "execlog.v1.ExecLog"
_CODES: Final = {
    "invalid": grpc.StatusCode.INVALID_ARGUMENT,
    "out_of_range": grpc.StatusCode.OUT_OF_RANGE,
    "exhausted": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "unavailable": grpc.StatusCode.UNAVAILABLE,
}
# Health checks, reflection and Status calls, beside one worker per subscriber.
_SPARE_WORKERS: Final = 8
_OPTIONS: Final = (
    # Without this a second collector could bind the same port and share its connections.
    ("grpc.so_reuseport", 0),
    # Find clients that vanished without closing (a SIEM host that lost power).
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
)


class ServeError(RuntimeError):
    """The server cannot start; the message is one line for the user."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    cert: Path
    key: Path
    client_ca: Path | None = None  # set: clients must present a certificate this CA signed


def _read(path: Path, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ServeError(f"cannot read the {what} {path}: {exc.strerror}") from exc
    if b"-----BEGIN" not in data:
        raise ServeError(f"the {what} {path} is not PEM")
    return data


def _identity(data: bytes) -> bytes:
    return data


class GrpcService:
    name = OUTLET_NAME
    reasons: tuple[str, ...] = (SUBSCRIBER_TOO_SLOW,)  # what its subscribers can lose records for

    def __init__(
        self,
        broker: Broker,
        listen: ListenAddress,
        tls: TlsFiles | None = None,
        counters: Callable[[], Mapping[str, float]] | None = None,
        health_listen: ListenAddress | None = None,
    ) -> None:
        self.broker = broker
        self.listen = listen
        self._counters = counters
        self._started_ns = time.time_ns()
        credentials = None
        if tls is not None:
            client_ca = _read(tls.client_ca, "client CA") if tls.client_ca else None
            credentials = grpc.ssl_server_credentials(
                [(_read(tls.key, "TLS key"), _read(tls.cert, "TLS certificate"))],
                root_certificates=client_ca,
                require_client_auth=client_ca is not None,
            )
        workers = broker.max_subscribers + _SPARE_WORKERS
        self._server = grpc.server(
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc"),
            handlers=[self._handler()],
            maximum_concurrent_rpcs=workers,
            options=_OPTIONS,
        )
        self._health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            (SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server
        )
        target = listen.target()
        try:
            if credentials is None:
                port = self._server.add_insecure_port(target)
            else:
                port = self._server.add_secure_port(target, credentials)
        except RuntimeError as exc:
            raise ServeError(f"cannot listen on {target} for gRPC: {exc}") from exc
        if not listen.unix and port == 0:
            raise ServeError(f"cannot listen on {target} for gRPC")
        self.address = listen.target(port)
        self.tls = tls
        self._health_server: grpc.Server | None = None
        self.health_address: str | None = None
        if health_listen is not None:
            self._serve_health(health_listen)

    def _serve_health(self, listen: ListenAddress) -> None:
        """A second server with the health service alone: plaintext is safe where no record goes,
        and the kubelet's grpc probes speak nothing else."""
        server = grpc.server(
            ThreadPoolExecutor(max_workers=2, thread_name_prefix="grpc-health"), options=_OPTIONS
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        target = listen.target()
        try:
            port = server.add_insecure_port(target)
        except RuntimeError as exc:
            raise ServeError(f"cannot listen on {target} for gRPC health: {exc}") from exc
        if not listen.unix and port == 0:
            raise ServeError(f"cannot listen on {target} for gRPC health")
        self._health_server = server
        self.health_address = listen.target(port)

    def _handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Subscribe": grpc.unary_stream_rpc_method_handler(
                    self._subscribe,
                    request_deserializer=pb.SubscribeRequest.FromString,
                    response_serializer=_identity,
                ),
                "Status": grpc.unary_unary_rpc_method_handler(
                    self._status,
                    request_deserializer=pb.StatusRequest.FromString,
                    response_serializer=pb.StatusResponse.SerializeToString,
                ),
            },
        )

    def _subscribe(self, request: pb.SubscribeRequest, context: grpc.ServicerContext) -> Iterator[bytes]:
        try:
            subscription = self.broker.subscribe(request, context.peer())
        except SubscribeError as exc:
            context.abort(_CODES[exc.kind], str(exc))
        if not context.add_callback(lambda: self.broker.unsubscribe(subscription)):
            self.broker.unsubscribe(subscription)  # the client is already gone
            return iter(())
        return subscription.responses()

    def _status(self, request: pb.StatusRequest, context: grpc.ServicerContext) -> pb.StatusResponse:
        broker = self.broker
        replay = broker.replay
        response = pb.StatusResponse(
            stream_id=broker.stream_id,
            node=broker.encoder.node,
            last_seq=replay.newest,
            oldest_seq=replay.oldest if len(replay) else 0,
            replay_capacity=replay.capacity,
            counters=dict(self._counters()) if self._counters is not None else {},
        )
        response.started.FromNanoseconds(self._started_ns)
        for s in broker.subscribers:
            status = response.subscribers.add(
                id=s.id, name=s.name, peer=s.peer, sent=s.sent, lost=s.lost, queued=len(s.queue)
            )
            status.connected.FromNanoseconds(s.connected_ns)
        return response

    def start(self) -> None:
        self._server.start()
        if self._health_server is not None:
            self._health_server.start()
            log.info("gRPC health (only) on %s, no TLS", self.health_address)
        for name in ("", SERVICE):
            self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("gRPC listening on %s (%s)", self.address, self._security())

    def _security(self) -> str:
        if self.tls is None:
            return "unix socket, no TLS" if self.listen.unix else "no TLS"
        return "mTLS" if self.tls.client_ca is not None else "TLS"

    def publish(self, items: Sequence[Item]) -> None:
        self.broker.publish(items)

    def close(self, timeout: float) -> None:
        """Subscribers get everything published before this; then the server stops."""
        self._health.enter_graceful_shutdown()
        started = time.monotonic()
        self.broker.close(timeout)
        grace = max(0.5, min(2.0, timeout - (time.monotonic() - started)))
        self._server.stop(grace).wait(grace + 1)
        if self._health_server is not None:
            self._health_server.stop(0).wait(1)
        path = self.listen.path
        if path is not None:
            try:
                if stat.S_ISSOCK(path.lstat().st_mode):
                    path.unlink()
            except FileNotFoundError:
                pass
