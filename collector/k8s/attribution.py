"""The Kubernetes enricher: each event's cgroup becomes its pod and container, or waits a little.

On the ring reader's thread, attributing an event is a dictionary lookup: a cache maps the cgroup
id to its result (a Workload, or "not logged") for the snapshot in use, and a result is worked
out once per cgroup and snapshot. Nothing here does I/O or waits; what needs the kubelet or the
file system is asked of the watcher (`request_pods`, `request_scan`), and the event is held.

Held events wait in a bounded pending queue, in arrival order. They go out as soon as a snapshot
resolves them, or when they are `pending_timeout` old, or when the queue is over `pending_max`
(oldest first, counted as overflow): attributed as far as known, and marked unresolved when their
pod is still unknown. A held event is never dropped. Events of pods outside the selector and of
cgroups above pods (the kubelet's own) are dropped, and counted.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Final, Protocol

from collector.event import ProcessEvent
from collector.k8s.cgroups import CgroupRef, attribute_below, attribute_names, is_structural
from collector.k8s.pods import PodEntry, Snapshot
from collector.k8s.record import ProcessRecord
from collector.k8s.workload import Workload

__all__ = ["EnricherCounters", "PodEnricher", "PodSource"]

_CACHE_MAX: Final = 8192  # cgroups remembered (a node has hundreds); past this the caches start again


class PodSource(Protocol):
    """What the enricher needs of the watcher."""

    @property
    def snapshot(self) -> Snapshot: ...

    @property
    def pod_requests(self) -> int: ...

    @property
    def scan_requests(self) -> int: ...

    def request_pods(self) -> None: ...

    def request_scan(self) -> None: ...


@dataclass(slots=True)
class EnricherCounters:
    resolved: int = 0  # events that went out with their pod
    unresolved: int = 0  # events that went out with resolved: false
    held: int = 0  # events that had to wait for the kubelet or a cgroup scan
    pending_overflow: int = 0  # held events let out early because the queue was full
    not_selected: int = 0  # dropped: their pod is outside --pod-selector
    outside_pods: int = 0  # dropped: processes of cgroups above pods (kubepods, QoS levels)


class _Outcome:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NOT_SELECTED: Final = _Outcome("not_selected")
OUTSIDE_PODS: Final = _Outcome("outside_pods")
WAIT_POD: Final = _Outcome("wait_pod")  # pod or container not in the snapshot yet
WAIT_SCAN: Final = _Outcome("wait_scan")  # cgroup below a container not in the index yet

_Result = Workload | _Outcome


@dataclass(slots=True)
class _Held:
    deadline_ns: int
    event: ProcessEvent
    scan_request: int  # the scan request made for it; 0 when it waits for the kubelet


class PodEnricher:
    def __init__(
        self,
        source: PodSource,
        node: str,
        *,
        pending_timeout_ns: int = 2_000_000_000,
        pending_max: int = 10_000,
        roots: Sequence[str] = (),
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        """`roots`: the kubepods roots, whose own processes are not a pod's, as the standard
        roots and QoS levels are not."""
        self._source = source
        self._node = node
        self._timeout = pending_timeout_ns
        self._max = pending_max
        self._clock = clock
        self._roots = frozenset(root.rstrip("/").rpartition("/")[2] for root in roots)
        self.counters = EnricherCounters()
        self._snap = source.snapshot
        self._results: dict[int, tuple[Snapshot, _Result]] = {}  # cgroup id -> result
        self._refs: dict[int, CgroupRef] = {}  # cgroup id -> where it sits; snapshot-independent
        self._workloads: dict[CgroupRef, tuple[PodEntry, Workload]] = {}
        self._unresolved: dict[CgroupRef | None, Workload] = {}
        self._pending: deque[_Held] = deque()
        self._pending_ids: Counter[int] = Counter()
        self._asked_pods = -1  # the request number of our last request_pods()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def enrich(self, events: Sequence[ProcessEvent]) -> list[ProcessRecord]:
        out: list[ProcessRecord] = []
        snap = self._source.snapshot
        if snap is not self._snap:
            self._new_snapshot(snap, out)
        # The hot path: one dict lookup and an identity check per event, locals for the rest.
        results, held_ids, append = self._results, self._pending_ids, out.append
        counters = self.counters
        resolved = now = 0
        for ev in events:
            hit = results.get(ev.cgroup_id)
            result = hit[1] if hit is not None and hit[0] is snap else self._attribute(ev, snap)
            if type(result) is Workload:
                if held_ids and ev.cgroup_id in held_ids:
                    # Its cgroup's earlier events are held; they go first, to keep order.
                    self._retry(snap, out)
                    if ev.cgroup_id in held_ids:
                        now = now or self._clock()
                        self._hold(ev, now, 0)
                        continue
                resolved += 1
                append(ProcessRecord(ev, result))
            elif result is WAIT_POD or result is WAIT_SCAN:
                now = now or self._clock()
                self._hold(ev, now, self._ask(result, snap))
            elif result is NOT_SELECTED:
                counters.not_selected += 1
            else:
                counters.outside_pods += 1
        counters.resolved += resolved
        while len(self._pending) > self._max:
            counters.pending_overflow += 1
            self._settle(self._pending.popleft(), snap, out)
        return out

    def due(self, now_ns: int, final: bool = False) -> list[ProcessRecord]:
        out: list[ProcessRecord] = []
        snap = self._source.snapshot
        if snap is not self._snap:
            self._new_snapshot(snap, out)
        pending = self._pending
        while pending and (final or pending[0].deadline_ns <= now_ns):
            self._settle(pending.popleft(), snap, out)
        return out

    # -- attribution ----------------------------------------------------------------------------

    def _attribute(self, ev: ProcessEvent, snap: Snapshot) -> _Result:
        """Work out one cgroup's result for this snapshot; cached unless it must wait."""
        ref = self._ref(ev, snap)
        if isinstance(ref, _Outcome):
            if ref is OUTSIDE_PODS:
                self._remember(ev.cgroup_id, snap, ref)
            return ref
        pod = snap.pods.get(ref.pod_uid)
        if pod is None:
            return WAIT_POD
        if not pod.selected:
            self._remember(ev.cgroup_id, snap, NOT_SELECTED)
            return NOT_SELECTED
        workload = self._workload(pod, ref)
        if workload is None:
            return WAIT_POD
        self._remember(ev.cgroup_id, snap, workload)
        return workload

    def _ref(self, ev: ProcessEvent, snap: Snapshot) -> CgroupRef | _Outcome:
        ref = self._refs.get(ev.cgroup_id)
        if ref is not None:
            return ref
        ref = attribute_names(ev.cgroup_name, ev.parent_cgroup_name)
        if ref is None:
            if is_structural(ev.cgroup_name) or ev.cgroup_name in self._roots:
                return OUTSIDE_PODS
            index = snap.cgroups.refs
            ref = attribute_below(
                ev.cgroup_name,
                ev.parent_cgroup_name,
                ev.cgroup_ancestors,
                lambda cid: self._refs.get(cid) or index.get(cid),
            )
            if ref is None:
                return WAIT_SCAN
        if len(self._refs) >= _CACHE_MAX:
            self._refs.clear()
        self._refs[ev.cgroup_id] = ref
        return ref

    def _workload(self, pod: PodEntry, ref: CgroupRef) -> Workload | None:
        """The one Workload of this pod entry and cgroup ref; None while its container is unknown."""
        cached = self._workloads.get(ref)
        if cached is not None and cached[0] is pod:
            return cached[1]
        if ref.container_id:
            base = pod.containers.get(ref.container_id)
            if base is None:
                return None
        else:
            base = pod.pod_workload
        workload = base if ref.nested_id is None else replace(base, nested_container_id=ref.nested_id)
        if len(self._workloads) >= _CACHE_MAX:
            self._workloads.clear()
        self._workloads[ref] = (pod, workload)
        return workload

    def _remember(self, cgroup_id: int, snap: Snapshot, result: _Result) -> None:
        if len(self._results) >= _CACHE_MAX:
            self._results.clear()
        self._results[cgroup_id] = (snap, result)

    # -- the pending queue ----------------------------------------------------------------------

    def _ask(self, wait: _Outcome, snap: Snapshot) -> int:
        """Ask the watcher for what the event waits for (once per snapshot); 0 or the scan's number."""
        source = self._source
        if wait is WAIT_SCAN:
            if snap.cgroups.answers >= source.scan_requests:
                source.request_scan()
            return source.scan_requests
        if snap.pods_answer >= self._asked_pods:
            source.request_pods()
            self._asked_pods = source.pod_requests
        return 0

    def _hold(self, ev: ProcessEvent, now: int, scan_request: int) -> None:
        self.counters.held += 1
        self._pending.append(_Held(now + self._timeout, ev, scan_request))
        self._pending_ids[ev.cgroup_id] += 1

    def _new_snapshot(self, snap: Snapshot, out: list[ProcessRecord]) -> None:
        self._snap = snap
        # Results of older snapshots can no longer be used, and each one pins its snapshot, with
        # every pod of the node in it: keeping them grew memory with every pod that came and went.
        self._results = {}
        self._workloads = {r: w for r, w in self._workloads.items() if r.pod_uid in snap.pods}
        self._refs = {cid: r for cid, r in self._refs.items() if r.pod_uid in snap.pods}
        if self._pending:
            self._retry(snap, out)

    def _retry(self, snap: Snapshot, out: list[ProcessRecord]) -> None:
        """Let out, in order, every held event that this snapshot settles."""
        kept: deque[_Held] = deque()
        for held in self._pending:
            ev = held.event
            result = self._attribute(ev, snap)
            if result is WAIT_SCAN and snap.cgroups.answers >= held.scan_request:
                self._settle(held, snap, out)  # scanned since, and still unknown: give up
                continue
            if result is WAIT_POD or result is WAIT_SCAN:
                kept.append(held)
                continue
            self._release_id(ev.cgroup_id)
            if isinstance(result, Workload):
                self.counters.resolved += 1
                out.append(ProcessRecord(ev, result))
            elif result is NOT_SELECTED:
                self.counters.not_selected += 1
            else:
                self.counters.outside_pods += 1
        self._pending = kept
        if any(h.scan_request == 0 for h in kept):
            self._ask(WAIT_POD, snap)  # the pod may reach the kubelet any moment: ask again

    def _settle(self, held: _Held, snap: Snapshot, out: list[ProcessRecord]) -> None:
        """A held event must go out now: as well attributed as it can be."""
        ev = held.event
        self._release_id(ev.cgroup_id)
        result = self._attribute(ev, snap)
        if isinstance(result, Workload):
            self.counters.resolved += 1
            out.append(ProcessRecord(ev, result))
            return
        if result is NOT_SELECTED:
            self.counters.not_selected += 1
            return
        if result is OUTSIDE_PODS:
            self.counters.outside_pods += 1
            return
        ref = self._refs.get(ev.cgroup_id)
        pod = snap.pods.get(ref.pod_uid) if ref is not None else None
        if pod is not None and ref is not None:
            # The pod is known, only this container is not (the pause container, or one whose
            # status the kubelet has not reported yet): the pod's labels, the cgroup's id. Kept
            # until the pod's entry changes, so this container's later events need not wait.
            workload = replace(
                pod.pod_workload, container_id=ref.container_id, nested_container_id=ref.nested_id
            )
            self._workloads[ref] = (pod, workload)
            self._remember(ev.cgroup_id, snap, workload)
            self.counters.resolved += 1
        else:
            workload = self._unresolved_workload(ref)
            self.counters.unresolved += 1
        out.append(ProcessRecord(ev, workload))

    def _unresolved_workload(self, ref: CgroupRef | None) -> Workload:
        workload = self._unresolved.get(ref)
        if workload is None:
            if len(self._unresolved) >= _CACHE_MAX:
                self._unresolved.clear()
            workload = Workload(
                node=self._node,
                namespace="",
                pod="",
                pod_uid=ref.pod_uid if ref else "",
                container="",
                container_id=ref.container_id if ref else "",
                nested_container_id=ref.nested_id if ref else None,
                resolved=False,
            )
            self._unresolved[ref] = workload
        return workload

    def _release_id(self, cgroup_id: int) -> None:
        left = self._pending_ids[cgroup_id] - 1
        if left > 0:
            self._pending_ids[cgroup_id] = left
        else:
            del self._pending_ids[cgroup_id]
