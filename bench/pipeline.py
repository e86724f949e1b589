"""Pipeline throughput without the kernel: recorded records replayed through every stage.

decode -> enrich -> policy -> hub -> outlets, on one thread as in the collector, with the JSON
outlet writing to /dev/null on its own thread. The figure is events per CPU-second of the whole
process (all threads), i.e. events per second per core.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from collector.cli.pipeline import Pipeline
from collector.hub import Hub
from collector.outlets.jsonlog import JsonLogOutlet

__all__ = ["PipelineRun", "replay", "table"]


@dataclass(frozen=True, slots=True)
class PipelineRun:
    name: str
    events_per_cpu_second: list[float]
    us_per_event: list[float]


Setup = Callable[[Hub], Pipeline]


def _json_only(hub: Hub) -> Pipeline:
    return Pipeline(hub)


def replay(
    records: list[bytes], rounds: int = 5, batch: int = 256, setups: dict[str, Setup] | None = None
) -> list[PipelineRun]:
    setups = setups or {"JSON outlet": _json_only}
    runs = {name: PipelineRun(name, [], []) for name in setups}
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for _ in range(rounds):
            for name, setup in setups.items():  # interleaved, so drift hits every setup alike
                hub = Hub()
                outlet = JsonLogOutlet(devnull, hub.stream_id, capacity=len(records) + 1)
                hub.add_outlet(outlet)
                pipeline = setup(hub)
                start = time.process_time()
                for i in range(0, len(records), batch):
                    pipeline.process(records[i : i + batch])
                outlet.wait_idle(60)
                cpu = time.process_time() - start
                hub.close(10)
                runs[name].events_per_cpu_second.append(len(records) / cpu)
                runs[name].us_per_event.append(cpu / len(records) * 1e6)
    finally:
        os.close(devnull)
    return list(runs.values())


def table(runs: list[PipelineRun], events: int, rounds: int) -> str:
    lines = [
        f"Pipeline throughput, {events} recorded records replayed, median of {rounds} interleaved rounds",
        "",
        "| setup | events/s per core | CPU us/event | min..max events/s |",
        "| --- | ---: | ---: | ---: |",
    ]
    for run in runs:
        rate = run.events_per_cpu_second
        lines.append(
            f"| {run.name} | {statistics.median(rate):,.0f} | {statistics.median(run.us_per_event):.1f} "
            f"| {min(rate):,.0f}..{max(rate):,.0f} |"
        )
    return "\n".join(lines)
