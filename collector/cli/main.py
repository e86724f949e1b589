"""The `execlog` command."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from collector.config import ConfigError, add_flags, build_config

__all__ = ["main"]

DESCRIPTION = """\
execlog logs every program started on a Linux node, with the Kubernetes pod and workspace it ran
in, as JSON lines on stdout and as a filtered gRPC stream.

commands:
  run     the collector: without --kubelet-url it logs every exec on this host
  check   can this node run the collector? checks the kernel, BTF, privileges and loads the program
  tail    follow a collector's gRPC stream and print each exec (compact lines or JSON)
"""

RUN_EPILOG = """\
Settings come from flags, then EXECLOG_* environment variables, then the --config YAML file, then
defaults. Structured settings are YAML-only keys: the fields.labels mapping (labels, see
docs/kubernetes.md) and the policy's rule lists (redaction_rules, disabled_redaction_rules,
exclusions, see docs/policy.md). Every setting: docs/operations.md.
Records go to stdout, one JSON object per line; diagnostics go to stderr.
SIGTERM or SIGINT stops the collector after delivering what the kernel already recorded.
Exit status: 0 after a clean stop, 1 when it cannot start or must stop, 2 for bad settings.
"""


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="execlog", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = sub.add_parser(
        "run",
        help="run the collector",
        description="Run the collector: load the exec program and log every exec.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_flags(run)
    check = sub.add_parser(
        "check",
        help="check that this node can run the collector",
        description="Check the kernel, BTF, privileges, ring buffer support and tracefs, then load "
        "and detach the exec program. Exit status 0 when the node can run execlog, 1 when not.",
    )
    add_flags(check)
    from collector.cli.tailflags import TAIL_DESCRIPTION, TAIL_EPILOG, add_tail_flags

    tail = sub.add_parser(
        "tail",
        help="follow a collector's gRPC stream",
        description=TAIL_DESCRIPTION,
        epilog=TAIL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_tail_flags(tail)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "tail":
        # A client: none of the collector's settings apply.
        from collector.cli.tail import tail

        return tail(args)
    try:
        config = build_config(args)
    except ConfigError as exc:
        print(f"execlog: bad setting: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.output.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Imported here so that `execlog --help` works without libbpf on the machine.
    from collector.engine import FatalError

    try:
        if args.command == "check":
            from collector.cli.check import check

            return check(config)
        from collector.cli.run import run

        return run(config)
    except FatalError as exc:
        print(f"execlog: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
