"""`make bench`: run the benchmarks and print their tables."""

from __future__ import annotations

import argparse
import os
import sys

from bench import grpc_fanout, kernel_cost, pipeline
from bench.recorded import record_execs


def main() -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians are quoted")
    parser.add_argument("--execs", type=int, default=2000, help="execs per storm")
    parser.add_argument("--records", type=int, default=5000, help="recorded records replayed per round")
    parser.add_argument("--fanout-records", type=int, default=50_000, help="records through the gRPC outlet")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench: needs root (BPF and kernel.bpf_stats_enabled)", file=sys.stderr)
        return 1
    costs = kernel_cost.measure(args.rounds, args.execs)
    print(kernel_cost.table(costs, args.rounds, args.execs))
    print()
    records = record_execs(args.records)
    print(pipeline.table(pipeline.replay(records, args.rounds), len(records), args.rounds))
    print()
    fanout = [grpc_fanout.measure(args.fanout_records, 2, max_batch) for max_batch in (0, 512)]
    print(grpc_fanout.table(fanout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
