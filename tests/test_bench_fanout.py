"""`make bench`'s gRPC fan-out keeps working: a tiny round, every record to every subscriber."""

from __future__ import annotations

from bench.grpc_fanout import measure, table


def test_fanout_bench_delivers_everything_to_every_subscriber() -> None:
    results = [measure(records=1000, subscribers=2, max_batch=max_batch) for max_batch in (0, 64)]
    for result in results:
        assert result.records == 960  # whole publish batches of 64
        assert result.rate > 0 and result.publish_us > 0
    assert "| 2 | 64 | 960 |" in table(results)
