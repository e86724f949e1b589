"""`make bench` keeps working: one tiny round of each benchmark, checked for sane numbers.

These check that every figure is measured and lands in BENCHMARKS.md, never how fast anything is.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.kernel_cost import measure, table
from tests.support.require import require, require_bpf, require_runc


def test_kernel_cost_bench_measures_both_programs() -> None:
    require_bpf()
    costs = measure(rounds=1, execs=50, sizes=(16, 4096))
    assert [c.argv_bytes for c in costs] == [16, 4096]
    for cost in costs:
        assert cost.exec_ns[0] > 0
        assert cost.comm_ns[0] > 0
    assert "| 4096 |" in table(costs, 1, 50)


@pytest.fixture(scope="module")
def records() -> list[bytes]:
    require_bpf()
    from bench.recorded import record_execs

    return record_execs(60)


def test_pipeline_bench_replays_recorded_records_through_every_setup(records: list[bytes]) -> None:
    from bench.pipeline import SETUPS, replay, stages
    from bench.pipeline import table as pipeline_table
    from bench.recorded import COMMAND_LINES

    assert len(records) == 60
    assert COMMAND_LINES[1][0].encode() + b"\0" in records[1]
    runs = replay(records, rounds=1)
    assert [run.name for run in runs] == [s.name for s in SETUPS]
    assert all(run.events_per_cpu_second[0] > 0 for run in runs)
    assert "| JSON only, standalone |" in pipeline_table(runs, 60, 1)
    spent = stages(records, rounds=1)
    assert set(spent) == {"decode", "enrich", "policy", "hub + outlets' publish", "JSON writer thread"}
    assert all(us > 0 for us in spent.values())


def test_memory_bench_samples_rss_while_pods_churn(records: list[bytes]) -> None:
    from bench.memory import measure as measure_memory
    from bench.memory import table as memory_table

    run = measure_memory(records, events=60_000, replay=1000)
    assert run.rest > 0
    assert [events for events, _ in run.samples] == [50_176, 60_000]
    assert run.pods_seen == 50 + 5 * 5  # 5 pods replaced every 10,000 events
    assert "growth from replay-buffer-full" in memory_table([run], {"x": 1 << 20})


def test_storm_bench_measures_every_tracer_and_writes_the_document(tmp_path: Path) -> None:
    require_bpf()
    require_runc()
    require(shutil.which("bpftrace") is not None, "bpftrace is not installed")
    from bench import report, storm
    from bench.document import document, targets, targets_table

    storms = storm.measure(
        storm.StormPlan(rounds=1, execs=60, sweep_rates=(), sweep_rounds=1), lambda _: None
    )
    by_key = {(s.config, s.target_rate): s for s in storms}
    assert set(by_key) == {(k, 0) for k in storm.CONFIGS}  # paced storms cost time, not coverage
    for (config, _), s in by_key.items():
        assert s.rate > 0
        if config == "none":
            continue
        assert s.kernel_ns is not None and s.kernel_ns > 0
        assert s.cpu_ns is not None and s.cpu_ns > 0 and s.records
        assert [d.tagged for d in s.deliveries] == [s.execs] * len(s.deliveries), config
    full = by_key[("full", 0)]
    assert [d.outlet for d in full.deliveries] == ["stdout", "subscriber 1", "subscriber 2"]
    assert all(d.p99_ms is not None and d.p99_ms > 0 for d in full.deliveries[1:])
    assert full.threads_ns["ring reader"] > 0 and full.threads_ns["JSON writer"] > 0

    summaries = report.summarize(storms)
    png = tmp_path / "BENCHMARKS.png"
    report.plot(summaries, png)
    assert png.stat().st_size > 0
    sections = [
        targets_table(targets(summaries, [], [])),
        report.storm_table(summaries, 60, 2),
        report.sweep_table(summaries),
        report.threads_table(summaries, {}),
    ]
    text = document("make bench", 1.0, sections, png.name)
    assert "| bpftrace execsnoop.bt |" in text
    assert "| exec → gRPC subscriber latency p99 |" in text
    assert f"]({png.name})" in text
