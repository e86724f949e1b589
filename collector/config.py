"""The collector's configuration: one frozen object from flags, environment, YAML and defaults.

Every setting is declared once in `OPTIONS`. From that one declaration come its command-line flag
(``--argv-cap``), its environment variable (``EXECLOG_ARGV_CAP``) and its YAML key (``argv_cap``).
Precedence is flag > environment > YAML file > default. A bad value is reported with the place
it came from, so a typo in a ConfigMap is as easy to find as one on the command line. Unknown YAML
keys are errors: a security tool should not ignore a setting it does not understand.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from collector.k8s.kubelet import check_kubelet_url
from collector.k8s.labels import DEFAULT_LABELS, LabelRule, parse_label_mapping
from collector.k8s.selector import EVERYTHING, Selector, parse_selector
from collector.listen import ListenAddress, parse_listen, parse_tcp_listen
from collector.policy.exclude import Exclusion
from collector.policy.spec import (
    RedactionRule,
    SpecError,
    parse_disabled_rules,
    parse_exclusions,
    parse_redaction_rules,
)

__all__ = [
    "OPTIONS",
    "YAML_ONLY",
    "CaptureConfig",
    "Config",
    "ConfigError",
    "GrpcConfig",
    "KubernetesConfig",
    "MetricsConfig",
    "Option",
    "OutputConfig",
    "PolicyConfig",
    "add_flags",
    "build_config",
    "parse_size",
]

ENV_PREFIX = "EXECLOG_"


class ConfigError(ValueError):
    """A setting is malformed; the message names the setting and where it came from."""


def parse_size(text: str) -> int:
    """Bytes from '32768', '32KiB', '8MiB', '1GiB' (binary units; k/M/G accepted as the same)."""
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]i?[bB]?|[bB])?\s*", text)
    if not m:
        raise ValueError(f"not a size: {text!r} (examples: 32768, 32KiB, 8MiB)")
    unit = (m.group(2) or "").lower()[:1]
    return int(m.group(1)) << {"": 0, "b": 0, "k": 10, "m": 20, "g": 30}[unit]


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r} (use true or false)")


def parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return text

    return parse


def parse_hierarchy(text: str) -> str:
    if text in ("auto", "v2") or re.fullmatch(r"v1:[a-z_]+", text):
        return text
    raise ValueError(f"{text!r} is not auto, v2 or v1:<controller> (e.g. v1:memory)")


def parse_roots(text: str) -> tuple[str, ...]:
    """Comma-separated cgroup paths relative to the hierarchy's root, e.g. kubepods,kubepods.slice."""
    roots = tuple(part.strip().strip("/") for part in text.split(","))
    for root in roots:
        if not root or ".." in root.split("/"):
            raise ValueError(f"{text!r}: each root is a path below the cgroup root, e.g. kubepods")
    return roots


def _default_bpf_object() -> Path:
    # An editable install finds the object its `make install` built; an image sets the env var.
    return Path(__file__).resolve().parents[1] / "bpf" / "exec.bpf.o"


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
class PolicyConfig:
    redact: bool = True
    rate_limit: float = 0.0  # execs/s per workload; 0: no limit
    rate_limit_burst: int | None = None  # None: the rate, at least 1
    rate_limit_summary_s: float = 5.0
    redaction_rules: tuple[RedactionRule, ...] = ()  # YAML only
    disabled_redaction_rules: tuple[str, ...] = ()  # YAML only: built-in rule names
    exclusions: tuple[Exclusion, ...] = ()  # YAML only


@dataclass(frozen=True, slots=True)
class Config:
    capture: CaptureConfig
    output: OutputConfig
    kubernetes: KubernetesConfig
    grpc: GrpcConfig
    metrics: MetricsConfig
    policy: PolicyConfig = PolicyConfig()
    config_file: Path | None = None
    # Where each value came from (key -> "flag --x", "env EXECLOG_X", "file f.yaml", "default").
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)


