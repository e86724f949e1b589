"""The gRPC outlet: a filtered, resumable Subscribe stream for SIEMs (execlog.v1.ExecLog)."""

from collector.outlets.grpc.broker import Broker, Entry, SubscribeError, Subscription
from collector.outlets.grpc.server import SERVICE, GrpcService, ServeError, TlsFiles

__all__ = [
    "SERVICE",
    "Broker",
    "Entry",
    "GrpcService",
    "ServeError",
    "SubscribeError",
    "Subscription",
    "TlsFiles",
]
