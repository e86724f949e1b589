"""Kernel time per exec of execlog's BPF programs, measured with kernel.bpf_stats_enabled.

Each round loads nothing new: one program stays attached while storms of execs with argv of a
given size run; the table gives the median over rounds of (run_time_ns of both programs) / (runs
of the exec program), so host execs that happen meanwhile are counted on both sides.
"""

from __future__ import annotations

import statistics
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from bench.bpfstats import bpf_stats_enabled, own_prog_ids, prog_stats
from collector.bpf.hierarchy import resolve_hierarchy
from collector.bpf.program import ExecProgram, ProgramOptions
from tests.support.build import execprobe

__all__ = ["KernelCost", "measure", "table"]

REPO = Path(__file__).resolve().parents[1]
ARGV_SIZES = (16, 256, 4096, 32768)


@dataclass(frozen=True, slots=True)
class KernelCost:
    argv_bytes: int
    exec_ns: list[float]  # per round: the exec hook's ns per exec
    comm_ns: list[float]  # per round: the comm hook's ns per exec

    @property
    def total_ns(self) -> list[float]:
        return [a + b for a, b in zip(self.exec_ns, self.comm_ns, strict=True)]


def _drain(program: ExecProgram, stop: threading.Event) -> None:
    while not stop.is_set():
        program.read(20)


def measure(rounds: int = 5, execs: int = 2000, sizes: tuple[int, ...] = ARGV_SIZES) -> list[KernelCost]:
    probe = execprobe()
    hierarchy = resolve_hierarchy("auto", Path("/sys/fs/cgroup"), Path("/proc"))
    options = ProgramOptions(REPO / "bpf" / "exec.bpf.o", cgroup_subsys_idx=hierarchy.subsys_idx)
    results = {size: KernelCost(size, [], []) for size in sizes}
    with bpf_stats_enabled(), ExecProgram(options) as program:
        stop = threading.Event()
        reader = threading.Thread(target=_drain, args=(program, stop), daemon=True)
        reader.start()
        ids = own_prog_ids()
        try:
            for _ in range(rounds):
                for size in sizes:  # sizes interleaved within each round
                    tag = "t" * max(1, size - len("/bin/true") - 8)
                    before = prog_stats(ids)
                    subprocess.run(
                        [probe, "storm", str(execs), "/bin/true", tag], check=True, capture_output=True
                    )
                    after = prog_stats(ids)
                    delta = {
                        after[i].name: (
                            after[i].run_time_ns - before[i].run_time_ns,
                            after[i].run_cnt - before[i].run_cnt,
                        )
                        for i in ids
                    }
                    exec_time, exec_runs = next(v for k, v in delta.items() if k.startswith("exec_"))
                    comm_time = sum(v[0] for k, v in delta.items() if k.startswith("stash_comm"))
                    results[size].exec_ns.append(exec_time / max(exec_runs, 1))
                    results[size].comm_ns.append(comm_time / max(exec_runs, 1))
        finally:
            stop.set()
            reader.join()
        plan = program.attach_plan
    print(f"hooks: exec {plan.exec_hook}, comm {plan.comm_hook}")
    return list(results.values())


def table(costs: list[KernelCost], rounds: int, execs: int) -> str:
    lines = [
        f"Kernel time per exec (kernel.bpf_stats_enabled), median of {rounds} rounds x {execs} execs",
        "",
        "| argv bytes | exec hook ns | comm hook ns | total ns/exec | total min..max |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in costs:
        total = c.total_ns
        lines.append(
            f"| {c.argv_bytes} | {statistics.median(c.exec_ns):.0f} | {statistics.median(c.comm_ns):.0f} "
            f"| {statistics.median(total):.0f} | {min(total):.0f}..{max(total):.0f} |"
        )
    return "\n".join(lines)
