"""Where an exec ran, in Kubernetes terms."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Workload"]


@dataclass(frozen=True, slots=True)
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
