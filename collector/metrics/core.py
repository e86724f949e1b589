"""The collector's own metrics: the kernel side, the pipeline, the outlets and the subscribers.

Every value is read from the component that counts it, at scrape time. Rooms that come later add
theirs beside these in the Collector's wiring (see readings.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from collector.bpf.program import KernelCounters
from collector.event import DecodeCounters
from collector.hub import Losses
from collector.k8s import EnricherCounters, WatcherCounters
from collector.metrics.readings import Reading, Value
from collector.policy import PolicyCounters

if TYPE_CHECKING:  # the gRPC outlet is imported only when it is configured (it weighs ~20 MiB)
    from collector.outlets.grpc import Broker

__all__ = [
    "KernelSide",
    "core_readings",
    "kubernetes_readings",
    "subscriber_readings",
]


class KernelSide(Protocol):
    def counters(self) -> KernelCounters: ...

    def ring_fill(self) -> float: ...


def core_readings(
    kernel: KernelSide,
    decoded: DecodeCounters,
    *,
    last_seq: Callable[[], int],
    losses: Losses,
    outlets: Mapping[str, tuple[str, ...]],
    enricher: EnricherCounters | None = None,
) -> list[Reading]:
    """`outlets`: each outlet in use and the reasons it can lose records for, shown at 0 before
    the first loss. `enricher`: Kubernetes mode's attribution counters; without them the misses
    metric is left out."""

    def outlet_losses() -> Value:
        counts: dict[tuple[str, ...], float] = {
            (name, reason): 0 for name, reasons in outlets.items() for reason in reasons
        }
        for key, lost in losses.by_reason().items():
            counts[key] = lost
        return counts

    return [
        Reading(
            "execlog_kernel_execs_seen_total",
            "Execs the kernel program recorded or tried to (after its cgroup filter).",
            "counter",
            lambda: kernel.counters().seen,
        ),
        Reading(
            "execlog_kernel_execs_lost_total",
            "Execs lost in the kernel because the ring buffer was full.",
            "counter",
            lambda: kernel.counters().lost,
        ),
        Reading(
            "execlog_kernel_comm_missing_total",
            "Execs whose caller's comm had not been stashed before the exec (comm is then the new one).",
            "counter",
            lambda: kernel.counters().comm_missing,
        ),
        Reading(
            "execlog_ring_fill_ratio",
            "How full the kernel ring buffer is (0 to 1): what the reader has yet to drain.",
            "gauge",
            kernel.ring_fill,
        ),
        Reading(
            "execlog_records_decoded_total",
            "Ring records decoded into exec events.",
            "counter",
            lambda: decoded.decoded,
        ),
        Reading(
            "execlog_records_malformed_total",
            "Ring records that failed their bounds checks and were dropped (a bug).",
            "counter",
            lambda: decoded.malformed,
        ),
        Reading(
            "execlog_records_truncated_total",
            "Exec events whose argv was cut at the argv cap.",
            "counter",
            lambda: decoded.truncated,
        ),
        Reading(
            "execlog_stream_last_seq",
            "The newest seq of this run's stream (records and kernel-loss gaps numbered so far).",
            "gauge",
            last_seq,
        ),
        Reading(
            "execlog_outlet_lost_records_total",
            "Records an outlet could not deliver, by outlet and reason (outlet_queue_full: stdout "
            "too slow; outlet_write_failed: stdout's writes failed; subscriber_too_slow: a gRPC "
            "subscriber read too slowly).",
            "counter",
            outlet_losses,
            labels=("outlet", "reason"),
        ),
        Reading(
            "execlog_enrichment_misses_total",
            "Execs that went out without their pod: its cgroup matched no pod known to the kubelet.",
            "counter",
            (lambda: enricher.unresolved) if enricher is not None else (lambda: None),
        ),
    ]


def kubernetes_readings(enricher: EnricherCounters, watcher: WatcherCounters) -> list[Reading]:
    """Kubernetes mode's attribution counters, read from the enricher and the pod watcher."""
    return [
        Reading(
            "execlog_kubernetes_execs_total",
            "Execs in Kubernetes mode by outcome: resolved (sent with their pod), unresolved (sent "
            "without it), not_selected and outside_pods (not logged, counted here).",
            "counter",
            lambda: {
                ("resolved",): enricher.resolved,
                ("unresolved",): enricher.unresolved,
                ("not_selected",): enricher.not_selected,
                ("outside_pods",): enricher.outside_pods,
            },
            labels=("outcome",),
        ),
        Reading(
            "execlog_kubernetes_held_total",
            "Execs that waited in the pending queue for the kubelet or a cgroup scan.",
            "counter",
            lambda: enricher.held,
        ),
        Reading(
            "execlog_kubernetes_pending_overflow_total",
            "Held execs sent early, unresolved, because the pending queue was full.",
            "counter",
            lambda: enricher.pending_overflow,
        ),
        Reading(
            "execlog_kubelet_polls_total",
            "GET /pods requests to the kubelet.",
            "counter",
            lambda: watcher.polls,
        ),
        Reading(
            "execlog_kubelet_poll_failures_total",
            "GET /pods requests that failed (unreachable, refused, HTTP errors, malformed bodies).",
            "counter",
            lambda: watcher.poll_failures,
        ),
    ]


