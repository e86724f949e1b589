"""The enricher: cache, selection, and the pending queue's bounds, on decoded records.

Snapshots are built by the watcher's own code (`pod_entries`) from pods made with the kubernetes
models; `Source` holds the current one the way the watcher does, and counts what was asked of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from collector.event import ExecEvent
from collector.k8s import ProcessRecord
from collector.k8s.attribution import PodEnricher
from collector.k8s.cgroups import CgroupRef
from collector.k8s.labels import DEFAULT_LABELS
from collector.k8s.pods import PodEntry, Snapshot, pod_entries
from collector.k8s.scan import CgroupIndex
from collector.k8s.selector import EVERYTHING, Selector, parse_selector
from collector.k8s.workload import Workload
from tests.support.kubelet import make_pod
from tests.support.records import event

NODE = "node-1"
SECOND = 1_000_000_000
U1, U2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
C1, C2, C3 = "a1" * 32, "b2" * 32, "c3" * 32
CODER = {"com.coder.username": "jessie", "com.coder.workspace.name": "main", "com.coder.workspace.id": "w1"}


def pod(
    uid: str, *containers: tuple[str, str], labels: dict[str, str] | None = None, name: str = "ws"
) -> object:
    return make_pod(
        f"{name}-{uid[:4]}",
        "coder",
        uid,
        NODE,
        labels=CODER if labels is None else labels,
        annotations={"com.coder.user.email": "jessie@coder.com"},
        containers=[(cname, f"containerd://{cid}") for cname, cid in containers],
    )


@dataclass
class Source:
    snapshot: Snapshot
    pod_requests: int = 0
    scan_requests: int = 0
    selector: Selector = EVERYTHING

    def request_pods(self) -> None:
        self.pod_requests += 1

    def request_scan(self) -> None:
        self.scan_requests += 1

    def publish(self, *pods: object, index: CgroupIndex | None = None) -> None:
        """What a poll (and a scan, with `index`) answering every request so far publishes."""
        entries: dict[str, PodEntry] = pod_entries(
            pods,  # type: ignore[arg-type]
            NODE,
            DEFAULT_LABELS,
            self.selector,
            self.snapshot.pods,
        )
        self.snapshot = Snapshot(entries, index or self.snapshot.cgroups, self.pod_requests, True)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000 * SECOND

    def __call__(self) -> int:
        return self.now


def in_container(uid: str, cid: str, tag: str, cgroup_id: int = 100) -> ExecEvent:
    return event(
        ["echo", tag],
        cgroup_id=cgroup_id,
        cgroup_name=f"cri-containerd-{cid}.scope".encode(),
        parent_cgroup_name=f"kubepods-burstable-pod{uid.replace('-', '_')}.slice".encode(),
        ancestor_ids=(90, 80, 1, 0, 0, 0, 0, 0),
    )


def make(source: Source, clock: Clock | None = None, **kwargs: int) -> PodEnricher:
    return PodEnricher(source, NODE, clock=clock or Clock(), **kwargs)


def workloads(records: list[ProcessRecord]) -> list[Workload | None]:
    return [r.workload for r in records]


def tags(attributed: list[ProcessRecord]) -> list[str]:
    return [cast(ExecEvent, r.event).argv[1] for r in attributed]


def test_a_known_container_resolves_at_once_with_labels_and_fields() -> None:
    source = Source(Snapshot())
    source.publish(pod(U1, ("dev", C1)))
    enricher = make(source)
    [workload] = workloads(enricher.enrich([in_container(U1, C1, "t1")]))
    assert workload is not None
    assert (workload.node, workload.namespace, workload.pod, workload.pod_uid) == (
        NODE,
        "coder",
        "ws-1111",
        U1,
    )
    assert (workload.container, workload.container_id, workload.nested_container_id) == ("dev", C1, None)
    assert workload.labels == {
        "username": "jessie",
        "workspace_name": "main",
        "workspace_id": "w1",
        "user_email": "jessie@coder.com",
    }
    assert workload.pod_labels == CODER
    assert workload.resolved
    assert source.pod_requests == 0
    assert enricher.counters.resolved == 1


def test_one_workload_instance_per_container_across_unchanged_snapshots() -> None:
    source = Source(Snapshot())
    source.publish(pod(U1, ("dev", C1), ("side", C2)))
    enricher = make(source)
    first = enricher.enrich([in_container(U1, C1, "a"), in_container(U1, C1, "b", cgroup_id=101)])
    source.publish(pod(U1, ("dev", C1), ("side", C2)))  # a poll where nothing changed
    second = enricher.enrich([in_container(U1, C1, "c")])
    other = enricher.enrich([in_container(U1, C2, "d", cgroup_id=102)])
    assert first[0].workload is first[1].workload is second[0].workload
    assert other[0].workload is not first[0].workload
    assert other[0].workload is not None and other[0].workload.container == "side"
    source.publish(pod(U1, ("dev", C1), ("side", C2), labels={**CODER, "com.coder.username": "zac"}))
    [relabelled] = workloads(enricher.enrich([in_container(U1, C1, "e")]))
    assert relabelled is not None and relabelled.labels["username"] == "zac"


def test_an_unknown_pod_waits_then_resolves_in_order_when_it_appears() -> None:
    source = Source(Snapshot())
    source.publish(pod(U2, ("other", C3)))
    clock = Clock()
    enricher = make(source, clock)
    assert enricher.enrich([in_container(U1, C1, "1"), in_container(U1, C1, "2")]) == []
    assert enricher.pending == 2
    assert source.pod_requests == 1  # asked once, not once per event
    # A known pod's events are not held up by the unknown one's.
    assert tags(enricher.enrich([in_container(U2, C3, "other", cgroup_id=300)])) == ["other"]
    clock.now += SECOND
    assert enricher.due(clock.now) == []
    source.publish(pod(U2, ("other", C3)), pod(U1, ("dev", C1)))
    out = enricher.enrich([in_container(U1, C1, "3")])
    assert tags(out) == ["1", "2", "3"]
    assert all(w is not None and w.resolved and w.container == "dev" for w in (r.workload for r in out))
    assert enricher.pending == 0
    assert (enricher.counters.held, enricher.counters.resolved, enricher.counters.unresolved) == (2, 4, 0)


def test_a_pod_still_unknown_after_a_poll_is_asked_for_again() -> None:
    source = Source(Snapshot())
    enricher = make(source)
    enricher.enrich([in_container(U1, C1, "1")])
    assert source.pod_requests == 1
    source.publish()  # answered, still not listed
    assert enricher.due(0) == []
    assert source.pod_requests == 2


def test_held_events_go_out_unresolved_at_the_timeout_and_never_later() -> None:
    source = Source(Snapshot())
    clock = Clock()
    enricher = make(source, clock, pending_timeout_ns=2 * SECOND)
    enricher.enrich([in_container(U1, C1, "1")])
    clock.now += SECOND
    enricher.enrich([in_container(U1, C1, "2")])
    assert enricher.due(clock.now + SECOND - 1) == []
    out = enricher.due(clock.now + SECOND)
    assert tags(out) == ["1"]
    workload = out[0].workload
    assert workload is not None and not workload.resolved
    assert (workload.pod_uid, workload.container_id, workload.pod, workload.labels) == (U1, C1, "", {})
    assert tags(enricher.due(clock.now + 2 * SECOND)) == ["2"]
    assert enricher.pending == 0
    assert enricher.due(clock.now + 10 * SECOND) == []
    assert enricher.counters.unresolved == 2


def test_overflow_lets_the_oldest_out_unresolved_at_once_and_loses_none() -> None:
    source = Source(Snapshot())
    enricher = make(source, pending_max=3)
    out = enricher.enrich([in_container(U1, C1, str(i)) for i in range(5)])
    assert tags(out) == ["0", "1"]
    assert all(w is not None and not w.resolved for w in (r.workload for r in out))
    assert enricher.pending == 3
    assert enricher.counters.pending_overflow == 2
    out += enricher.enrich([in_container(U1, C1, "5")])
    assert tags(out) == ["0", "1", "2"]
    out += enricher.due(0, final=True)
    assert tags(out) == [str(i) for i in range(6)]
    assert enricher.pending == 0
    assert enricher.counters.pending_overflow == 3


def test_final_releases_everything_resolved_where_possible() -> None:
    source = Source(Snapshot())
    enricher = make(source)
    enricher.enrich([in_container(U1, C1, "a"), in_container(U2, C3, "b", cgroup_id=300)])
    source.publish(pod(U2, ("other", C3)))
    out = enricher.due(0, final=True)
    # b resolves as the snapshot arrives; a goes out at the final call. Order holds per cgroup,
    # not across pods.
    assert tags(out) == ["b", "a"]
    assert [w.resolved if w else None for w in (r.workload for r in out)] == [True, False]
    assert enricher.pending == 0


def test_a_pod_outside_the_selector_is_dropped_and_counted_even_after_waiting() -> None:
    source = Source(Snapshot(), selector=parse_selector("com.coder.workspace.id"))
    source.publish(pod(U1, ("dev", C1)), pod(U2, ("infra", C2), labels={"app": "infra"}))
    enricher = make(source)
    out = enricher.enrich([in_container(U1, C1, "in"), in_container(U2, C2, "out", cgroup_id=200)] * 2)
    assert tags(out) == ["in", "in"]
    assert enricher.counters.not_selected == 2
    # a pod that turns out, once listed, to be outside the selector
    u3 = "33333333-3333-4333-8333-333333333333"
    enricher.enrich([in_container(u3, C3, "late", cgroup_id=300)])
    source.publish(pod(U1, ("dev", C1)), pod(u3, ("x", C3), labels={}))
    assert enricher.due(0) == []
    assert enricher.counters.not_selected == 3
    assert enricher.pending == 0


def test_processes_above_pods_are_dropped_and_counted() -> None:
    source = Source(Snapshot())
    enricher = make(source, roots=["execlog-test-1234/kubepods"])  # type: ignore[arg-type]
    events = [
        event(cgroup_id=5, cgroup_name=b"kubepods-burstable.slice", parent_cgroup_name=b"kubepods.slice"),
        event(cgroup_id=6, cgroup_name=b"kubepods", parent_cgroup_name=b"execlog-test-1234"),
        event(cgroup_id=7, cgroup_name=b"burstable", parent_cgroup_name=b"kubepods"),
    ]
    assert enricher.enrich(events) == []
    assert enricher.counters.outside_pods == 3
    assert enricher.pending == 0


def test_a_container_the_kubelet_has_not_reported_waits_then_gets_the_pods_labels() -> None:
    source = Source(Snapshot())
    source.publish(pod(U1, ("dev", C1)))
    clock = Clock()
    enricher = make(source, clock)
    pause = in_container(U1, C2, "pause", cgroup_id=150)  # the sandbox is never in the statuses
    assert enricher.enrich([pause]) == []
    assert source.pod_requests == 1
    [workload] = workloads(enricher.due(clock.now + 2 * SECOND))
    assert workload is not None and workload.resolved
    assert (workload.pod, workload.container, workload.container_id) == ("ws-1111", "", C2)
    assert workload.labels["username"] == "jessie"
    # that container's later execs need not wait again, and share the instance
    [again] = workloads(enricher.enrich([in_container(U1, C2, "pause2", cgroup_id=150)]))
    assert again is workload


def nested_event(tag: str, cgroup_id: int = 500, ancestors: tuple[int, ...] = (499, 100)) -> ExecEvent:
    return event(
        ["echo", tag],
        cgroup_id=cgroup_id,
        cgroup_name=b"d4" * 32,
        parent_cgroup_name=b"docker",
        ancestor_ids=(*ancestors, 90, 80, 1) + (0,) * (5 - len(ancestors)),
    )


def test_a_nested_container_of_a_seen_container_resolves_at_once() -> None:
    source = Source(Snapshot())
    source.publish(pod(U1, ("dev", C1)))
    enricher = make(source)
    outer = enricher.enrich([in_container(U1, C1, "outer", cgroup_id=100)])
    [nested] = workloads(enricher.enrich([nested_event("inner")]))
    assert nested is not None and nested.nested_container_id == "d4" * 32
    assert (nested.container, nested.container_id, nested.pod) == ("dev", C1, "ws-1111")
    assert outer[0].workload is not None and outer[0].workload.nested_container_id is None
    assert source.scan_requests == 0


def test_a_nested_container_waits_for_a_scan_of_the_kubepods_tree() -> None:
    source = Source(Snapshot())
    source.publish(pod(U1, ("dev", C1)))
    enricher = make(source)
    assert enricher.enrich([nested_event("inner")]) == []
    assert source.scan_requests == 1
    source.publish(pod(U1, ("dev", C1)), index=CgroupIndex({100: CgroupRef(U1, C1)}, answers=1))
    [nested] = workloads(enricher.due(0))
    assert nested is not None and nested.resolved and nested.nested_container_id == "d4" * 32


def test_a_cgroup_a_scan_cannot_place_goes_out_unresolved_without_waiting_longer() -> None:
    source = Source(Snapshot())
    enricher = make(source)
    assert enricher.enrich([nested_event("lost", ancestors=(499, 498))]) == []
    source.publish(index=CgroupIndex({}, answers=source.scan_requests))
    [workload] = workloads(enricher.due(0))
    assert workload is not None and not workload.resolved
    assert (workload.pod_uid, workload.container_id) == ("", "")
    assert enricher.counters.unresolved == 1


def test_order_within_a_cgroup_is_kept_when_a_later_event_could_resolve_first() -> None:
    source = Source(Snapshot())
    source.publish(pod(U1, ("dev", C1)))
    enricher = make(source)
    assert enricher.enrich([nested_event("first")]) == []  # waits for a scan
    # the container's own exec teaches the enricher the container's cgroup id...
    out = enricher.enrich([in_container(U1, C1, "outer", cgroup_id=100), nested_event("second")])
    # ...and the held nested exec goes out before the later one of the same cgroup
    assert tags(out) == ["outer", "first", "second"]
