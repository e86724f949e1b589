"""`make bench` keeps working: one tiny round of each benchmark, checked for sane numbers."""

from __future__ import annotations

from bench.kernel_cost import measure, table
from tests.support.require import require_bpf


def test_kernel_cost_bench_measures_both_programs() -> None:
    require_bpf()
    costs = measure(rounds=1, execs=50, sizes=(16, 4096))
    assert [c.argv_bytes for c in costs] == [16, 4096]
    for cost in costs:
        assert cost.exec_ns[0] > 0
        assert cost.comm_ns[0] > 0
    assert "| 4096 |" in table(costs, 1, 50)


def test_pipeline_bench_replays_recorded_records() -> None:
    require_bpf()
    from bench.pipeline import replay
    from bench.pipeline import table as pipeline_table
    from bench.recorded import COMMAND_LINES, record_execs

    records = record_execs(60)
    assert len(records) == 60
    assert COMMAND_LINES[1][0].encode() + b"\0" in records[1]
    (run,) = replay(records, rounds=1)
    assert run.events_per_cpu_second[0] > 0
    assert "| JSON outlet |" in pipeline_table([run], 60, 1)
