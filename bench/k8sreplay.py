"""Recorded ring records moved into pods, and a pod source that knows those pods, for replay.

A record captured from the kernel is rewritten in place into the record the same exec would have
made in a workspace pod's container: its cgroup id, its first ancestor (the pod's cgroup) and the
two cgroup names the kernel copies (the container id below `pod<uid>`, the cgroupfs driver's
layout). Everything else, argv included, stays as the kernel wrote it. `StaticPods` is the
enricher's PodSource with snapshots built by the collector's own `pod_entries` from pod objects
as the kubelet lists them, so labels and Workloads are made exactly as in `execlog run`.
"""

from __future__ import annotations

import secrets
import struct
import uuid
from dataclasses import dataclass

from collector.event.kinds.exec import EXEC
from collector.k8s.labels import DEFAULT_LABELS
from collector.k8s.pods import Snapshot, pod_entries
from collector.k8s.selector import EVERYTHING
from tests.support.kubelet import make_pod

__all__ = ["BenchPodSpec", "StaticPods", "as_pod_record", "make_pods"]

NODE = "bench-node"
_IDS = struct.Struct("<QQ")  # cgroup_id, ancestor_ids[0]
_IDS_AT = EXEC.offset("cgroup_id")
_NAMES = EXEC.span("cgroup_name", "parent_cgroup_name")


@dataclass(frozen=True, slots=True)
class BenchPodSpec:
    uid: str
    name: str  # a pod keeps its name (and so its Workloads) for its whole life
    container_id: str
    cgroup_id: int  # the container's cgroup
    pod_cgroup_id: int


def make_pods(count: int, first_cgroup_id: int = 1_000_000) -> list[BenchPodSpec]:
    """`count` pods with one container each, and cgroup ids no other pod of this run uses."""
    return [
        BenchPodSpec(
            uid, f"ws-{uid[:8]}", secrets.token_hex(32), first_cgroup_id + 2 * i + 1, first_cgroup_id + 2 * i
        )
        for i, uid in enumerate(str(uuid.uuid4()) for _ in range(count))
    ]


def as_pod_record(raw: bytes, pod: BenchPodSpec) -> bytes:
    """The record `raw` as if its exec had run in `pod`'s container."""
    record = bytearray(raw)
    _IDS.pack_into(record, _IDS_AT, pod.cgroup_id, pod.pod_cgroup_id)
    name_len = (_NAMES.stop - _NAMES.start) // 2
    names = pod.container_id.encode().ljust(name_len, b"\0") + f"pod{pod.uid}".encode().ljust(name_len, b"\0")
    record[_NAMES] = names
    return bytes(record)


class StaticPods:
    """A PodSource whose pods change only when told (`set_pods`); it never polls anything."""

    def __init__(self, pods: list[BenchPodSpec] = ()) -> None:  # type: ignore[assignment]
        self.snapshot = Snapshot(polled=True)
        self.pod_requests = 0
        self.scan_requests = 0
        self.set_pods(list(pods))

    def set_pods(self, pods: list[BenchPodSpec]) -> None:
        models = [
            make_pod(
                p.name,
                "coder-workspaces",
                p.uid,
                NODE,
                labels={
                    "com.coder.username": p.name,
                    "com.coder.workspace.name": "main",
                    "com.coder.workspace.id": p.uid,
                    "com.coder.user.id": p.uid,
                    "com.coder.organization.id": "default",
                },
                annotations={"com.coder.user.email": f"{p.name}@coder.com"},
                containers=[("dev", f"containerd://{p.container_id}")],
            )
            for p in pods
        ]
        entries = pod_entries(models, NODE, DEFAULT_LABELS, EVERYTHING, self.snapshot.pods)
        self.snapshot = Snapshot(pods=entries, polled=True)

    def request_pods(self) -> None:
        self.pod_requests += 1

    def request_scan(self) -> None:
        self.scan_requests += 1
