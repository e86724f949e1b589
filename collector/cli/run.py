"""`execlog run`: the collector until SIGTERM or SIGINT; its exit status."""

from __future__ import annotations

import logging
import signal
from types import FrameType

from collector.config import Config
from collector.engine import Collector, FatalError

__all__ = ["run"]

log = logging.getLogger("execlog")


def run(config: Config) -> int:
    collector = Collector(config)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s received; draining and stopping", signal.Signals(signum).name)
        collector.stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        collector.start()
        while not collector.wait(1.0):
            pass
    finally:
        collector.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("execlog stopped: %s", collector.summary())
    failure = collector.failure
    if failure is not None:
        what = "stdout was closed for good" if isinstance(failure, BrokenPipeError) else str(failure)
        raise FatalError(f"stopped: {what}; {collector.summary()}")
    return 0