def policy_readings(counters: PolicyCounters) -> list[Reading]:
    """What policy did (collector.policy.PolicyCounters): at every scrape, captured execs equal
    logged + suppressed + the sum of excluded."""
    return [
        Reading(
            "execlog_policy_execs_total",
            "Execs that reached policy, by outcome: logged, suppressed (held back by the rate limit "
            "and reported in exec_suppressed summaries), excluded (dropped by an exclusion rule).",
            "counter",
            lambda: {
                ("logged",): counters.logged,
                ("suppressed",): counters.suppressed,
                ("excluded",): sum(counters.excluded.values()),
            },
            labels=("outcome",),
        ),
        Reading(
            "execlog_policy_excluded_total",
            "Execs dropped by each exclusion rule.",
            "counter",
            lambda: {(rule,): count for rule, count in counters.excluded.items()},
            labels=("rule",),
        ),
        Reading(
            "execlog_policy_redactions_total",
            "Execs whose argv each redaction rule changed (one exec can count under several rules).",
            "counter",
            lambda: {(rule,): count for rule, count in counters.redacted.items()},
            labels=("rule",),
        ),
        Reading(
            "execlog_policy_redacted_execs_total",
            "Execs with at least one masked secret.",
            "counter",
            lambda: counters.redacted_execs,
        ),
        Reading(
            "execlog_policy_suppressed_summaries_total",
            "exec_suppressed summary records sent.",
            "counter",
            lambda: counters.summaries,
        ),
        Reading(
            "execlog_policy_rate_limited_workloads",
            "Workloads the rate limiter holds state for now.",
            "gauge",
            lambda: counters.workloads,
        ),
    ]


def subscriber_readings(broker: Broker) -> list[Reading]:
    def per_subscriber(value: Callable[..., int]) -> Callable[[], Value]:
        return lambda: {(s.name, str(s.id)): value(s) for s in broker.subscribers}

    return [
        Reading(
            "execlog_subscribers",
            "gRPC subscribers connected now.",
            "gauge",
            lambda: len(broker.subscribers),
        ),
        Reading(
            "execlog_subscriber_sent_records_total",
            "Records sent to a connected subscriber (replayed ones included).",
            "counter",
            per_subscriber(lambda s: s.sent),
            labels=("subscriber", "id"),
        ),
        Reading(
            "execlog_subscriber_lost_records_total",
            "Records a connected subscriber lost because it read too slowly (each loss was sent as a gap).",
            "counter",
            per_subscriber(lambda s: s.lost),
            labels=("subscriber", "id"),
        ),
        Reading(
            "execlog_subscriber_queued_records",
            "Records waiting in a connected subscriber's queue.",
            "gauge",
            per_subscriber(lambda s: len(s.queue)),
            labels=("subscriber", "id"),
        ),
    ]
