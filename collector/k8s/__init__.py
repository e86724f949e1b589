"""The Kubernetes room: which pod and container an exec belongs to, and the pod's labels."""

from collector.k8s.workload import Workload

__all__ = ["Workload"]
