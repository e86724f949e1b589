"""The Kubernetes room: which pod and container an exec belongs to, and the pod's labels."""

from collector.k8s.attribution import EnricherCounters
from collector.k8s.enricher import Enricher, Standalone
from collector.k8s.record import ProcessRecord
from collector.k8s.selector import EVERYTHING, Requirement, Selector, SelectorError, parse_selector
from collector.k8s.watcher import WatcherCounters
from collector.k8s.workload import PerWorkload, Workload

__all__ = [
    "EVERYTHING",
    "Enricher",
    "EnricherCounters",
    "PerWorkload",
    "ProcessRecord",
    "Requirement",
    "Selector",
    "SelectorError",
    "Standalone",
    "WatcherCounters",
    "Workload",
    "parse_selector",
]
