"""The storm's tables and plot: medians over rounds, min..max beside them, nothing rounded away.

Every figure here is computed from the `Storm` results of one run; nothing is typed in by hand.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from bench.storm import CONFIGS, THREAD_GROUPS, Storm

__all__ = ["Summary", "plot", "storm_table", "summarize", "sweep_table", "threads_table"]

TRACERS = ("json", "full", "bpftrace")


def _med(values: Iterable[float | None]) -> tuple[float, float, float] | None:
    got = [v for v in values if v is not None]
    if not got:
        return None
    return statistics.median(got), min(got), max(got)


def fmt(stat: tuple[float, float, float] | None, spec: str = ".1f", spread: bool = True) -> str:
    if stat is None:
        return "-"
    med, lo, hi = stat
    return f"{med:{spec}} ({lo:{spec}}..{hi:{spec}})" if spread else f"{med:{spec}}"


@dataclass(frozen=True, slots=True)
class Summary:
    """One configuration at one target rate, over its rounds."""

    config: str
    target_rate: int
    storms: list[Storm]
    ratio: tuple[float, float, float] | None  # exec rate / untraced rate of the same round

    def stat(self, get: Callable[[Storm], float | None]) -> tuple[float, float, float] | None:
        return _med(get(s) for s in self.storms)

    @property
    def rate(self) -> tuple[float, float, float] | None:
        return self.stat(lambda s: s.rate)

    @property
    def kernel_ns(self) -> tuple[float, float, float] | None:
        return self.stat(lambda s: s.kernel_ns)

    @property
    def cpu_us(self) -> tuple[float, float, float] | None:
        return self.stat(lambda s: s.cpu_us_per_record)

    @property
    def p50_ms(self) -> tuple[float, float, float] | None:
        return self.stat(
            lambda s: max((d.p50_ms for d in s.deliveries if d.p50_ms is not None), default=None)
        )

    @property
    def p99_ms(self) -> tuple[float, float, float] | None:
        return self.stat(
            lambda s: max((d.p99_ms for d in s.deliveries if d.p99_ms is not None), default=None)
        )

    def lost(self) -> dict[str, int]:
        """Summed over rounds: reason -> records, and `missing` (storm execs an outlet lacks)."""
        total: dict[str, int] = {"missing": sum(s.missing for s in self.storms)}
        for s in self.storms:
            for d in s.deliveries:
                for reason, n in d.lost.items():
                    key = f"{d.outlet}: {reason}" if d.outlet.startswith("subscriber") else reason
                    total[key] = total.get(key, 0) + n
        return total


def summarize(storms: list[Storm]) -> dict[tuple[str, int], Summary]:
    untraced = {s.round: s.rate for s in storms if s.config == "none" and s.target_rate == 0}
    out = {}
    for key in {(s.config, s.target_rate) for s in storms}:
        group = sorted((s for s in storms if (s.config, s.target_rate) == key), key=lambda s: s.round)
        ratio = None
        if key[1] == 0 and key[0] != "none":
            ratio = _med(s.rate / untraced[s.round] for s in group if s.round in untraced)
        out[key] = Summary(key[0], key[1], group, ratio)
    return out


def _rss(summary: Summary) -> str:
    rest = summary.stat(lambda s: s.rss_rest / (1 << 20) if s.rss_rest else None)
    after = summary.stat(lambda s: s.rss_after / (1 << 20) if s.rss_after else None)
    return f"{fmt(rest, spread=False)} → {fmt(after, spread=False)}" if rest else "-"


def _loss(summary: Summary) -> str:
    lost = summary.lost()
    return ", ".join(f"{k} {v}" for k, v in sorted(lost.items())) if any(lost.values()) else "0"


def storm_table(summaries: dict[tuple[str, int], Summary], execs: int, parallel: int) -> str:
    rounds = len(summaries[("none", 0)].storms) if ("none", 0) in summaries else 0
    lines = [
        f"The storm: {execs} posix_spawns of /bin/true, {parallel} at a time, as fast as they go; "
        f"one fresh tracer per storm; median (min..max) of {rounds} interleaved rounds",
        "",
        "| tracer | execs/s | throughput ratio | kernel ns/exec | tracer CPU µs/exec | RSS MiB before → after"
        " | gRPC latency p50 / p99 ms | lost |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for key, label in CONFIGS.items():
        s = summaries.get((key, 0))
        if s is None:
            continue
        latency = f"{fmt(s.p50_ms, spread=False)} / {fmt(s.p99_ms)}" if s.p99_ms else "-"
        lines.append(
            f"| {label} | {fmt(s.rate, '.0f')} | {fmt(s.ratio, '.3f')} | {fmt(s.kernel_ns, '.0f')} "
            f"| {fmt(s.cpu_us)} | {_rss(s)} | {latency} | {_loss(s) if key != 'none' else '-'} |"
        )
    return "\n".join(lines)


def sweep_table(summaries: dict[tuple[str, int], Summary]) -> str:
    lines = [
        "Paced storms: the tracer's CPU per exec and loss against the exec rate (median (min..max); "
        "0 = as fast as they go)",
        "",
        "| tracer | asked execs/s | got execs/s | tracer CPU µs/exec | gRPC p50 / p99 ms | lost |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for key in TRACERS:
        for rate in sorted({r for c, r in summaries if c == key}, key=lambda r: (r == 0, r)):
            s = summaries[(key, rate)]
            latency = f"{fmt(s.p50_ms, spread=False)} / {fmt(s.p99_ms)}" if s.p99_ms else "-"
            lines.append(
                f"| {CONFIGS[key]} | {rate or 'max'} | {fmt(s.rate, '.0f')} | {fmt(s.cpu_us)} "
                f"| {latency} | {_loss(s)} |"
            )
    return "\n".join(lines)


def _per_record(group: str) -> Callable[[Storm], float | None]:
    def get(storm: Storm) -> float | None:
        return storm.threads_ns.get(group, 0) / storm.records / 1000 if storm.records else None

    return get


def threads_table(summaries: dict[tuple[str, int], Summary], stages: dict[str, float]) -> str:
    lines = [
        "Where the collector's CPU goes: µs per exec by thread over the unpaced storm (median), and "
        "the ring reader's stages replayed in-process (Kubernetes mode, warm, thread CPU time)",
        "",
        "| thread | " + " | ".join(CONFIGS[k] for k in ("json", "full")) + " |",
        "| --- | ---: | ---: |",
    ]
    for group in THREAD_GROUPS:
        cells = []
        for key in ("json", "full"):
            s = summaries.get((key, 0))
            cells.append(fmt(s.stat(_per_record(group)), spread=False) if s else "-")
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    if stages:
        lines += ["", "| reader stage (replayed) | µs/exec |", "| --- | ---: |"]
        lines += [f"| {name} | {us:.1f} |" for name, us in stages.items()]
    return "\n".join(lines)


def plot(summaries: dict[tuple[str, int], Summary], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (cpu_ax, loss_ax) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=90)
    most_lost = 0.0
    for key, marker in zip(TRACERS, "osd", strict=True):
        points = sorted(
            (s.rate[0], s.cpu_us[0], sum(s.lost().values()) / len(s.storms))
            for (c, _), s in summaries.items()
            if c == key and s.rate and s.cpu_us
        )
        if not points:
            continue
        xs = [p[0] for p in points]
        cpu_ax.plot(xs, [p[1] for p in points], marker=marker, label=CONFIGS[key])
        loss_ax.plot(xs, [p[2] for p in points], marker=marker, label=CONFIGS[key])
        most_lost = max(most_lost, *(p[2] for p in points))
    cpu_ax.set(xlabel="execs/s", ylabel="tracer CPU µs per exec", title="CPU per exec", ylim=(0, None))
    loss_ax.set(
        xlabel="execs/s", ylabel="execs lost per storm", title="Loss", ylim=(-0.5, max(5.0, most_lost * 1.1))
    )
    cpu_ax.grid(alpha=0.3)
    loss_ax.grid(alpha=0.3)
    cpu_ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
