"""Which pod and container a cgroup belongs to, from the cgroup names the kernel record carries.

The kubelet names cgroups the same way in cgroup v1 and v2; only the driver changes the names:

    cgroupfs  /kubepods[/<qos>]/pod<uid>/<runtime id>
    systemd   /kubepods.slice[/kubepods-<qos>.slice]/kubepods[-<qos>]-pod<uid_>.slice/<runtime>-<id>.scope

where <qos> is burstable or besteffort (guaranteed pods sit right below the root), <uid_> is the
pod uid with "-" escaped to "_" (systemd uses "-" for nesting), and <runtime> is
``cri-containerd``, ``crio`` or ``docker``. With cgroupfs, CRI-O also prefixes the id (``crio-``).
The pod uid is a UUID, or a 32-digit hash for static pods.

A record carries the names of the task's cgroup and of its parent, so a container's processes are
attributed from the names alone. A cgroup *below* a container (docker in a workspace:
``<container>/docker/<id>``) does not name its pod; :func:`attribute_below` finds the container
among the record's ancestor ids instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "RUNTIME_PREFIXES",
    "CgroupRef",
    "attribute_below",
    "attribute_names",
    "container_id_of",
    "is_structural",
    "pod_uid_of",
]

RUNTIME_PREFIXES: Final = ("cri-containerd-", "crio-", "docker-")

_HEX = "[0-9a-f]"
_CGROUPFS_POD: Final = re.compile(rf"pod({_HEX}{{8}}(?:-{_HEX}{{4}}){{3}}-{_HEX}{{12}}|{_HEX}{{32}})")
_SYSTEMD_POD: Final = re.compile(
    rf"kubepods(?:-burstable|-besteffort)?-pod({_HEX}{{8}}(?:_{_HEX}{{4}}){{3}}_{_HEX}{{12}}|{_HEX}{{32}})\.slice"
)
# Container ids are 64 hex digits for every CRI runtime; shorter forms (docker's 12) are accepted
# for ids that tools abbreviate, never fewer than 12.
_CONTAINER_ID: Final = re.compile(r"[0-9a-f]{12,64}")
# The cgroups above pods: roots and QoS levels. A process there is the kubelet's, not a pod's.
_STRUCTURAL: Final = frozenset(
    {
        "kubepods",
        "burstable",
        "besteffort",
        "kubepods.slice",
        "kubepods-burstable.slice",
        "kubepods-besteffort.slice",
    }
)


@dataclass(frozen=True, slots=True)
class CgroupRef:
    """Where a cgroup sits among pods. Hashable: it keys caches."""

    pod_uid: str
    # The container's id as in its cgroup name; "" for the pod's own cgroup or an unnamed child.
    container_id: str = ""
    # Set when the cgroup is a container nested below the pod's container.
    nested_id: str | None = None


def pod_uid_of(name: str) -> str | None:
    """The pod uid in a pod cgroup's name (either driver), with its dashes; else None."""
    m = _CGROUPFS_POD.fullmatch(name)
    if m:
        return m.group(1)
    m = _SYSTEMD_POD.fullmatch(name)
    return m.group(1).replace("_", "-") if m else None


def container_id_of(name: str) -> str | None:
    """The container id in a container cgroup's name: ``<id>``, ``<runtime>-<id>`` or
    ``<runtime>-<id>.scope``; None when the name is not a container's (``crio-conmon-<id>``,
    ``init.scope``, ``docker``)."""
    stem = name.removesuffix(".scope")
    for prefix in RUNTIME_PREFIXES:
        if stem.startswith(prefix):
            stem = stem[len(prefix) :]
            break
    return stem if _CONTAINER_ID.fullmatch(stem) else None


def is_structural(name: str) -> bool:
    """True for the kubepods root and QoS cgroups, which hold no pod's processes."""
    return name in _STRUCTURAL


def attribute_names(name: str, parent: str) -> CgroupRef | None:
    """Attribute a cgroup from its own and its parent's name; None when the names do not say.

    A child of a pod cgroup whose name is not a container id (CRI-O's ``crio-conmon-<id>``) is
    attributed to the pod with no container."""
    uid = pod_uid_of(parent)
    if uid is not None:
        return CgroupRef(uid, container_id_of(name) or "")
    uid = pod_uid_of(name)
    if uid is not None:
        return CgroupRef(uid)
    return None


def attribute_below(
    name: str, parent: str, ancestors: Sequence[int], known: Callable[[int], CgroupRef | None]
) -> CgroupRef | None:
    """Attribute a cgroup below a pod's cgroup through its ancestor ids (parent first).

    `known` maps a cgroup id to the pod or container cgroup it is, for the ids user space has seen
    or scanned. The nearest known ancestor decides: below a container, the cgroup is a nested
    container when its name or its parent's is a container id (the innermost one wins); a plain
    sub-cgroup a workload made for itself (``init.scope``, ``foo``) stays its container's.
    """
    for depth, ancestor in enumerate(ancestors):
        ref = known(ancestor)
        if ref is None:
            continue
        return _nested(ref, name, parent, depth) if ref.container_id else ref
    return None


def _nested(outer: CgroupRef, name: str, parent: str, depth: int) -> CgroupRef:
    # At depth 0 the parent is the known cgroup itself, so only the leaf's name can be new.
    candidates = (name,) if depth == 0 else (name, parent)
    for candidate in candidates:
        nested = container_id_of(candidate)
        if nested is not None and nested not in (outer.container_id, outer.nested_id):
            return CgroupRef(outer.pod_uid, outer.container_id, nested)
    return outer
