"""The frozen configuration: one record per room, and the Config that holds them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from collector.k8s.labels import DEFAULT_LABELS, LabelRule
from collector.k8s.selector import Selector
from collector.listen import ListenAddress
from collector.policy.settings import PolicyConfig

__all__ = [
    "SECTIONS",
    "CaptureConfig",
    "Config",
    "GrpcConfig",
    "KubernetesConfig",
    "MetricsConfig",
    "OutputConfig",
    "PolicyConfig",
]


@dataclass(frozen=True, slots=True)
class CaptureConfig:
    bpf_object: Path
    btf_path: Path | None
    argv_cap: int
    ring_size: int
    drain_interval_ms: int
    exec_hook: str
    comm_hook: str
    cgroup_hierarchy: str
    cgroup_root: Path
    proc_root: Path


@dataclass(frozen=True, slots=True)
class OutputConfig:
    json_queue: int
    node_name: str
    log_level: str


@dataclass(frozen=True, slots=True)
class KubernetesConfig:
    kubelet_url: str | None  # None: standalone mode
    kubelet_token_file: Path
    kubelet_ca_file: Path
    kubelet_insecure_skip_tls_verify: bool
    kubelet_poll_interval_s: float
    pod_selector: Selector
    pending_timeout_ms: int
    pending_max: int
    deleted_pod_grace_s: float
    kubepods_roots: tuple[str, ...]
    # fields.labels: output name <- pod label or annotation; YAML only (key `labels`).
    labels: tuple[LabelRule, ...] = DEFAULT_LABELS

    @property
    def enabled(self) -> bool:
        return self.kubelet_url is not None


@dataclass(frozen=True, slots=True)
class GrpcConfig:
    grpc_listen: ListenAddress | None
    grpc_tls_cert: Path | None
    grpc_tls_key: Path | None
    grpc_client_ca: Path | None
    grpc_insecure: bool
    grpc_replay: int
    grpc_subscriber_queue: int
    grpc_max_subscribers: int
    grpc_health_listen: ListenAddress | None = None


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    metrics_listen: ListenAddress | None


@dataclass(frozen=True, slots=True)
class Config:
    capture: CaptureConfig
    output: OutputConfig
    kubernetes: KubernetesConfig
    grpc: GrpcConfig
    metrics: MetricsConfig
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    config_file: Path | None = None
    # Where each value came from (key -> "flag --x", "env EXECLOG_X", "file f.yaml", "default").
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)


SECTIONS: dict[str, type] = {
    "capture": CaptureConfig,
    "output": OutputConfig,
    "kubernetes": KubernetesConfig,
    "grpc": GrpcConfig,
    "metrics": MetricsConfig,
    "policy": PolicyConfig,
}
