"""Every setting, declared once: its section, parser, default and help."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from collector.config.values import (
    ENV_PREFIX,
    parse_bool,
    parse_choice,
    parse_hierarchy,
    parse_roots,
    parse_size,
)
from collector.k8s.kubelet import check_kubelet_url
from collector.k8s.labels import parse_label_mapping
from collector.k8s.selector import parse_selector
from collector.listen import parse_listen, parse_tcp_listen
from collector.policy.spec import (
    parse_disabled_rules,
    parse_exclusions,
    parse_redaction_rules,
)

__all__ = ["OPTIONS", "YAML_ONLY", "Option", "default_bpf_object"]


def default_bpf_object() -> Path:
    # An editable install finds the object its `make install` built; an image sets the env var.
    return Path(__file__).resolve().parents[2] / "bpf" / "exec.bpf.o"


@dataclass(frozen=True, slots=True)
class Option:
    key: str  # YAML key and attribute name
    section: str  # the config section (dataclass) it belongs to
    parse: Callable[[str], Any]
    default: Any
    help: str
    metavar: str | None = None
    is_flag: bool = False  # a switch without a value on the command line

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.key.upper()


OPTIONS: tuple[Option, ...] = (
    # capture: the kernel program and the ring buffer
    Option(
        "bpf_object",
        "capture",
        Path,
        None,
        "compiled BPF program (default: bpf/exec.bpf.o beside the collector package)",
        "PATH",
    ),
    Option(
        "btf_path",
        "capture",
        Path,
        None,
        "kernel BTF for CO-RE relocations (default: the kernel's own /sys/kernel/btf/vmlinux)",
        "PATH",
    ),
    Option(
        "argv_cap",
        "capture",
        parse_size,
        32768,
        "argv bytes kept per exec, at most 128KiB; longer argv is cut and marked truncated, "
        "with its true argc and byte length",
        "SIZE",
    ),
    Option(
        "ring_size",
        "capture",
        parse_size,
        4 << 20,
        "kernel ring buffer size, a power of two (events that find it full are counted as lost); "
        "it counts twice in resident memory, as libbpf maps it twice for records that wrap",
        "SIZE",
    ),
    Option(
        "drain_interval_ms",
        "capture",
        int,
        50,
        "how often the ring is drained when it is less than a quarter full (milliseconds)",
        "MS",
    ),
    Option(
        "exec_hook",
        "capture",
        parse_choice("auto", "tp_btf", "tracepoint"),
        "auto",
        "kernel hook for execs: tp_btf (typed, no tracefs), tracepoint (classic, needs tracefs), "
        "or auto (tp_btf, else tracepoint)",
        "HOOK",
    ),
    Option(
        "comm_hook",
        "capture",
        parse_choice("auto", "prepare_exec", "fentry", "syscalls"),
        "auto",
        "hook that keeps the caller's comm from before the exec: prepare_exec (6.10+), fentry, "
        "syscalls, or auto (the first that works)",
        "HOOK",
    ),
    Option(
        "cgroup_hierarchy",
        "capture",
        parse_hierarchy,
        "auto",
        "cgroup hierarchy whose cgroup each exec is attributed to: v2, v1:<controller>, or auto "
        "(v2 on a unified host, v1:memory on a legacy or hybrid one, as the kubelet does)",
        "WHICH",
    ),
    Option(
        "cgroup_root",
        "capture",
        Path,
        Path("/sys/fs/cgroup"),
        "where the cgroup file systems are mounted",
        "PATH",
    ),
    Option("proc_root", "capture", Path, Path("/proc"), "the host's /proc", "PATH"),
    # output
    Option(
        "json_queue",
        "output",
        int,
        65536,
        "records held for stdout while it is slow; beyond that they are counted and reported in a gap record",
        "N",
    ),
    Option(
        "node_name",
        "output",
        str,
        None,
        "name of this node in the records (default: $NODE_NAME, else the host name)",
        "NAME",
    ),
    Option(
        "log_level", "output", parse_choice("debug", "info", "warning", "error"), "info", "stderr log level"
    ),
    # kubernetes: pod attribution through the kubelet API (one block, see KubernetesConfig)
    Option(
        "kubelet_url",
        "kubernetes",
        check_kubelet_url,
        None,
        "the kubelet API, e.g. https://$NODE_IP:10250; turns on Kubernetes mode, where only "
        "processes in pods are logged (filtered in the kernel) and each record names its pod",
        "URL",
    ),
    Option(
        "kubelet_token_file",
        "kubernetes",
        Path,
        Path("/var/run/secrets/kubernetes.io/serviceaccount/token"),
        "bearer token for the kubelet, read again when it changes",
        "PATH",
    ),
    Option(
        "kubelet_ca_file",
        "kubernetes",
        Path,
        Path("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"),
        "CA that signed the kubelet's serving certificate",
        "PATH",
    ),
    Option(
        "kubelet_insecure_skip_tls_verify",
        "kubernetes",
        parse_bool,
        False,
        "do not verify the kubelet's certificate (for kubelets with self-signed serving "
        "certificates; anyone on the path can then read the token)",
        is_flag=True,
    ),
    Option(
        "kubelet_poll_interval_s",
        "kubernetes",
        float,
        10.0,
        "seconds between polls of the kubelet's pod list (an unknown pod makes it ask at once)",
        "S",
    ),
    Option(
        "pod_selector",
        "kubernetes",
        parse_selector,
        None,
        "log only pods whose labels match this label selector (=, ==, !=, in, notin, key, !key), "
        "e.g. com.coder.workspace.id; default: every pod",
        "SELECTOR",
    ),
    Option(
        "pending_timeout_ms",
        "kubernetes",
        int,
        2000,
        "how long an exec of a pod the kubelet has not listed yet waits for it before it goes out "
        "marked unresolved",
        "MS",
    ),
    Option(
        "pending_max",
        "kubernetes",
        int,
        10000,
        "execs held for pods not listed yet; beyond that the oldest go out unresolved at once",
        "N",
    ),
    Option(
        "deleted_pod_grace_s",
        "kubernetes",
        float,
        60.0,
        "seconds a pod that left the kubelet's list still resolves its late execs",
        "S",
    ),
    Option(
        "kubepods_roots",
        "kubernetes",
        parse_roots,
        ("kubepods", "kubepods.slice"),
        "the kubelet's top cgroups (paths below the cgroup root, comma-separated); in Kubernetes "
        "mode only execs below them reach user space",
        "PATHS",
    ),
    # grpc: the Subscribe stream for SIEMs, and metrics (collector/outlets/grpc, collector/metrics)
    Option(
        "grpc_listen",
        "grpc",
        parse_listen,
        None,
        "serve the gRPC stream (execlog.v1.ExecLog) on host:port or unix:///path; off when unset. "
        "Without TLS only a loopback address or a unix socket is accepted (see --grpc-insecure)",
        "ADDR",
    ),
    Option("grpc_tls_cert", "grpc", Path, None, "TLS certificate chain (PEM) of the gRPC server", "PATH"),
    Option("grpc_tls_key", "grpc", Path, None, "private key (PEM) of --grpc-tls-cert", "PATH"),
    Option(
        "grpc_client_ca",
        "grpc",
        Path,
        None,
        "CA certificates (PEM): clients must present a certificate signed by one of them (mTLS)",
        "PATH",
    ),
    Option(
        "grpc_insecure",
        "grpc",
        parse_bool,
        False,
        "serve gRPC without TLS on an address that is not loopback (anyone who can reach it reads "
        "every command line of the node)",
        is_flag=True,
    ),
    Option(
        "grpc_health_listen",
        "grpc",
        parse_listen,
        None,
        "also serve the standard gRPC health service, and nothing else, here without TLS: the "
        "kubelet's grpc probes cannot speak TLS, and health carries no exec data "
        "(needs --grpc-listen)",
        "HOST:PORT|unix:///PATH",
    ),
    Option(
        "grpc_replay",
        "grpc",
        int,
        100_000,
        "records kept for subscribers that resume (stream id + seq) after a disconnect; 0 keeps none",
        "N",
    ),
    Option(
        "grpc_subscriber_queue",
        "grpc",
        int,
        10_000,
        "records held for each subscriber that reads slowly; beyond that it loses records, counted "
        "and reported to it in a gap",
        "N",
    ),
    Option("grpc_max_subscribers", "grpc", int, 64, "subscribers served at once", "N"),
    Option(
        "metrics_listen",
        "metrics",
        parse_tcp_listen,
        None,
        "serve Prometheus metrics at http://HOST:PORT/metrics; off when unset",
        "HOST:PORT",
    ),
    # policy: redaction, rate limiting and exclusions. Rules themselves are YAML-only (YAML_ONLY).
    Option(
        "redact",
        "policy",
        parse_bool,
        True,
        "mask secrets in argv (built-in rules and redaction_rules from the config file) before any outlet",
        "BOOL",
    ),
    Option(
        "rate_limit",
        "policy",
        float,
        0.0,
        "execs per second logged per workload (a pod; a cgroup when standalone); execs over it are "
        "counted in exec_suppressed summaries instead; 0 turns the limit off",
        "N",
    ),
    Option(
        "rate_limit_burst",
        "policy",
        int,
        None,
        "execs a workload may log at once before the rate applies (default: the rate, at least 1)",
        "N",
    ),
    Option(
        "rate_limit_summary_s",
        "policy",
        float,
        5.0,
        "while a workload is limited, an exec_suppressed summary at least this often (seconds)",
        "S",
    ),
)


def _list_or_empty(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    # `key:` alone in YAML is None: an empty list of rules.
    return lambda raw: parse([] if raw is None else raw)


# Settings too structured for a flag or a variable: YAML keys only -> (section, parser). Parsers
# raise ValueError; a SpecError also says which item is at fault (`where`, e.g. "[1].pattern").
YAML_ONLY: Mapping[str, tuple[str, Callable[[Any], Any]]] = MappingProxyType(
    {
        "labels": ("kubernetes", parse_label_mapping),
        "redaction_rules": ("policy", _list_or_empty(parse_redaction_rules)),
        "disabled_redaction_rules": ("policy", _list_or_empty(parse_disabled_rules)),
        "exclusions": ("policy", _list_or_empty(parse_exclusions)),
    }
)
