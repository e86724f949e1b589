"""`execlog tail`'s description and flags, apart from the client so that building the command
line does not import gRPC (~20 MiB of resident memory that `execlog run` may not need)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

__all__ = ["TAIL_DESCRIPTION", "TAIL_EPILOG", "add_tail_flags"]

TAIL_DESCRIPTION = """\
Follow a collector's gRPC stream (execlog run --grpc-listen ADDR) and print each exec: one
compact line (time, namespace/pod/container or the node, user or uid, pid, command line), or
with --output json the same JSON record as the collector's stdout.

Filters run on the collector. The --namespace, --selector, --label and --binary-prefix flags
form one filter: an exec must match all of them. Each --deny-... flag is a filter of its own:
an exec that matches any of them is left out. Execs of no pod (a collector in standalone mode)
match no namespace, selector or label.
"""

TAIL_EPILOG = """\
Gaps (records lost, with how many, their seqs and why) go to stderr in compact mode and are
"gap" records in JSON mode. On a dropped connection tail reconnects on its own and resumes where
it was; it stops on SIGINT or SIGTERM.

examples:
  execlog tail unix:///run/execlog/grpc.sock
  execlog tail 127.0.0.1:7000 --namespace coder --label username=jessie
  execlog tail node-1:7443 --tls-ca ca.crt --tls-cert me.crt --tls-key me.key -o json

Exit status: 0 when stopped by a signal, 1 when it cannot connect (TLS failure included) or the
collector refuses the request, 2 for bad flags.
"""


def add_tail_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "address",
        nargs="?",
        default=os.environ.get("EXECLOG_CONNECT"),
        metavar="ADDRESS",
        help="the collector's --grpc-listen: host:port or unix:///path (default: $EXECLOG_CONNECT)",
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=("compact", "json"),
        default="compact",
        help="line format (default: compact)",
    )
    allow = parser.add_argument_group("filters (all of these must match)")
    allow.add_argument(
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="the pod's namespace is NS (repeat: any of them)",
    )
    allow.add_argument(
        "--selector", metavar="SELECTOR", help="the pod's labels match this label selector (app=web,tier!=db)"
    )
    allow.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an output label, e.g. username=jessie (repeat: all of them)",
    )
    allow.add_argument(
        "--binary-prefix",
        action="append",
        default=[],
        metavar="PATH",
        help="the executed file starts with PATH (repeat: any of them)",
    )
    deny = parser.add_argument_group("exclusions (each one leaves out what it matches)")
    deny.add_argument("--deny-namespace", action="append", default=[], metavar="NS")
    deny.add_argument("--deny-selector", action="append", default=[], metavar="SELECTOR")
    deny.add_argument("--deny-label", action="append", default=[], metavar="KEY=VALUE")
    deny.add_argument("--deny-binary-prefix", action="append", default=[], metavar="PATH")
    start = parser.add_argument_group("where to start")
    where = start.add_mutually_exclusive_group()
    where.add_argument(
        "--replay", action="store_true", help="start with every record the collector still holds"
    )
    where.add_argument("--resume", metavar="STREAM_ID:SEQ", help="start after this seq of this stream")
    tls = parser.add_argument_group("TLS")
    tls.add_argument(
        "--tls-ca",
        type=Path,
        metavar="PATH",
        help="CA certificate(s) to verify the collector with; turns TLS on",
    )
    tls.add_argument(
        "--tls-cert", type=Path, metavar="PATH", help="client certificate for mTLS; turns TLS on"
    )
    tls.add_argument("--tls-key", type=Path, metavar="PATH", help="the client certificate's private key")
    tls.add_argument(
        "--tls-server-name",
        metavar="NAME",
        help="the name to expect in the collector's certificate (default: the host in ADDRESS)",
    )
    parser.add_argument(
        "--name",
        default="execlog-tail",
        help="this subscriber's name in the collector's metrics (default: execlog-tail)",
    )
    parser.add_argument(
        "--wait", action="store_true", help="keep trying when the first connection fails, instead of exiting"
    )
