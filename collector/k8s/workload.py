"""Where an exec ran, in Kubernetes terms."""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["PerWorkload", "Workload"]

V = TypeVar("V")


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Workload:
    """The pod and container of an exec. One instance per container, shared by its events."""

    node: str
    namespace: str
    pod: str
    pod_uid: str
    container: str
    container_id: str
    # The id of a container nested below the pod's container (docker in a workspace), if any.
    nested_container_id: str | None = None
    # The output labels (fields.labels), already mapped from the pod's labels and annotations.
    labels: Mapping[str, str] = field(default_factory=dict)
    # The pod's own Kubernetes labels, for label selectors (subscriber filters, exclusions).
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    # False when the pod was still unknown to the kubelet when the event had to go out.
    resolved: bool = True


class PerWorkload(Generic[V]):
    """A value worked out once per Workload instance (its encoded labels, say), which goes when
    the Workload does: caches of outlets then follow the pods on the node instead of growing
    with every pod that ever came and went. Used from one thread."""

    def __init__(self, limit: int = 4096) -> None:
        self._limit = limit
        self._entries: dict[int, tuple[weakref.ref[Workload], V]] = {}

    def get(self, workload: Workload) -> V | None:
        entry = self._entries.get(id(workload))
        if entry is not None and entry[0]() is workload:
            return entry[1]
        return None

    def put(self, workload: Workload, value: V) -> V:
        entries, key = self._entries, id(workload)
        if len(entries) >= self._limit:
            entries.clear()
        # The callback runs when the Workload dies, before its id can be reused.
        entries[key] = (weakref.ref(workload, lambda _ref: entries.pop(key, None)), value)
        return value

    def __len__(self) -> int:
        return len(self._entries)
