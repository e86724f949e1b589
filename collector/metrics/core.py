"""The collector's own metrics: the kernel side, the pipeline, the outlets and the subscribers.

Every value is read from the component that counts it, at scrape time. Rooms that come later add
theirs beside these in the Collector's wiring (see readings.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from collector.bpf.program import KernelCounters
from collector.cli.pipeline import PipelineCounters
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
    pipeline: PipelineCounters,
    last_seq: Callable[[], int],
    outlet_losses: Mapping[str, Callable[[], int]],
    enrichment_misses: Callable[[], int] | None = None,
) -> list[Reading]:
    """`enrichment_misses` is the Kubernetes room's count of execs it could not attribute to a
    pod; until it is wired the metric is left out."""
    misses = enrichment_misses

    def losses() -> Value:
        return {(name,): read() for name, read in outlet_losses.items()}

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
            lambda: pipeline.decoded,
        ),
        Reading(
            "execlog_records_malformed_total",
            "Ring records that failed their bounds checks and were dropped (a bug).",
            "counter",
            lambda: pipeline.malformed,
        ),
        Reading(
            "execlog_records_truncated_total",
            "Exec events whose argv was cut at the argv cap.",
            "counter",
            lambda: pipeline.truncated,
        ),
        Reading(
            "execlog_stream_last_seq",
            "The newest seq of this run's stream (records and kernel-loss gaps numbered so far).",
            "gauge",
            last_seq,
        ),
        Reading(
            "execlog_outlet_lost_records_total",
            "Records an outlet could not deliver (stdout too slow, subscribers too slow), by outlet.",
            "counter",
            losses,
            labels=("outlet",),
        ),
        Reading(
            "execlog_enrichment_misses_total",
            "Execs that went out without their pod: its cgroup matched no pod known to the kubelet.",
            "counter",
            misses if misses is not None else (lambda: None),
        ),
    ]


def kubernetes_readings(counters: Callable[[], Mapping[str, int]]) -> list[Reading]:
    """Kubernetes mode's attribution counters (see collector.k8s.attribution.EnricherCounters)."""

    def read(*keys: str) -> Callable[[], Value]:
        return lambda: {(key,): counters()[key] for key in keys}

    def one(key: str) -> Callable[[], Value]:
        return lambda: counters()[key]

    return [
        Reading(
            "execlog_kubernetes_execs_total",
            "Execs in Kubernetes mode by outcome: resolved (sent with their pod), unresolved (sent "
            "without it), not_selected and outside_pods (not logged, counted here).",
            "counter",
            read("resolved", "unresolved", "not_selected", "outside_pods"),
            labels=("outcome",),
        ),
        Reading(
            "execlog_kubernetes_held_total",
            "Execs that waited in the pending queue for the kubelet or a cgroup scan.",
            "counter",
            one("held"),
        ),
        Reading(
            "execlog_kubernetes_pending_overflow_total",
            "Held execs sent early, unresolved, because the pending queue was full.",
            "counter",
            one("pending_overflow"),
        ),
        Reading(
            "execlog_kubelet_polls_total",
            "GET /pods requests to the kubelet.",
            "counter",
            one("kubelet_polls"),
        ),
        Reading(
            "execlog_kubelet_poll_failures_total",
            "GET /pods requests that failed (unreachable, refused, HTTP errors, malformed bodies).",
            "counter",
            one("kubelet_poll_failures"),
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
