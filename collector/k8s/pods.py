"""The pods of this node, as the enricher reads them: one immutable snapshot at a time.

The watcher builds a new :class:`Snapshot` after each kubelet poll or cgroup scan and swaps it in
with one reference assignment; the ring reader only ever reads the snapshot it holds. A pod whose
metadata did not change keeps its :class:`PodEntry`, and so its :class:`Workload` instances, from
one snapshot to the next: the reader's caches stay valid and each container has one Workload.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from collector.k8s.labels import LabelRule, map_labels
from collector.k8s.scan import CgroupIndex
from collector.k8s.selector import Selector
from collector.k8s.workload import Workload

if TYPE_CHECKING:
    from kubernetes.client import V1ContainerStatus, V1Pod

__all__ = ["PodEntry", "Snapshot", "bare_container_id", "pod_entries"]


@dataclass(frozen=True, slots=True)
class PodEntry:
    uid: str
    namespace: str
    name: str
    selected: bool  # by --pod-selector
    # Container id as in its cgroup name (no runtime:// scheme) -> its one Workload.
    containers: Mapping[str, Workload]
    # For a process of the pod outside its known containers: no container name, pod-level data.
    pod_workload: Workload
    fingerprint: tuple[object, ...] = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Snapshot:
    pods: Mapping[str, PodEntry] = field(default_factory=dict)  # by pod uid
    cgroups: CgroupIndex = field(default_factory=CgroupIndex)
    # The count of pod requests (PodWatcher.request_pods) that the last poll answered.
    pods_answer: int = 0
    polled: bool = False  # the kubelet has answered at least once


def bare_container_id(status_id: str | None) -> str | None:
    """``containerd://<id>`` (also ``cri-o://``, ``docker://``) -> ``<id>``."""
    if not status_id:
        return None
    return status_id.partition("://")[2] or status_id


def _statuses(pod: V1Pod) -> Iterable[V1ContainerStatus]:
    status = pod.status
    if status is None:
        return ()
    return (
        *(status.init_container_statuses or ()),
        *(status.container_statuses or ()),
        *(status.ephemeral_container_statuses or ()),
    )


def pod_entries(
    pods: Iterable[V1Pod],
    node: str,
    rules: tuple[LabelRule, ...],
    selector: Selector,
    previous: Mapping[str, PodEntry],
) -> dict[str, PodEntry]:
    """Entries for the pods of one PodList, reusing the previous entry of each unchanged pod."""
    entries: dict[str, PodEntry] = {}
    for pod in pods:
        meta = pod.metadata
        if meta is None or not meta.uid:
            continue  # the kubelet never lists such a pod; nothing could be attributed to it
        labels = dict(meta.labels or {})
        output = map_labels(rules, labels, meta.annotations or {})
        containers = tuple(
            sorted(
                (cid, s.name)
                for s in _statuses(pod)
                if (cid := bare_container_id(s.container_id)) is not None
            )
        )
        namespace, name = meta.namespace or "", meta.name or ""
        selected = selector.matches(labels)
        fingerprint = (
            namespace,
            name,
            selected,
            tuple(sorted(labels.items())),
            tuple(output.items()),
            containers,
        )
        old = previous.get(meta.uid)
        if old is not None and old.fingerprint == fingerprint:
            entries[meta.uid] = old
            continue
        base = Workload(
            node=node,
            namespace=namespace,
            pod=name,
            pod_uid=meta.uid,
            container="",
            container_id="",
            labels=output,
            pod_labels=labels,
        )
        entries[meta.uid] = PodEntry(
            uid=meta.uid,
            namespace=namespace,
            name=name,
            selected=selected,
            containers={
                cid: Workload(
                    node=node,
                    namespace=namespace,
                    pod=name,
                    pod_uid=meta.uid,
                    container=cname,
                    container_id=cid,
                    labels=output,
                    pod_labels=labels,
                )
                for cid, cname in containers
            },
            pod_workload=base,
            fingerprint=fingerprint,
        )
    return entries
