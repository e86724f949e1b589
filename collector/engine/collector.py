"""The collector as a whole: the rooms wired from the configuration, the ring reader's loop, and
the outlets' threads; started, stopped and summarised here, driven by `execlog run`."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from collector.bpf.hierarchy import Hierarchy, HierarchyError, resolve_hierarchy
from collector.bpf.libbpf import LibbpfError
from collector.bpf.program import COMM_HOOKS, EXEC_HOOKS, ExecProgram, ProgramOptions
from collector.bpf.requirements import load_error_fix, preflight
from collector.config import Config
from collector.engine.kubernetes import KubernetesMode, SetupError, kubernetes_mode
from collector.engine.pipeline import Pipeline
from collector.hub import Hub, Outlet
from collector.outlets.jsonlog import JsonLogOutlet
from collector.policy import build_policy

if TYPE_CHECKING:
    from collector.metrics import Metrics, MetricsServer
    from collector.outlets.grpc import GrpcService

__all__ = ["Collector", "FatalError", "load_program", "program_options"]

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
        # Kubernetes mode starts with an empty in-kernel filter (nothing recorded) until the
        # kubepods roots are set, so host execs never reach user space.
        k8s_mode = config.kubernetes.enabled
        self.program, self.hierarchy = load_program(config, frozenset() if k8s_mode else None)
        self.kubernetes: KubernetesMode | None = None
        self.grpc: GrpcService | None = None
        self.metrics_server: MetricsServer | None = None
        try:
            if k8s_mode:
                self.kubernetes = kubernetes_mode(config, self.hierarchy, self.program.set_cgroup_filter)
            self.hub = Hub()
            self.outlets: list[Outlet] = []
            self.jsonlog = JsonLogOutlet(
                stdout_fd, self.hub.stream_id, config.output.json_queue, self._fatal, losses=self.hub.losses
            )
            self._add_outlet(self.jsonlog)
            enricher = self.kubernetes.enricher if self.kubernetes is not None else None
            self.policy = build_policy(config.policy)
            self.pipeline = Pipeline(self.hub, enricher=enricher, policy=self.policy)
            self.metrics: Metrics | None = None
            self._serve(config)
        except SetupError as exc:
            self._close_servers()
            self.program.close()
            raise FatalError(str(exc)) from exc
        except BaseException:
            self._close_servers()
            self.program.close()
            raise
        self._reader = threading.Thread(target=self._read_loop, name="ring-reader", daemon=True)

    def _add_outlet(self, outlet: Outlet) -> None:
        self.outlets.append(outlet)
        self.hub.add_outlet(outlet)

    def _serve(self, config: Config) -> None:
        """The gRPC stream and the metrics endpoint, when configured. Other rooms add their
        metrics here: self.metrics.add(Reading(...))."""
        grpc_config = config.grpc
        if grpc_config.grpc_listen is None and config.metrics.metrics_listen is None:
            return  # nothing reads the counters but the stop line
        # Imported only now: gRPC and prometheus_client weigh ~30 MiB of resident memory, for
        # nothing in a collector that serves neither.
        from collector.metrics import Metrics, MetricsError, MetricsServer
        from collector.metrics.core import core_readings, kubernetes_readings, policy_readings

        self.metrics = metrics = Metrics()
        if grpc_config.grpc_listen is not None:
            self._serve_grpc(config, metrics)
        enricher_counters = None
        if self.kubernetes is not None:
            enricher_counters = self.kubernetes.enricher.counters
            metrics.add(*kubernetes_readings(enricher_counters, self.kubernetes.watcher.counters))
        hub = self.hub
        metrics.add(
            *core_readings(
                self.program,
                self.pipeline.counters,
                last_seq=lambda: hub.last_seq,
                losses=hub.losses,
                outlets={outlet.name: outlet.reasons for outlet in self.outlets},
                enricher=enricher_counters,
            )
        )
        metrics.add(*policy_readings(self.policy.counters))
        if config.metrics.metrics_listen is not None:
            try:
                self.metrics_server = MetricsServer(config.metrics.metrics_listen, metrics)
            except MetricsError as exc:
                raise FatalError(str(exc)) from exc

    def _serve_grpc(self, config: Config, metrics: Metrics) -> None:
        """Start the gRPC outlet."""
        from collector.metrics.core import subscriber_readings
        from collector.outlets.grpc import Broker, GrpcService, ServeError, TlsFiles

        grpc_config = config.grpc
        assert grpc_config.grpc_listen is not None
        broker = Broker(
            self.hub.stream_id,
            config.output.node_name,
            replay_capacity=grpc_config.grpc_replay,
            queue_capacity=grpc_config.grpc_subscriber_queue,
            max_subscribers=grpc_config.grpc_max_subscribers,
            losses=self.hub.losses,
        )
        tls = None
        if grpc_config.grpc_tls_cert is not None and grpc_config.grpc_tls_key is not None:
            tls = TlsFiles(grpc_config.grpc_tls_cert, grpc_config.grpc_tls_key, grpc_config.grpc_client_ca)
        try:
            self.grpc = GrpcService(
                broker,
                grpc_config.grpc_listen,
                tls,
                counters=metrics.flat,
                health_listen=grpc_config.grpc_health_listen,
            )
        except ServeError as exc:
            raise FatalError(str(exc)) from exc
        self._add_outlet(self.grpc)
        metrics.add(*subscriber_readings(broker))

    def _close_servers(self, timeout: float = 1.0) -> None:
        if self.grpc is not None:
            self.grpc.close(timeout)
        if self.metrics_server is not None:
            self.metrics_server.close()

    def _fatal(self, exc: BaseException) -> None:
        if self._failure is None:
            self._failure = exc
        self._stop.set()

    def _read_loop(self) -> None:
        program, pipeline = self.program, self.pipeline
        interval = self.config.capture.drain_interval_ms
        try:
            next_count = 0.0
            while not self._stop.is_set():
                pipeline.process(program.read(interval))
                # Loss can only happen while the ring is full, so its counters need no reading at
                # every drain: once a second bounds how late a gap record comes, and each read is
                # a syscall that dominated the cost of an idle collector.
                now = time.monotonic()
                if now >= next_count:
                    pipeline.account_kernel(program.counters())
                    next_count = now + 1.0
                pipeline.tick()
            # Whatever the kernel recorded before the stop is still delivered.
            pipeline.process(program.read(0))
            pipeline.account_kernel(program.counters())
            pipeline.tick(final=True)
        except Exception as exc:
            log.exception("the ring reader failed")
            self._fatal(exc)

    def start(self) -> None:
        if self.grpc is not None:
            self.grpc.start()
        plan = self.program.attach_plan
        log.info(
            "execlog running: stream %s, %s, exec hook %s, comm hook %s",
            self.hub.stream_id,
            self.hierarchy.describe(),
            plan.exec_hook,
            plan.comm_hook,
        )
        if self.kubernetes is not None:
            self.kubernetes.watcher.start()
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
        if self.kubernetes is not None:
            self.kubernetes.watcher.stop()
        self.hub.close(timeout)  # the gRPC outlet too: subscribers get what was published
        if self.metrics_server is not None:
            self.metrics_server.close()
            self.metrics_server = None
        self.program.close()

    def summary(self) -> str:
        """What was counted in this run, as key=value pairs for the stop line."""
        kernel, decoded = self.pipeline.kernel, self.pipeline.counters
        values = {
            "kernel_seen": kernel.seen,
            "kernel_lost": kernel.lost,
            "records": decoded.records,
            "malformed": decoded.malformed,
            "outlet_lost": self.hub.losses.total(),
        }
        if self.kubernetes is not None:
            e, w = self.kubernetes.enricher.counters, self.kubernetes.watcher.counters
            values.update(
                resolved=e.resolved,
                unresolved=e.unresolved,
                held=e.held,
                pending_overflow=e.pending_overflow,
                not_selected=e.not_selected,
                outside_pods=e.outside_pods,
                kubelet_polls=w.polls,
                kubelet_poll_failures=w.poll_failures,
                cgroup_scans=w.scans,
            )
        return " ".join(f"{key}={value}" for key, value in values.items())

    @property
    def failure(self) -> BaseException | None:
        return self._failure