_SECTIONS: dict[str, type] = {
    "capture": CaptureConfig,
    "output": OutputConfig,
    "kubernetes": KubernetesConfig,
    "grpc": GrpcConfig,
    "metrics": MetricsConfig,
    "policy": PolicyConfig,
}


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Add one flag per option. Defaults stay None so that an unset flag can be told apart."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help=f"YAML file with settings (keys as the flags, with _ for -); env {ENV_PREFIX}CONFIG",
    )
    groups: dict[str, argparse._ArgumentGroup] = {}
    for opt in OPTIONS:
        group = groups.setdefault(opt.section, parser.add_argument_group(f"{opt.section} settings"))
        shown = ",".join(opt.default) if isinstance(opt.default, tuple) else opt.default
        default = "" if shown is None else f" (default: {shown})"
        help_text = f"{opt.help}{default}; env {opt.env}"
        if opt.is_flag:
            group.add_argument(
                opt.flag, dest=opt.key, action="store_const", const="true", default=None, help=help_text
            )
        else:
            group.add_argument(opt.flag, dest=opt.key, default=None, metavar=opt.metavar, help=help_text)


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping of settings, got {type(data).__name__}")
    known = {opt.key for opt in OPTIONS} | set(YAML_ONLY)
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise ConfigError(f"config file {path}: unknown settings {', '.join(unknown)}")
    return data


