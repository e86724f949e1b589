"""A test client of execlog's gRPC stream: subscribe, read in the background, look at what came.

It speaks to the server as any client does (real gRPC over a socket), and decodes with the
collector's own `wire.decode`, so tests compare records, not bytes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc

from collector._proto.execlog.v1 import execlog_pb2 as pb
from collector.hub import Gap, Item
from collector.k8s import ProcessRecord
from collector.outlets.grpc.wire import Checkpoint, Received, decode_all

__all__ = ["Reader", "StreamClient", "tls_credentials"]


def tls_credentials(ca: Path, cert: Path | None = None, key: Path | None = None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=key.read_bytes() if key else None,
        certificate_chain=cert.read_bytes() if cert else None,
    )


class StreamClient:
    def __init__(
        self, target: str, credentials: grpc.ChannelCredentials | None = None, **options: Any
    ) -> None:
        opts = list(options.items())
        self.channel = (
            grpc.insecure_channel(target, options=opts)
            if credentials is None
            else grpc.secure_channel(target, credentials, options=opts)
        )
        self._subscribe = self.channel.unary_stream(
            "/execlog.v1.ExecLog/Subscribe",
            request_serializer=pb.SubscribeRequest.SerializeToString,
            response_deserializer=pb.SubscribeResponse.FromString,
        )
        self._status = self.channel.unary_unary(
            "/execlog.v1.ExecLog/Status",
            request_serializer=pb.StatusRequest.SerializeToString,
            response_deserializer=pb.StatusResponse.FromString,
        )

    def call(self, request: pb.SubscribeRequest | None = None, timeout: float = 120) -> Any:
        return self._subscribe(request or pb.SubscribeRequest(), timeout=timeout)

    def subscribe(self, request: pb.SubscribeRequest | None = None, start: bool = True) -> Reader:
        return Reader(self.call(request), start=start)

    def status(self) -> pb.StatusResponse:
        response: pb.StatusResponse = self._status(pb.StatusRequest(), timeout=10)
        return response

    def close(self) -> None:
        self.channel.close()


class Reader:
    """Reads one Subscribe call on a thread; `received` grows as responses come."""

    def __init__(self, call: Any, start: bool = True, delay: float = 0.0) -> None:
        self.call = call
        self.received: list[Received] = []
        self.raw: list[bytes] = []  # every response as it came on the wire
        self.responses = 0  # gRPC messages: fewer than `received` when batched
        self.error: grpc.RpcError | None = None
        self.ended = threading.Event()
        self.delay = delay  # seconds to sleep after each response: a slow reader
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        if start:
            self.start()

    def start(self, delay: float | None = None) -> None:
        if delay is not None:
            self.delay = delay
        self._thread.start()

    def _run(self) -> None:
        try:
            for response in self.call:
                with self._cond:
                    self.received.extend(decode_all(response))
                    self.raw.append(response.SerializeToString())
                    self.responses += 1
                    self._cond.notify_all()
                if self.delay:
                    time.sleep(self.delay)
        except grpc.RpcError as exc:
            self.error = exc
        finally:
            self.ended.set()
            with self._cond:
                self._cond.notify_all()

    def wait_for(self, predicate: Callable[[Received], bool], timeout: float = 20) -> Received:
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = 0
            while True:
                for r in self.received[seen:]:
                    if predicate(r):
                        return r
                seen = len(self.received)
                left = deadline - time.monotonic()
                if left <= 0 or self.ended.is_set():
                    raise AssertionError(
                        f"nothing matched among {len(self.received)} responses (error: {self.error})"
                    )
                self._cond.wait(min(left, 0.2))

    def wait_end(self, timeout: float = 30) -> None:
        assert self.ended.wait(timeout), "the stream did not end"

    def cancel(self) -> None:
        self.call.cancel()
        self.ended.wait(5)

    def items(self) -> list[Item]:
        return [r.entry for r in self._snapshot() if isinstance(r.entry, Item)]

    def execs(self) -> list[Item]:
        return [i for i in self.items() if isinstance(i.record, ProcessRecord)]

    def gaps(self) -> list[Received]:
        return [
            r
            for r in self._snapshot()
            if isinstance(r.entry, Gap) or (isinstance(r.entry, Item) and isinstance(r.entry.record, Gap))
        ]

    def checkpoints(self) -> list[Checkpoint]:
        return [r.entry for r in self._snapshot() if isinstance(r.entry, Checkpoint)]

    def _snapshot(self) -> Iterator[Received]:
        with self._cond:
            return iter(list(self.received))


def gap_of(received: Received) -> Gap:
    entry = received.entry
    if isinstance(entry, Item):
        assert isinstance(entry.record, Gap)
        return entry.record
    assert isinstance(entry, Gap)
    return entry


def argv1(item: Item) -> str:
    assert isinstance(item.record, ProcessRecord)
    argv: list[str] = getattr(item.record.event, "argv", [])
    return argv[1] if len(argv) > 1 else ""


__all__ += ["argv1", "gap_of"]
