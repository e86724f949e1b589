"""`make bench`: run the benchmarks and print their tables."""

from __future__ import annotations

import argparse
import os
import sys

from bench import grpc_fanout, kernel_cost, pipeline, redaction
from bench.recorded import record_execs

BENCHES = ("kernel", "pipeline", "grpc", "redaction")


def main() -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians are quoted")
    parser.add_argument("--execs", type=int, default=2000, help="execs per storm")
    parser.add_argument("--records", type=int, default=5000, help="recorded records replayed per round")
    parser.add_argument("--fanout-records", type=int, default=50_000, help="records through the gRPC outlet")
    parser.add_argument("--only", choices=BENCHES, action="append", help="run only these (repeatable)")
    args = parser.parse_args()
    chosen = args.only or BENCHES
    if os.geteuid() != 0 and set(chosen) - {"redaction"}:
        print(
            "bench: needs root (BPF and kernel.bpf_stats_enabled); --only redaction does not", file=sys.stderr
        )
        return 1
    tables = []
    if "kernel" in chosen:
        tables.append(
            kernel_cost.table(kernel_cost.measure(args.rounds, args.execs), args.rounds, args.execs)
        )
    if "pipeline" in chosen:
        records = record_execs(args.records)
        tables.append(pipeline.table(pipeline.replay(records, args.rounds), len(records), args.rounds))
    if "grpc" in chosen:
        fanout = [grpc_fanout.measure(args.fanout_records, 2, max_batch) for max_batch in (0, 512)]
        tables.append(grpc_fanout.table(fanout))
    if "redaction" in chosen:
        tables.append(redaction.table(redaction.measure(args.rounds), args.rounds))
    print("\n\n".join(tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