def build_config(args: argparse.Namespace | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Merge flags, environment and the YAML file over the defaults, then validate."""
    environ = os.environ if environ is None else environ
    flags = vars(args) if args is not None else {}
    config_path = flags.get("config") or environ.get(ENV_PREFIX + "CONFIG")
    from_file = _load_yaml(Path(config_path)) if config_path else {}

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for opt in OPTIONS:
        raw: Any
        if flags.get(opt.key) is not None:
            raw, where = flags[opt.key], f"flag {opt.flag}"
        elif opt.env in environ:
            raw, where = environ[opt.env], f"env {opt.env}"
        elif opt.key in from_file:
            raw, where = from_file[opt.key], f"config file {config_path}, key {opt.key}"
        else:
            values[opt.key], sources[opt.key] = opt.default, "default"
            continue
        try:
            values[opt.key] = opt.parse(raw) if isinstance(raw, str) else _from_yaml(opt, raw)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        sources[opt.key] = where

    if values["bpf_object"] is None:
        values["bpf_object"] = _default_bpf_object()
    if not values["node_name"]:
        values["node_name"] = environ.get("NODE_NAME") or socket.gethostname()
    if values["pod_selector"] is None:
        values["pod_selector"] = EVERYTHING
    _validate(values, sources)
    sections = {
        name: cls(**{opt.key: values[opt.key] for opt in OPTIONS if opt.section == name})
        for name, cls in _SECTIONS.items()
    }
    for section, values_ in _structured(from_file, config_path, sources).items():
        sections[section] = dataclasses.replace(sections[section], **values_)
    return Config(
        **sections,
        config_file=Path(config_path) if config_path else None,
        sources=sources,
    )


def _structured(
    from_file: Mapping[str, Any], path: str | None, sources: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """Parse the YAML-only settings, by section; an error names the file, the key and the item."""
    parsed: dict[str, dict[str, Any]] = {}
    for key, (section, parse) in YAML_ONLY.items():
        if key not in from_file:
            sources[key] = "default"
            continue
        try:
            parsed.setdefault(section, {})[key] = parse(from_file[key])
        except ValueError as exc:
            where = exc.where if isinstance(exc, SpecError) else ""
            raise ConfigError(f"config file {path}, key {key}{where}: {exc}") from exc
        sources[key] = f"config file {path}, key {key}"
    return parsed


def _from_yaml(opt: Option, raw: Any) -> Any:
    """YAML already typed some values (8, true); take those as they are when they fit."""
    if isinstance(raw, bool):
        if opt.parse is parse_bool:
            return raw
        raise ValueError(f"expected {opt.metavar or 'a value'}, got a boolean")
    if isinstance(raw, int | float) and opt.parse in (int, float, parse_size):
        return opt.parse(str(raw))
    if isinstance(raw, list) and opt.parse is parse_roots and all(isinstance(r, str) for r in raw):
        return parse_roots(",".join(raw))
    raise ValueError(f"expected {opt.metavar or 'a string'}, got {type(raw).__name__}")


def _validate(values: dict[str, Any], sources: Mapping[str, str]) -> None:
    def fail(key: str, message: str) -> None:
        raise ConfigError(f"{sources[key]}: {message}")

    if not 0 < values["argv_cap"] <= 1 << 17:
        fail("argv_cap", f"argv cap must be between 1 byte and 128KiB, got {values['argv_cap']}")
    ring = values["ring_size"]
    if ring < 4096 or ring & (ring - 1):
        fail("ring_size", f"ring size must be a power of two of at least 4KiB, got {ring}")
    if not 1 <= values["drain_interval_ms"] <= 10_000:
        fail("drain_interval_ms", "drain interval must be between 1 and 10000 ms")
    if values["json_queue"] < 1:
        fail("json_queue", "the stdout queue must hold at least one record")
    if not 0.5 <= values["kubelet_poll_interval_s"] <= 3600:
        fail("kubelet_poll_interval_s", "the kubelet poll interval must be between 0.5 and 3600 seconds")
    if not 0 <= values["pending_timeout_ms"] <= 600_000:
        fail("pending_timeout_ms", "the pending timeout must be between 0 and 600000 ms")
    if values["pending_max"] < 1:
        fail("pending_max", "the pending queue must hold at least one exec")
    if values["deleted_pod_grace_s"] < 0:
        fail("deleted_pod_grace_s", "the grace period for deleted pods cannot be negative")
    if not 0 <= values["rate_limit"] <= 1e6:  # also rejects nan
        fail(
            "rate_limit",
            f"the rate limit must be between 0 (off) and 1000000 execs/s, got {values['rate_limit']}",
        )
    if values["rate_limit"] and values["rate_limit"] < 0.001:
        fail("rate_limit", "the rate limit must be at least 0.001 execs/s (or 0 for off)")
    if values["rate_limit_burst"] is not None and not 1 <= values["rate_limit_burst"] <= 10**9:
        fail("rate_limit_burst", f"the burst must be at least 1, got {values['rate_limit_burst']}")
    if not 0.1 <= values["rate_limit_summary_s"] <= 3600:
        fail("rate_limit_summary_s", "the summary interval must be between 0.1 and 3600 s")
    _validate_grpc(values, fail)


def _validate_grpc(values: dict[str, Any], fail: Callable[[str, str], None]) -> None:
    if values["grpc_replay"] < 0:
        fail("grpc_replay", "the replay buffer cannot hold fewer than 0 records")
    if values["grpc_subscriber_queue"] < 1:
        fail("grpc_subscriber_queue", "a subscriber's queue must hold at least one record")
    if values["grpc_max_subscribers"] < 1:
        fail("grpc_max_subscribers", "at least one subscriber must be allowed")
    cert, key, listen = values["grpc_tls_cert"], values["grpc_tls_key"], values["grpc_listen"]
    if (cert is None) != (key is None):
        fail(
            "grpc_tls_cert" if cert is not None else "grpc_tls_key",
            "TLS needs both --grpc-tls-cert and --grpc-tls-key",
        )
    if values["grpc_client_ca"] is not None and cert is None:
        fail("grpc_client_ca", "client certificates (mTLS) need TLS: give --grpc-tls-cert and --grpc-tls-key")
    for key_name in ("grpc_tls_cert", "grpc_client_ca", "grpc_health_listen"):
        if values[key_name] is not None and listen is None:
            fail(key_name, "it is set but --grpc-listen is not")
    if listen is not None and not listen.local and cert is None and not values["grpc_insecure"]:
        fail(
            "grpc_listen",
            f"{listen} is not a loopback address or a unix socket, and the stream carries every "
            "command line of the node: give --grpc-tls-cert and --grpc-tls-key (and --grpc-client-ca "
            "to require client certificates), or --grpc-insecure if the network is private",
        )
