"""`make bench`: run the benchmarks and print their tables."""

from __future__ import annotations

import argparse
import os
import sys

from bench import redaction
from bench.kernel_cost import measure, table


def main() -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians are quoted")
    parser.add_argument("--execs", type=int, default=2000, help="execs per storm")
    parser.add_argument(
        "--only", choices=("kernel", "redaction"), default=None, help="run one benchmark (default: both)"
    )
    args = parser.parse_args()
    if args.only in (None, "redaction"):
        # Redaction runs in user space only: no root needed.
        print(redaction.table(redaction.measure(args.rounds), args.rounds))
        if args.only is None:
            print()
    if args.only in (None, "kernel"):
        if os.geteuid() != 0:
            print("bench: needs root (BPF and kernel.bpf_stats_enabled)", file=sys.stderr)
            return 1
        costs = measure(args.rounds, args.execs)
        print(table(costs, args.rounds, args.execs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
