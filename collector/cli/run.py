"""`execlog run`: the collector, wired from its configuration."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from collector.bpf.hierarchy import Hierarchy, HierarchyError, resolve_hierarchy
from collector.bpf.libbpf import LibbpfError
from collector.bpf.program import COMM_HOOKS, EXEC_HOOKS, ExecProgram, ProgramOptions
from collector.bpf.requirements import load_error_fix, preflight
from collector.cli.pipeline import Pipeline
from collector.config import Config
from collector.hub import Hub
from collector.outlets.jsonlog import JsonLogOutlet
from collector.policy import build_policy

__all__ = ["Collector", "FatalError", "program_options", "run"]

log = logging.getLogger("execlog")


class FatalError(RuntimeError):
    """The collector cannot start or go on; the message is the one line the user sees."""


def program_options(
    config: Config, hierarchy: Hierarchy, cgroup_filter: frozenset[int] | None
) -> ProgramOptions:
    capture = config.capture
    return ProgramOptions(
        object_path=capture.bpf_object,
        btf_path=capture.btf_path,
        argv_cap=capture.argv_cap,
        ring_size=capture.ring_size,
        cgroup_subsys_idx=hierarchy.subsys_idx,
        cgroup_filter=cgroup_filter,
        exec_hooks=tuple(EXEC_HOOKS) if capture.exec_hook == "auto" else (capture.exec_hook,),
        comm_hooks=tuple(COMM_HOOKS) if capture.comm_hook == "auto" else (capture.comm_hook,),
    )


def load_program(
    config: Config, cgroup_filter: frozenset[int] | None = None
) -> tuple[ExecProgram, Hierarchy]:
    """Check the node, then load and attach; every failure becomes one FatalError line."""
    for finding in preflight(config.capture.btf_path):
        if not finding.ok:
            raise FatalError(f"{finding.detail}; fix: {finding.fix}")
    try:
        hierarchy = resolve_hierarchy(
            config.capture.cgroup_hierarchy, config.capture.cgroup_root, config.capture.proc_root
        )
    except HierarchyError as exc:
        raise FatalError(str(exc)) from exc
    try:
        program = ExecProgram(program_options(config, hierarchy, cgroup_filter))
    except LibbpfError as exc:
        fix = load_error_fix(exc)
        raise FatalError(f"cannot start the exec program: {exc}" + (f"; fix: {fix}" if fix else "")) from exc
    except ValueError as exc:
        raise FatalError(str(exc)) from exc
    return program, hierarchy


class Collector:
    """Reader thread (ring -> pipeline -> hub) plus the outlets' own threads."""

    def __init__(self, config: Config, stdout_fd: int = 1) -> None:
        self.config = config
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self.program, self.hierarchy = load_program(config)
        try:
            self.hub = Hub()
            self.jsonlog = JsonLogOutlet(stdout_fd, self.hub.stream_id, config.output.json_queue, self._fatal)
            self.hub.add_outlet(self.jsonlog)
            self.policy = build_policy(config.policy)  # its .counters are for the metrics outlet
            self.pipeline = Pipeline(self.hub, policy=self.policy)
        except BaseException:
            self.program.close()
            raise
        self._reader = threading.Thread(target=self._read_loop, name="ring-reader", daemon=True)

    def _fatal(self, exc: BaseException) -> None:
        if self._failure is None:
            self._failure = exc
        self._stop.set()

    def _read_loop(self) -> None:
        program, pipeline = self.program, self.pipeline
        interval = self.config.capture.drain_interval_ms
        try:
            while not self._stop.is_set():
                pipeline.process(program.read(interval))
                pipeline.account_kernel(program.counters())
                pipeline.tick()
            # Whatever the kernel recorded before the stop is still delivered.
            pipeline.process(program.read(0))
            pipeline.account_kernel(program.counters())
            pipeline.tick(final=True)
        except Exception as exc:
            log.exception("the ring reader failed")
            self._fatal(exc)

    def start(self) -> None:
        plan = self.program.attach_plan
        log.info(
            "execlog running: stream %s, %s, exec hook %s, comm hook %s",
            self.hub.stream_id,
            self.hierarchy.describe(),
            plan.exec_hook,
            plan.comm_hook,
        )
        self._reader.start()

    def stop(self) -> None:
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._stop.wait(timeout)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop reading, deliver what is in flight, detach. Safe to call twice."""
        self._stop.set()
        if self._reader.is_alive():
            self._reader.join(timeout)
        self.hub.close(timeout)
        self.program.close()

    @property
    def failure(self) -> BaseException | None:
        return self._failure


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
    if collector.failure is not None:
        raise FatalError(f"stopped: {collector.failure}")
    return 0
