"""Follow a collector's gRPC stream and hand each record to a printer, until stopped.

It remembers where it is (stream id and seq, from every record and checkpoint) and, when the
connection drops, reconnects with backoff and jitter and resumes from there: what the collector
still holds is replayed, and what it no longer holds is reported as a gap. A collector that
restarted is a new stream; that too is a gap, then the new stream from its oldest held record.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from collector._proto.execlog.v1 import execlog_pb2 as pb
from collector.hub import Item
from collector.listen import parse_listen
from collector.outlets.grpc.wire import Checkpoint, decode_all
from collector.tail.printers import Printer

__all__ = ["Position", "TailError", "TailOptions", "channel", "filters", "follow"]


@dataclass(frozen=True, slots=True)
class TailOptions:
    """What to follow and how: `execlog tail`'s flags, by the same names."""

    address: str | None
    name: str = ""
    wait: bool = False
    resume: str | None = None
    replay: bool = False
    namespace: tuple[str, ...] = ()
    selector: str | None = None
    label: tuple[str, ...] = ()
    binary_prefix: tuple[str, ...] = ()
    deny_namespace: tuple[str, ...] = ()
    deny_selector: tuple[str, ...] = ()
    deny_label: tuple[str, ...] = ()
    deny_binary_prefix: tuple[str, ...] = ()
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_server_name: str | None = None


_FATAL = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
}
_BATCH = 512  # records per response: keeps up with storms that one message per record cannot
_BACKOFF_FIRST = 0.25
_BACKOFF_MAX = 8.0


class TailError(Exception):
    """Stop with this one line and exit status 1."""


@dataclass(slots=True)
class Position:
    stream_id: str = ""
    seq: int = 0


def _label(text: str, flag: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise TailError(f"{flag} {text!r}: expected KEY=VALUE")
    return key, value


def filters(args: TailOptions) -> tuple[list[pb.Filter], list[pb.Filter]]:
    allow = pb.Filter(
        namespaces=args.namespace,
        pod_selector=args.selector or "",
        labels=dict(_label(t, "--label") for t in args.label),
        binary_prefixes=args.binary_prefix,
    )
    deny = [pb.Filter(namespaces=[ns]) for ns in args.deny_namespace]
    deny += [pb.Filter(pod_selector=sel) for sel in args.deny_selector]
    deny += [pb.Filter(labels=dict([_label(t, "--deny-label")])) for t in args.deny_label]
    deny += [pb.Filter(binary_prefixes=[p]) for p in args.deny_binary_prefix]
    return ([allow] if allow.ByteSize() else []), deny


def _read(path: Path | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TailError(f"cannot read the {what} {path}: {exc.strerror}") from exc


def channel(args: TailOptions) -> tuple[grpc.Channel, str]:
    if not args.address:
        raise TailError("give the collector's address: execlog tail host:port or unix:///path")
    try:
        target = parse_listen(args.address).target()
    except ValueError as exc:
        raise TailError(str(exc)) from exc
    options: list[tuple[str, str | int]] = [("grpc.keepalive_time_ms", 30_000)]
    if args.tls_key is not None and args.tls_cert is None:
        raise TailError("--tls-key needs --tls-cert")
    if args.tls_ca is None and args.tls_cert is None:
        return grpc.insecure_channel(target, options=options), target
    if args.tls_server_name:
        options.append(("grpc.ssl_target_name_override", args.tls_server_name))
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(args.tls_ca, "CA certificate"),
        private_key=_read(args.tls_key, "TLS key") if args.tls_cert else None,
        certificate_chain=_read(args.tls_cert, "TLS certificate"),
    )
    return grpc.secure_channel(target, credentials, options=options), target


def _backoff() -> Iterator[float]:
    """Exponential with full jitter, so many tails do not reconnect in step."""
    ceiling = _BACKOFF_FIRST
    while True:
        yield random.uniform(ceiling / 2, ceiling)
        ceiling = min(ceiling * 2, _BACKOFF_MAX)


def _start(args: TailOptions, status: grpc.UnaryUnaryMultiCallable) -> Position:  # type: ignore[type-arg]
    if args.resume:
        stream_id, sep, seq = args.resume.rpartition(":")
        if not sep or not stream_id or not seq.isdigit():
            raise TailError(f"--resume {args.resume!r}: expected STREAM_ID:SEQ")
        return Position(stream_id, int(seq))
    if args.replay:
        response: pb.StatusResponse = status(pb.StatusRequest(), timeout=10)
        return Position(response.stream_id, 0)
    return Position()


def follow(args: TailOptions, printer: Printer) -> None:
    allow, deny = filters(args)
    chan, target = channel(args)
    subscribe = chan.unary_stream(
        "/execlog.v1.ExecLog/Subscribe",
        request_serializer=pb.SubscribeRequest.SerializeToString,
        response_deserializer=pb.SubscribeResponse.FromString,
    )
    status = chan.unary_unary(
        "/execlog.v1.ExecLog/Status",
        request_serializer=pb.StatusRequest.SerializeToString,
        response_deserializer=pb.StatusResponse.FromString,
    )
    connected = False
    delays = _backoff()
    try:
        position = _start(args, status)
    except grpc.RpcError as exc:
        raise TailError(f"cannot connect to {target}: {_details(exc)}") from exc
    while True:
        request = pb.SubscribeRequest(
            allow=allow,
            deny=deny,
            stream_id=position.stream_id,
            resume_after=position.seq,
            client_name=args.name,
            max_batch=_BATCH,
        )
        call = subscribe(request)
        announced = False
        try:
            for received in (r for response in call for r in decode_all(response)):
                entry = received.entry
                if not announced:
                    announced, connected, delays = True, True, _backoff()
                    after = f"after seq {position.seq}" if position.stream_id else "live"
                    printer.notice(
                        f"following {target} ({after} of stream {position.stream_id or received.stream_id})"
                    )
                if isinstance(entry, Checkpoint):
                    position = Position(entry.stream_id, entry.seq)
                    continue
                printer.record(received.stream_id, received.node, entry)
                if isinstance(entry, Item):
                    position = Position(received.stream_id, entry.seq)
                elif entry.last_seq is not None:
                    position = Position(received.stream_id, entry.last_seq)
            problem = "the collector ended the stream (it is stopping)"
        except grpc.RpcError as exc:
            code = exc.code()
            if code in _FATAL:
                raise TailError(f"{target} refused: {_details(exc)}") from exc
            if not connected and not args.wait:
                hint = ""
                if code == grpc.StatusCode.UNAVAILABLE and (args.tls_ca or args.tls_cert):
                    hint = (
                        " (with TLS: check --tls-ca and --tls-server-name, and whether the collector "
                        "wants a client certificate signed by its --grpc-client-ca)"
                    )
                raise TailError(f"cannot connect to {target}: {_details(exc)}{hint}") from exc
            problem = (
                f"connection to {target} lost: {_details(exc)}"
                if connected
                else f"cannot connect: {_details(exc)}"
            )
        finally:
            call.cancel()
        delay = next(delays)
        printer.notice(f"{problem}; reconnecting in {delay:.1f}s")
        time.sleep(delay)


def _details(exc: grpc.RpcError) -> str:
    text = str(exc.details() or exc.code())
    return " ".join(text.split())
