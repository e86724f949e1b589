"""The engine: the rooms wired into a running collector (the ring reader's loop, the pipeline,
Kubernetes mode, the outlets and metrics), and the node check. `cli/` drives it."""

from collector.engine.check import HOOK_NAMES, check_node
from collector.engine.collector import Collector, FatalError, load_program, program_options
from collector.engine.kubernetes import KubernetesMode, SetupError, kubernetes_mode
from collector.engine.pipeline import Pipeline

__all__ = [
    "HOOK_NAMES",
    "Collector",
    "FatalError",
    "KubernetesMode",
    "Pipeline",
    "SetupError",
    "check_node",
    "kubernetes_mode",
    "load_program",
    "program_options",
]
