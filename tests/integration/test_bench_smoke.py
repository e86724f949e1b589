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
