"""The targets of issue 6 judged against one run's medians, and BENCHMARKS.md around the tables."""

from __future__ import annotations

import platform
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.memory import MemoryRun
from bench.pipeline import PipelineRun
from bench.report import Summary

__all__ = ["NOTES", "Target", "document", "machine", "targets", "targets_table"]

MIB = 1 << 20
FLAT = 0.05  # "flat": RSS grows by less than this fraction after the replay buffer is full


@dataclass(frozen=True, slots=True)
class Target:
    what: str
    goal: str
    measured: str
    holds: bool | None  # None: not measured in this run


def _median(summary: Summary | None, attr: str) -> float | None:
    stat = getattr(summary, attr) if summary is not None else None
    return stat[0] if stat else None


def targets(
    summaries: dict[tuple[str, int], Summary],
    pipeline: list[PipelineRun],
    memory: list[MemoryRun],
) -> list[Target]:
    out: list[Target] = []
    json_s, full_s = summaries.get(("json", 0)), summaries.get(("full", 0))
    kernel = [(n, _median(s, "kernel_ns")) for n, s in (("JSON only", json_s), ("Kubernetes", full_s))]
    got = [v for _, v in kernel if v is not None]
    out.append(
        Target(
            "kernel time per exec",
            "≤ 3 µs",
            ", ".join(f"{n} {v / 1000:.2f} µs" for n, v in kernel if v is not None) or "-",
            all(v <= 3000 for v in got) if got else None,
        )
    )
    ratios = [(n, s.ratio[0]) for n, s in (("JSON only", json_s), ("full", full_s)) if s and s.ratio]
    out.append(
        Target(
            "exec throughput ratio",
            "≥ 0.98",
            ", ".join(f"{n} {r:.3f}" for n, r in ratios) or "-",
            all(r >= 0.98 for _, r in ratios) if ratios else None,
        )
    )
    cpu = _median(json_s, "cpu_us")
    full_cpu = _median(full_s, "cpu_us")
    out.append(
        Target(
            "collector CPU per exec, JSON only",
            "≤ 15 µs",
            (f"{cpu:.1f} µs" if cpu is not None else "-")
            + (f" (JSON + 2 gRPC + Kubernetes: {full_cpu:.1f} µs)" if full_cpu is not None else ""),
            cpu <= 15 if cpu is not None else None,
        )
    )
    if pipeline:
        rates = {
            run.name: sorted(run.events_per_cpu_second)[len(run.events_per_cpu_second) // 2]
            for run in pipeline
        }
        both = [v for name, v in rates.items() if "gRPC" in name]
        out.append(
            Target(
                "pipeline, both outlets",
                "≥ 60,000 events/s per core",
                "; ".join(f"{name} {v:,.0f}" for name, v in rates.items()),
                min(both) >= 60_000 if both else None,
            )
        )
    rest = [s.stat(lambda st: st.rss_rest) for s in (json_s, full_s) if s is not None]
    rest_mib = [r[0] / MIB for r in rest if r]
    if memory:
        default = memory[0]
        flat = default.growth_after_full <= FLAT * default.full[1]
        peak = default.peak / MIB
        out.append(
            Target(
                "resident memory",
                "≤ 80 MB and flat",
                f"execlog run at rest {', '.join(f'{r:.0f}' for r in rest_mib)} MiB; over "
                f"{default.samples[-1][0]:,} churning events peak {peak:.0f} MiB "
                f"(--grpc-replay {default.replay_capacity:,}), "
                f"{default.growth_after_full / MIB:+.1f} MiB after the replay buffer filled",
                all(r <= 80 for r in rest_mib) and peak <= 80 and flat,
            )
        )
    p99 = _median(full_s, "p99_ms")
    out.append(
        Target(
            "exec → gRPC subscriber latency p99",
            "≤ 100 ms",
            f"{p99:.0f} ms at the unpaced storm (p50 {_median(full_s, 'p50_ms') or 0:.0f} ms)"
            if p99
            else "-",
            p99 <= 100 if p99 is not None else None,
        )
    )
    if full_s is not None:
        lost = full_s.lost()
        total = sum(lost.values())
        out.append(
            Target(
                "loss at the highest storm rate, 2 subscribers",
                "0",
                "0" if not total else ", ".join(f"{k} {v}" for k, v in lost.items() if v),
                total == 0,
            )
        )
    return out


def targets_table(found: list[Target]) -> str:
    lines = [
        "Targets (issue 6)",
        "",
        "| target | goal | measured (median) | holds |",
        "| --- | --- | --- | --- |",
    ]
    mark = {True: "yes", False: "**no**", None: "not measured"}
    lines += [f"| {t.what} | {t.goal} | {t.measured} | {mark[t.holds]} |" for t in found]
    return "\n".join(lines)


def machine() -> list[str]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.MULTILINE)
    cores = len(re.findall(r"^processor\s*:", cpuinfo, re.MULTILINE))
    try:
        bpftrace = subprocess.run(
            ["bpftrace", "--version"], capture_output=True, text=True, check=False
        ).stdout
    except OSError:
        bpftrace = "not installed"
    return [
        f"- CPU: {model.group(1) if model else 'unknown'}, {cores} cores",
        f"- kernel: Linux {platform.release()}",
        f"- Python: {sys.version.split()[0]}",
        f"- peer: {bpftrace.strip() or 'bpftrace'} with `/usr/sbin/execsnoop.bt`",
    ]


NOTES = """## Reading the numbers

- Tracer CPU per exec is the tracer process's CPU (all threads) from just before a storm until its
  outlets have every record, divided by the records it handled (host execs included). It has a
  fixed part: the collector wakes every 50 ms to drain the ring even when idle, so the figure per
  exec falls as the exec rate rises (the paced storms and the plot).
- The gRPC subscribers are processes on the same machine: in the full configuration their CPU
  competes with the storm for the same cores, which is part of its lower throughput ratio.
- Pipeline throughput counts this process's CPU only (reader, JSON writer, gRPC threads), not the
  subscribers'. The thread table's gRPC rows are the serving threads; the reader's publish stage
  includes encoding each record for gRPC once.
- Memory: the replay buffer holds encoded records by design; its size is `--grpc-replay`.
"""


def document(command: str, seconds: float, sections: list[str], plot_name: str | None) -> str:
    parts = [
        "# execlog benchmarks",
        "",
        "Written by `make bench` (`python -m bench --write BENCHMARKS.md`); every number below comes "
        "from that one run. Regenerate it on your machine the same way. How each figure is measured "
        "is in the docstrings of `bench/` (`storm.py`, `tracers.py`, `pipeline.py`, `memory.py`).",
        "",
        "## The machine",
        "",
        *machine(),
        f"- command: `{command}`, {seconds / 60:.1f} minutes",
        "",
    ]
    for section in sections:
        title, _, body = section.partition("\n")
        parts += [f"## {title}", "", body.strip("\n"), ""]
        if plot_name and title.startswith("Paced storms"):
            parts += [f"![tracer CPU per exec and loss against the exec rate]({plot_name})", ""]
    return "\n".join([*parts, NOTES])
