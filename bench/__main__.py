"""`make bench`: run the benchmarks, print their tables, and with --write regenerate BENCHMARKS.md."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

from bench import grpc_fanout, kernel_cost, memory, pipeline, redaction, report, storm
from bench.document import document, targets, targets_table
from bench.recorded import record_execs

BENCHES = ("storm", "kernel", "pipeline", "memory", "grpc", "redaction")


def _rates(text: str) -> tuple[int, ...]:
    return tuple(int(r) for r in text.split(",") if r.strip())


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    add = parser.add_argument
    add("--rounds", type=int, default=5, help="interleaved rounds; medians are quoted")
    add("--storm-execs", type=int, default=6000, help="execs per unpaced storm")
    add("--parallel", type=int, default=2, help="spawns in flight in every storm")
    add(
        "--sweep-rates", type=_rates, default=(250, 500, 1000), help="paced storms, execs/s (comma-separated)"
    )
    add("--sweep-rounds", type=int, default=3, help="rounds that also run the paced storms")
    add("--execs", type=int, default=2000, help="execs per storm of the argv-size kernel table")
    add("--records", type=int, default=5000, help="recorded records replayed per pipeline round")
    add("--memory-events", type=int, default=1_000_000, help="events through the memory run")
    add("--fanout-records", type=int, default=50_000, help="records through the gRPC fan-out")
    add("--only", choices=BENCHES, action="append", help="run only these (repeatable)")
    add("--write", type=Path, help="write the tables to this Markdown file, the plot beside it (.png)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    chosen = args.only or BENCHES
    if os.geteuid() != 0 and set(chosen) - {"redaction", "grpc"}:
        print(
            "bench: needs root (BPF and kernel.bpf_stats_enabled); --only redaction does not", file=sys.stderr
        )
        return 1
    started = time.monotonic()
    sections: list[str] = []
    summaries: dict[tuple[str, int], report.Summary] = {}
    runs: list[pipeline.PipelineRun] = []
    mem: list[memory.MemoryRun] = []
    stages: dict[str, float] = {}

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    if "storm" in chosen:
        plan = storm.StormPlan(
            args.rounds, args.storm_execs, args.parallel, args.sweep_rates, args.sweep_rounds
        )
        log(f"storm: {args.rounds} rounds of {len(plan.configs)} configurations, then paced storms")
        summaries = report.summarize(storm.measure(plan, log))
        sections += [
            report.storm_table(summaries, args.storm_execs, args.parallel),
            report.sweep_table(summaries),
        ]
    records = record_execs(args.records) if {"pipeline", "memory"} & set(chosen) else []
    if "pipeline" in chosen:
        log("pipeline: replaying recorded records")
        runs = pipeline.replay(records, args.rounds)
        stages = pipeline.stages(records, args.rounds)
        sections.append(pipeline.table(runs, len(records), args.rounds))
    if summaries or stages:
        sections.append(report.threads_table(summaries, stages))
    if "memory" in chosen:
        log(f"memory: {args.memory_events:,} churning events, twice")
        mem = [
            memory.measure(records, args.memory_events),
            memory.measure(records, args.memory_events, 10_000),
        ]
        rest = {}
        for key in ("json", "full"):
            rss = summaries[(key, 0)].stat(lambda st: st.rss_rest) if (key, 0) in summaries else None
            if rss is not None:
                rest[storm.CONFIGS[key]] = int(rss[0])
        sections.append(memory.table(mem, rest))
    if "kernel" in chosen:
        log("kernel: argv sizes")
        costs = kernel_cost.measure(args.rounds, args.execs)
        sections.append(kernel_cost.table(costs, args.rounds, args.execs))
    if "grpc" in chosen:
        log("grpc: fan-out to two subscribers")
        fanout = [grpc_fanout.measure(args.fanout_records, 2, max_batch) for max_batch in (0, 512)]
        sections.append("gRPC fan-out: records to two subscriber processes\n\n" + grpc_fanout.table(fanout))
    if "redaction" in chosen:
        sections.append(redaction.table(redaction.measure(args.rounds), args.rounds))
    if summaries or runs or mem:
        sections.insert(0, targets_table(targets(summaries, runs, mem)))
    print("\n\n".join(sections))
    seconds = time.monotonic() - started
    print(f"\n(bench took {seconds / 60:.1f} minutes)")
    if args.write is not None:
        png = args.write.with_suffix(".png")
        if summaries:
            report.plot(summaries, png)
        command = (
            "make bench"
            if argv is None and not sys.argv[1:]
            else shlex.join(["python", "-m", "bench", *sys.argv[1:]])
        )
        args.write.write_text(document(command, seconds, sections, png.name if summaries else None))
        log(f"wrote {args.write}" + (f" and {png}" if summaries else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
