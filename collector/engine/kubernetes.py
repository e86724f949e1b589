"""Kubernetes mode, wired from the configuration: kubelet client, pod watcher, enricher, filter."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from collector.bpf.hierarchy import Hierarchy
from collector.config import Config
from collector.k8s.attribution import PodEnricher
from collector.k8s.kubelet import KubeletClient
from collector.k8s.watcher import PodWatcher

__all__ = ["KubernetesMode", "SetupError", "kubernetes_mode"]

log = logging.getLogger("execlog")


class SetupError(ValueError):
    """A Kubernetes setting that cannot work; the message is the one line the user sees."""


@dataclass(slots=True)
class KubernetesMode:
    watcher: PodWatcher
    enricher: PodEnricher


def kubernetes_mode(
    config: Config, hierarchy: Hierarchy, set_filter: Callable[[frozenset[int]], None]
) -> KubernetesMode:
    """Check the settings, set the kernel filter to the kubepods roots, and build (not start) it."""
    k8s = config.kubernetes
    assert k8s.kubelet_url is not None
    if not k8s.kubelet_token_file.is_file():
        raise SetupError(
            f"kubelet token file {k8s.kubelet_token_file} does not exist; set --kubelet-token-file "
            "(in a pod it is the service account's token)"
        )
    ca_file = None if k8s.kubelet_insecure_skip_tls_verify else k8s.kubelet_ca_file
    if ca_file is None:
        log.warning(
            "TLS verification of the kubelet is OFF (--kubelet-insecure-skip-tls-verify): whoever "
            "can intercept traffic to %s can read the service account token and forge pod lists",
            k8s.kubelet_url,
        )
    elif not ca_file.is_file():
        raise SetupError(
            f"kubelet CA file {ca_file} does not exist; set --kubelet-ca-file, or "
            "--kubelet-insecure-skip-tls-verify for a kubelet with a self-signed certificate"
        )
    try:
        client = KubeletClient(k8s.kubelet_url, k8s.kubelet_token_file, ca_file)
    except ValueError as exc:
        raise SetupError(str(exc)) from exc
    watcher = PodWatcher(
        client,
        node=config.output.node_name,
        rules=k8s.labels,
        selector=k8s.pod_selector,
        cgroup_mount=hierarchy.mount,
        roots=k8s.kubepods_roots,
        poll_interval=k8s.kubelet_poll_interval_s,
        grace=k8s.deleted_pod_grace_s,
        on_roots=set_filter,
    )
    roots = watcher.check_roots()
    log.info(
        "Kubernetes mode: kubelet %s, pods %s, only execs below %s (%d present) reach user space",
        k8s.kubelet_url,
        f"matching {k8s.pod_selector}" if not k8s.pod_selector.empty else "all",
        ", ".join(str(hierarchy.mount / r) for r in k8s.kubepods_roots),
        len(roots),
    )
    enricher = PodEnricher(
        watcher,
        config.output.node_name,
        pending_timeout_ns=k8s.pending_timeout_ms * 1_000_000,
        pending_max=k8s.pending_max,
        roots=k8s.kubepods_roots,
    )
    return KubernetesMode(watcher, enricher)
