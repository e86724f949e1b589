"""The Kubernetes room: which pod and container an exec belongs to, and the pod's labels."""

from collector.k8s.enricher import Attributed, Enricher, Standalone
from collector.k8s.selector import EVERYTHING, Requirement, Selector, SelectorError, parse_selector
from collector.k8s.workload import PerWorkload, Workload

__all__ = [
    "EVERYTHING",
    "Attributed",
    "Enricher",
    "PerWorkload",
    "Requirement",
    "Selector",
    "SelectorError",
    "Standalone",
    "Workload",
    "parse_selector",
]
